// Tokenizer against the golden ids: the tiny model's cases (meta.json), GLaMM's real LLaMA
// tokenizer (llama-tokenizer/cases.json) and the golden prompt/input id tensors; decode, streaming
// and load errors. This binary links LibTorch too: it starting at all is the protobuf-clash check.
#include "support/test_support.h"
#include "text/tokenizer.h"

#include "core/error.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using glamm::Tokenizer;
using glamm::TokenStream;
using Ids = std::vector<int64_t>;

namespace {

nlohmann::json read_json(const std::string& path) {
    std::ifstream in(path);
    EXPECT_TRUE(in.good()) << path;
    return nlohmann::json::parse(in);
}

std::string llama_dir() {
    return glamm::test::data_path("golden/llama-tokenizer");
}

const Tokenizer& tiny() {
    static const Tokenizer t = Tokenizer::load(glamm::test::tiny_model_dir());
    return t;
}
const Tokenizer& llama() {
    static const Tokenizer t = Tokenizer::load(llama_dir());
    return t;
}

Ids tensor_ids(const at::Tensor& t) {
    auto c = t.to(at::kLong).contiguous();
    return Ids(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::string streamed(const Tokenizer& tok, const Ids& ids, bool skip_special = false) {
    TokenStream stream(tok, skip_special);
    std::string text;
    for (int64_t id : ids) text += stream.push(id);
    text += stream.finish();
    EXPECT_EQ(text, stream.text());
    return text;
}

} // namespace

TEST(Tokenizer, TinyMetaCases) {
    const auto meta = read_json(glamm::test::tiny_case_path("meta.json"));
    ASSERT_GE(meta.at("tokenizer").size(), 6u);
    for (const auto& c : meta.at("tokenizer")) {
        const std::string text = c.at("text");
        EXPECT_EQ(tiny().encode(text), c.at("ids").get<Ids>()) << text;
        EXPECT_EQ(tiny().encode(text, false), c.at("ids_no_bos").get<Ids>()) << text;
    }
}

TEST(Tokenizer, LlamaEncodeCases) {
    const auto cases = read_json(llama_dir() + "/cases.json");
    ASSERT_GE(cases.at("encode").size(), 10u);
    for (const auto& c : cases.at("encode")) {
        const std::string text = c.at("text");
        EXPECT_EQ(llama().encode(text), c.at("ids").get<Ids>()) << text;
        EXPECT_EQ(llama().encode(text, false), c.at("ids_no_bos").get<Ids>()) << text;
    }
}

TEST(Tokenizer, LlamaImagePrompts) {
    const auto cases = read_json(llama_dir() + "/cases.json");
    ASSERT_GE(cases.at("image_prompts").size(), 4u);
    for (const auto& c : cases.at("image_prompts")) {
        const std::string prompt = c.at("prompt");
        const Ids ids            = llama().encode_with_image(prompt);
        EXPECT_EQ(ids, c.at("ids").get<Ids>()) << prompt;
        EXPECT_EQ(std::count(ids.begin(), ids.end(), glamm::kImageTokenIndex), 1);
    }
}

TEST(Tokenizer, LlamaDecodeCases) {
    const auto cases = read_json(llama_dir() + "/cases.json");
    ASSERT_GE(cases.at("decode").size(), 10u);
    for (const auto& c : cases.at("decode")) {
        const Ids ids = c.at("ids").get<Ids>();
        EXPECT_EQ(llama().decode(ids), c.at("text").get<std::string>());
    }
}

// The image-prompt ids decode with the image sentinel skipped.
TEST(Tokenizer, DecodeSkipsImageSentinel) {
    const Ids ids = llama().encode_with_image("USER: The <im_start><image><im_end> provides");
    // 4.28 puts a space in front of a special token that starts a run (no `i != 0` test yet).
    EXPECT_EQ(llama().decode(ids), " <s>USER: The <im_start> <im_end> provides");
    EXPECT_EQ(llama().decode(ids, /*skip_special=*/true), "USER: The <im_start> <im_end> provides");
}

TEST(Tokenizer, GoldenPromptAndInputIds) {
    const auto meta = read_json(glamm::test::tiny_case_path("meta.json"));
    for (const std::string name : {"gcg", "region"}) {
        SCOPED_TRACE(name);
        const auto& c = meta.at("cases").at(name);
        const auto tensors =
            glamm::test::load_tensors(glamm::test::tiny_case_path(name + ".safetensors"));
        const Ids prompt     = tiny().encode_with_image(c.at("prompt").get<std::string>());
        const Ids ref_prompt = tensor_ids(tensors.at("prompt_ids"));
        EXPECT_EQ(prompt, ref_prompt);
        Ids input        = prompt;
        const Ids answer = tiny().encode(c.at("answer").get<std::string>(), /*add_bos=*/false);
        input.insert(input.end(), answer.begin(), answer.end());
        EXPECT_EQ(input, tensor_ids(tensors.at("input_ids")));
        // The reference's generated text is the decode of its generated ids.
        EXPECT_EQ(tiny().decode(tensor_ids(tensors.at("greedy_ids"))),
                  c.at("greedy_text").get<std::string>());
    }
}

TEST(Tokenizer, SpecialIdsComeFromTheFiles) {
    for (const std::string dir : {glamm::test::tiny_model_dir(), llama_dir()}) {
        const Tokenizer tok = Tokenizer::load(dir);
        const auto added    = read_json(dir + "/added_tokens.json");
        EXPECT_EQ(tok.id_to_piece(tok.bos_id()), "<s>");
        EXPECT_EQ(tok.id_to_piece(tok.eos_id()), "</s>");
        EXPECT_EQ(tok.id_to_piece(tok.unk_id()), "<unk>");
        EXPECT_EQ(tok.pad_id(), tok.unk_id()); // GLaMM: pad_token = unk_token
        EXPECT_EQ(tok.seg_id(), added.at("[SEG]").get<int64_t>());
        EXPECT_EQ(tok.bbox_id(), added.at("<bbox>").get<int64_t>());
        EXPECT_EQ(tok.p_open_id(), added.at("<p>").get<int64_t>());
        EXPECT_EQ(tok.p_close_id(), added.at("</p>").get<int64_t>());
        EXPECT_EQ(tok.im_start_id(), added.at("<im_start>").get<int64_t>());
        EXPECT_EQ(tok.im_end_id(), added.at("<im_end>").get<int64_t>());
        EXPECT_EQ(tok.token_id("<point>"), added.at("<point>").get<int64_t>());
        EXPECT_EQ(tok.vocab_size(), tok.sp_vocab_size() + static_cast<int64_t>(added.size()));
        EXPECT_THROW(tok.token_id("<nope>"), glamm::Error);
    }
    EXPECT_EQ(llama().vocab_size(), 32007);
    EXPECT_EQ(tiny().vocab_size(), 519);
}

TEST(Tokenizer, DecodeRejectsOutOfRangeIds) {
    EXPECT_THROW(tiny().decode({tiny().vocab_size()}), glamm::Error);
    EXPECT_THROW(tiny().decode({-1}), glamm::Error);
    EXPECT_EQ(tiny().decode({}), "");
}

// Hand-worked whitespace rules: stripped next to added tokens, kept next to <s>, </s>, <unk>.
TEST(Tokenizer, WhitespaceAroundTokens) {
    const Tokenizer& t = llama();
    // "\u3000" (ideographic space) counts as whitespace for Python's str.strip.
    EXPECT_EQ(t.encode("a \t[SEG]\n b", false), t.encode("a[SEG]b", false));
    EXPECT_EQ(t.encode("a\xE3\x80\x80[SEG]", false), t.encode("a[SEG]", false));
    // Not stripped next to </s>: " b" keeps its space (sentencepiece: "▁▁b").
    const Ids with_space = t.encode("a</s> b", false);
    const Ids sp_space   = t.encode(" b", false);
    ASSERT_GE(with_space.size(), 2u);
    EXPECT_EQ(Ids(with_space.end() - static_cast<long>(sp_space.size()), with_space.end()),
              sp_space);
    // Only whitespace between two added tokens: nothing left to encode.
    EXPECT_EQ(t.encode("</p>  [SEG]", false), (Ids{t.p_close_id(), t.seg_id()}));
    // Longest match first and leftmost: "<p>" inside "<<p>>".
    const Ids nested = t.encode("<<p>>", false);
    EXPECT_NE(std::find(nested.begin(), nested.end(), t.p_open_id()), nested.end());
    // "<image>" is plain text for encode().
    const Ids image_text = t.encode("<image>");
    EXPECT_EQ(std::count(image_text.begin(), image_text.end(), glamm::kImageTokenIndex), 0);
    EXPECT_GT(image_text.size(), 2u);
}

TEST(Tokenizer, ImagePromptEdges) {
    const Tokenizer& t = tiny();
    EXPECT_EQ(t.encode_with_image("<image>"), (Ids{t.bos_id(), glamm::kImageTokenIndex}));
    EXPECT_EQ(t.encode_with_image(""), (Ids{t.bos_id()}));
    const Ids two = t.encode_with_image("a<image>b<image>");
    EXPECT_EQ(std::count(two.begin(), two.end(), glamm::kImageTokenIndex), 2);
    EXPECT_EQ(two.front(), t.bos_id());
    EXPECT_EQ(two.back(), glamm::kImageTokenIndex);
}

TEST(Tokenizer, RoundTripPlainText) {
    for (const std::string text :
         {"Hello world", "unicode: café, naïve, 東京, emoji 🙂🎈", "tabs\tand\nnewlines"}) {
        EXPECT_EQ(llama().decode(llama().encode(text, false)), text);
        EXPECT_EQ(tiny().decode(tiny().encode(text, false)), text);
    }
}

TEST(TokenStream, DeltasConcatenateToDecode) {
    const auto cases = read_json(llama_dir() + "/cases.json");
    for (const auto& c : cases.at("decode")) {
        const Ids ids = c.at("ids").get<Ids>();
        const bool has_special =
            std::any_of(ids.begin(), ids.end(), [](int64_t id) { return llama().is_special(id); });
        if (has_special)
            EXPECT_EQ(streamed(llama(), ids), llama().decode_stable(ids, false));
        else
            EXPECT_EQ(streamed(llama(), ids), llama().decode(ids));
        EXPECT_EQ(streamed(llama(), ids, true), llama().decode(ids, true));
    }
    const auto meta = read_json(glamm::test::tiny_case_path("meta.json"));
    for (const auto& c : meta.at("tokenizer")) {
        const Ids ids = c.at("ids_no_bos").get<Ids>();
        EXPECT_EQ(streamed(tiny(), ids), tiny().decode(ids));
    }
}

// 🙂 is four byte-fallback pieces: nothing appears until the fourth, then the whole character.
TEST(TokenStream, HoldsBackIncompleteUtf8) {
    const Ids ids = llama().encode("x 🙂", false);
    TokenStream stream(llama());
    std::vector<std::string> deltas;
    for (int64_t id : ids) deltas.push_back(stream.push(id));
    ASSERT_GE(deltas.size(), 5u);
    const size_t n = deltas.size();
    EXPECT_EQ(deltas[n - 4], "");
    EXPECT_EQ(deltas[n - 3], "");
    EXPECT_EQ(deltas[n - 2], "");
    EXPECT_EQ(deltas[n - 1], "\xF0\x9F\x99\x82");
    EXPECT_EQ(stream.text(), "x 🙂");
    // An unfinished character is flushed (as U+FFFD) by finish().
    TokenStream cut(llama());
    for (size_t i = 0; i + 2 < ids.size(); ++i) cut.push(ids[i]);
    const std::string tail = cut.finish();
    EXPECT_EQ(cut.text(), llama().decode(Ids(ids.begin(), ids.end() - 2)));
    EXPECT_NE(tail.find("\xEF\xBF\xBD"), std::string::npos);
}

TEST(Tokenizer, MissingFilesNameFileAndFolder) {
    const std::string dir = glamm::test::make_temp_dir("tok");
    auto message          = [&] { return glamm::test::error_of([&] { Tokenizer::load(dir); }); };
    std::string m         = message();
    EXPECT_NE(m.find("tokenizer.model"), std::string::npos) << m;
    EXPECT_NE(m.find(dir), std::string::npos) << m;
    fs::copy_file(llama_dir() + "/tokenizer.model", dir + "/tokenizer.model");
    m = message();
    EXPECT_NE(m.find("added_tokens.json"), std::string::npos) << m;
    fs::copy_file(llama_dir() + "/added_tokens.json", dir + "/added_tokens.json");
    m = message();
    EXPECT_NE(m.find("special_tokens_map.json"), std::string::npos) << m;
    fs::copy_file(llama_dir() + "/special_tokens_map.json", dir + "/special_tokens_map.json");
    EXPECT_EQ(Tokenizer::load(dir).encode("Hello world"), llama().encode("Hello world"));
    glamm::test::write_bytes(dir + "/added_tokens.json", "{not json");
    m = message();
    EXPECT_NE(m.find("added_tokens.json"), std::string::npos) << m;
    glamm::test::write_bytes(dir + "/added_tokens.json", "{}");
    glamm::test::write_bytes(dir + "/tokenizer.model", "garbage");
    m = message();
    EXPECT_NE(m.find("tokenizer.model"), std::string::npos) << m;
    fs::remove_all(dir);
}

// LibTorch and the tokenizer in one process: ids go into a tensor and back.
TEST(Tokenizer, WorksNextToLibTorch) {
    const Ids ids = tiny().encode("Hello world");
    at::Tensor t  = at::tensor(ids, at::kLong);
    EXPECT_EQ(t.numel(), static_cast<int64_t>(ids.size()));
    EXPECT_EQ(tiny().decode(tensor_ids(t), true), "Hello world");
}
