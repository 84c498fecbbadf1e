// GLaMM's tokenizer: the LLaMA sentencepiece model plus GLaMM's added tokens, with the encode and
// decode rules of the slow LlamaTokenizer of transformers 4.28 (the revision GLaMM was trained
// with; spec §2). Ids are int64_t; kImageTokenIndex marks "<image>" in prompt id lists.
#pragma once

#include "core/config.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace glamm {

// kImageTokenIndex (GLaMM's IMAGE_TOKEN_INDEX) is defined in core/config.h.
// The literal placeholder tokenizer_image_token splits on (not a vocabulary token).
inline constexpr const char* kImagePlaceholder = "<image>";

// GLaMM's added token strings (added_tokens.json; ids come from the file).
inline constexpr const char* kImStartToken = "<im_start>";
inline constexpr const char* kImEndToken   = "<im_end>";
inline constexpr const char* kBboxToken    = "<bbox>";
inline constexpr const char* kPointToken   = "<point>";
inline constexpr const char* kSegToken     = "[SEG]";
inline constexpr const char* kPhraseOpen   = "<p>";
inline constexpr const char* kPhraseClose  = "</p>";

// Python's notion of whitespace (str.isspace) on UTF-8 text, as the reference's str.strip() and
// str.split() use it; invalid bytes are not whitespace.
std::string python_strip(const std::string& text, bool left = true, bool right = true);
std::vector<std::string> python_split(const std::string& text);

class Tokenizer {
public:
    // Reads MODEL_DIR/tokenizer.model, added_tokens.json and special_tokens_map.json (or, when
    // absent, tokenizer_config.json). Throws glamm::Error naming a missing/broken file and folder,
    // or the sentencepiece module paths tried when none loads.
    static Tokenizer load(const std::string& model_dir);

    // transformers-4.28 slow LlamaTokenizer: split at added tokens and at <s>, </s>, <unk>
    // (longest match first); strip whitespace next to added tokens (not next to <s>/</s>/<unk>);
    // encode each remaining non-empty piece on its own with sentencepiece; BOS first if asked.
    std::vector<int64_t> encode(const std::string& text, bool add_bos = true) const;

    // tokenizer_image_token (model/llava/mm_utils.py): splits on "<image>", encodes each chunk on
    // its own, joins them with kImageTokenIndex; BOS once at the start.
    std::vector<int64_t> encode_with_image(const std::string& prompt) const;

    // transformers-4.28 _decode(skip_special_tokens=skip_special, spaces_between_special_tokens):
    // added tokens and text runs joined by single spaces; kImageTokenIndex ids are skipped.
    // skip_special drops <s>, </s>, <unk> and pad (HF's all_special_ids), not GLaMM's added tokens.
    // Throws glamm::Error on an id outside [0, vocab_size()).
    std::string decode(const std::vector<int64_t>& ids, bool skip_special = false) const;

    int64_t bos_id() const;
    int64_t eos_id() const;
    int64_t unk_id() const;
    int64_t pad_id() const;
    // Id of an added token by name ("[SEG]"); throws glamm::Error when the model has none.
    int64_t token_id(const std::string& name) const;
    bool has_token(const std::string& name) const;
    int64_t seg_id() const { return token_id(kSegToken); }
    int64_t bbox_id() const { return token_id(kBboxToken); }
    int64_t p_open_id() const { return token_id(kPhraseOpen); }
    int64_t p_close_id() const { return token_id(kPhraseClose); }
    int64_t im_start_id() const { return token_id(kImStartToken); }
    int64_t im_end_id() const { return token_id(kImEndToken); }
    const std::map<std::string, int64_t>& added_tokens() const;

    // sentencepiece pieces + added tokens (len(tokenizer) in transformers).
    int64_t vocab_size() const;
    int64_t sp_vocab_size() const;
    // The token string of an id (sentencepiece piece or added token name).
    std::string id_to_piece(int64_t id) const;
    // True for a sentencepiece byte-fallback piece ("<0xE2>"); `byte` receives its value.
    bool is_byte_piece(int64_t id, uint8_t* byte = nullptr) const;
    bool is_special(int64_t id) const; // <s>, </s>, <unk>, pad

    struct Impl;
    // Internal: decode without the reference's space before a text run that ends in <s>/</s>/<unk>
    // (used by TokenStream, whose output must only grow).
    std::string decode_stable(const std::vector<int64_t>& ids, bool skip_special) const;

private:
    explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;
};

// Trains a sentencepiece model through the same bridge (sentencepiece's trainer, in its own
// link-map namespace): `trainer_args` is an spm_train command line ("--input=corpus.txt
// --model_prefix=DIR/tokenizer --vocab_size=N ..."). Throws glamm::Error with sentencepiece's
// message on failure.
void train_sentencepiece(const std::string& trainer_args);

// Turns generated ids into text deltas for streaming. push(id) returns the text that id adds;
// an incomplete UTF-8 character spread over byte-fallback pieces is held back until complete (or
// until finish()). The concatenated deltas equal tokenizer.decode(ids(), skip_special) except in
// one reference quirk: decode() puts a space in front of a text run that is followed by <s>, </s>
// or <unk> (e.g. "[SEG]  .</s>"); a stream cannot take back text, so it does not (nor with
// skip_special, where the quirk never arises). Each push decodes all ids so far (about 0.1 ms per
// push at 512 ids on this CPU), which keeps it exact; generation steps cost far more.
class TokenStream {
public:
    explicit TokenStream(const Tokenizer& tokenizer, bool skip_special = false);
    std::string push(int64_t id);
    // Flushes held-back bytes (as U+FFFD if they never completed).
    std::string finish();
    const std::string& text() const { return emitted_; }
    const std::vector<int64_t>& ids() const { return ids_; }

private:
    std::string advance(size_t usable);
    Tokenizer tokenizer_;
    bool skip_special_;
    std::vector<int64_t> ids_;
    std::string emitted_;
};

} // namespace glamm
