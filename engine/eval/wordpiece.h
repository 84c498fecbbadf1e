// BERT's uncased WordPiece tokenizer as bert-base-uncased's tokenizer (HF BertTokenizerFast, which
// AutoTokenizer returns) applies it: BertNormalizer, BertPreTokenizer, WordPiece, [CLS] ... [SEP].
// Text is UTF-8; ids index vocab.txt (one piece per line, id = line number).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace glamm::eval {

// The longest input evaluate.py lets the tokenizer produce (max_length=512, truncation=True), in
// tokens including [CLS] and [SEP].
constexpr int64_t kBertEvalMaxLength = 512;

// BertNormalizer(clean_text, handle_chinese_chars, strip_accents = lowercase = true), in its order:
//  1. drop U+0000, U+FFFD and "other" characters (Cc, Cf, Co; not Cn), except \t \n \r; map
//     Unicode White_Space to ' ';
//  2. put spaces around CJK ideographs (the blocks BERT lists);
//  3. NFD, then drop non-spacing marks (Mn). NFD here covers Latin-1, Latin Extended-A/B and
//     Latin Extended Additional, Greek and Cyrillic precomposed letters and Hangul syllables;
//     other precomposed characters (e.g. CJK compatibility ideographs) are kept as they are;
//  4. lower-case (Unicode simple lower-case mappings of the BMP).
// Category tables (P*, Mn, C*) cover the BMP (Unicode 14, scripts/gen_wordpiece_tables.py).
std::string bert_normalize(const std::string& text);

// BertPreTokenizer on normalized text: split on whitespace and isolate each punctuation character
// (ASCII 33-47, 58-64, 91-96, 123-126 and Unicode P*).
std::vector<std::string> bert_pre_tokenize(const std::string& normalized);

class WordpieceTokenizer {
public:
    // Reads vocab.txt: one piece per line ('\n' or "\r\n"), id = 0-based line number (a repeated
    // piece keeps its last id, as a Python dict does). Requires [UNK], [CLS] and [SEP]. Throws
    // Error naming the file when it is missing, empty or lacks one of them.
    static WordpieceTokenizer load(const std::string& vocab_path);
    // The same from pieces in id order (tests); `where` names the source in errors.
    static WordpieceTokenizer from_pieces(const std::vector<std::string>& pieces,
                                          const std::string& where = "vocabulary");

    // Word pieces of `text` without [CLS]/[SEP]: special tokens written literally in the text
    // ("[MASK]", ...) are kept whole; every other span is normalized, pre-tokenized and split
    // greedily longest-match-first ("##" marks continuations); a word longer than 100 characters
    // or with an unmatched rest becomes [UNK].
    std::vector<std::string> tokenize(const std::string& text) const;
    // The ids the model reads: [CLS] + pieces (truncated to max_length - 2) + [SEP]. Throws Error
    // if max_length < 2.
    std::vector<int64_t> encode(const std::string& text,
                                int64_t max_length = kBertEvalMaxLength) const;

    // -1 when the piece is not in the vocabulary.
    int64_t token_id(const std::string& piece) const;
    int64_t vocab_size() const { return static_cast<int64_t>(pieces_.size()); }
    int64_t unk_id() const { return unk_id_; }
    int64_t cls_id() const { return cls_id_; }
    int64_t sep_id() const { return sep_id_; }

private:
    // WordPiece on one pre-tokenized word; appends to `out`.
    void split_word(const std::string& word, std::vector<std::string>& out) const;

    std::vector<std::string> pieces_;
    std::unordered_map<std::string, int64_t> ids_;
    std::vector<std::string> special_; // special tokens present in the vocabulary, longest first
    int64_t unk_id_ = -1, cls_id_ = -1, sep_id_ = -1;
};

} // namespace glamm::eval
