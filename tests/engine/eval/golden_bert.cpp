// BERT phrase similarity against tests/data/make_bert_tiny.py's independent reference (ids,
// mean-pooled embeddings, sklearn-style cosine matrix) on a random-weight tiny BERT, and the
// errors a bad folder gives.
#include "eval/bert.h"

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

namespace glamm::eval {
namespace {

namespace fs = std::filesystem;

std::string tiny_dir() {
    return test::data_path("bert-tiny");
}

std::vector<std::string> phrases() {
    std::ifstream in(test::data_path("bert-tiny.phrases.json"));
    return nlohmann::json::parse(in).get<std::vector<std::string>>();
}

std::map<std::string, at::Tensor> reference() {
    return test::load_tensors(test::data_path("bert-tiny.reference.safetensors"));
}

// Embeddings of every phrase, [N, C].
at::Tensor embed_all(BertTextSimilarity& model, const std::vector<std::string>& texts) {
    std::vector<at::Tensor> rows;
    for (const std::string& text : texts) rows.push_back(model.embed(text));
    return torch::stack(rows);
}

// A copy of the tiny model with its weights rewritten as model.safetensors under HF's current
// names: `prefix` instead of "bert.", LayerNorm weight/bias instead of gamma/beta, no cls.*;
// `edit` may change the tensor map before writing.
std::string modern_copy(const std::string& tag, const std::string& prefix,
                        const std::function<void(std::map<std::string, at::Tensor>&)>& edit = {}) {
    const std::string dir = test::make_temp_dir(tag);
    fs::copy_file(tiny_dir() + "/config.json", dir + "/config.json");
    fs::copy_file(tiny_dir() + "/vocab.txt", dir + "/vocab.txt");
    const Checkpoint original = Checkpoint::open(tiny_dir());
    std::map<std::string, at::Tensor> tensors;
    for (const std::string& name : original.names()) {
        if (name.rfind("cls.", 0) == 0) continue;
        std::string renamed = prefix + name.substr(std::string("bert.").size());
        for (auto [legacy, current] : {std::pair{".gamma", ".weight"}, {".beta", ".bias"}}) {
            const std::string l = legacy;
            if (renamed.size() > l.size() &&
                renamed.compare(renamed.size() - l.size(), l.size(), l) == 0)
                renamed = renamed.substr(0, renamed.size() - l.size()) + current;
        }
        tensors[renamed] = original.tensor(name).contiguous().clone();
    }
    if (edit) edit(tensors);
    std::vector<TensorBlob> blobs;
    for (const auto& [name, tensor] : tensors)
        blobs.push_back({name, from_scalar_type(tensor.scalar_type()), tensor.sizes().vec(),
                         tensor.data_ptr(), tensor.nbytes()});
    write_safetensors(dir + "/model.safetensors", blobs);
    return dir;
}

// The message of the Error `fn` throws ("" if none).
template <class Fn> std::string error_of(Fn&& fn) {
    const std::string message = test::error_of(std::forward<Fn>(fn));
    std::printf("  error: %s\n", message.c_str());
    return message;
}

TEST(BertGolden, IdsMatchTheReferenceTokenizer) {
    const auto model = BertTextSimilarity::load(tiny_dir());
    const auto ref   = reference();
    const auto texts = phrases();
    ASSERT_GE(texts.size(), 10u);
    for (size_t i = 0; i < texts.size(); ++i) {
        const std::vector<int64_t> ids = model->tokenizer().encode(texts[i]);
        const at::Tensor expected      = ref.at("ids_" + std::to_string(i));
        const std::vector<int64_t> want(expected.data_ptr<int64_t>(),
                                        expected.data_ptr<int64_t>() + expected.numel());
        EXPECT_EQ(ids, want) << "phrase " << i << ": \"" << texts[i] << "\"";
    }
}

TEST(BertGolden, EmbeddingsAndSimilaritiesMatch) {
    const auto model = BertTextSimilarity::load(tiny_dir());
    const auto ref   = reference();
    const auto texts = phrases();
    EXPECT_TRUE(test::close_to_reference("bert embeddings (.bin)", embed_all(*model, texts),
                                         ref.at("embeddings"), 1e-5));

    const TextSimilarity similarity = make_bert_similarity(tiny_dir());
    const int64_t n                 = static_cast<int64_t>(texts.size());
    at::Tensor got                  = torch::zeros({n, n});
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
            got[i][j] = similarity(texts[static_cast<size_t>(i)], texts[static_cast<size_t>(j)]);
    EXPECT_TRUE(
        test::close_to_reference("bert similarity matrix", got, ref.at("similarity"), 1e-5));
    // The direct call agrees with the cached function, and the matrix straddles the 0.5
    // threshold (so the fixture can tell a wrong pooling from a right one).
    EXPECT_NEAR(model->similarity(texts[0], texts[3]), got[0][3].item<double>(), 1e-6);
    EXPECT_LT(ref.at("similarity").min().item<double>(), 0.5);
    EXPECT_NEAR(similarity(texts[0], texts[0]), 1.0, 1e-6);
}

TEST(BertGolden, ModernSafetensorsWithAndWithoutPrefix) {
    const auto ref   = reference();
    const auto texts = phrases();
    for (const std::string prefix : {"bert.", ""}) {
        const auto model = BertTextSimilarity::load(modern_copy("bert-modern", prefix));
        EXPECT_TRUE(
            test::close_to_reference("bert embeddings (safetensors, prefix '" + prefix + "')",
                                     embed_all(*model, texts), ref.at("embeddings"), 1e-5));
    }
}

TEST(BertGolden, ZeroVectorCosineIsZero) {
    // sklearn treats a zero norm as 1: the cosine with a zero vector is 0, not NaN.
    EXPECT_EQ(BertTextSimilarity::cosine(torch::zeros({4}), torch::ones({4})), 0.0);
    EXPECT_NEAR(
        BertTextSimilarity::cosine(torch::tensor({3.0f, 4.0f}), torch::tensor({4.0f, 3.0f})),
        24.0 / 25.0, 1e-7);
}

TEST(BertGolden, BadFoldersSayWhatIsExpected) {
    const std::string expected = "bert-base-uncased";
    const std::string absent   = test::make_temp_dir("bert-bad") + "/absent";
    std::string msg            = error_of([&] { BertTextSimilarity::load(absent); });
    EXPECT_NE(msg.find(absent), std::string::npos) << msg;
    EXPECT_NE(msg.find(expected), std::string::npos) << msg;

    for (const char* removed : {"config.json", "vocab.txt", "pytorch_model.bin"}) {
        const std::string dir = test::make_temp_dir("bert-bad");
        for (const char* file : {"config.json", "vocab.txt", "pytorch_model.bin"})
            if (std::string(file) != removed)
                fs::copy_file(tiny_dir() + "/" + file, dir + "/" + file);
        msg = error_of([&] { BertTextSimilarity::load(dir); });
        const std::string named =
            std::string(removed) == "pytorch_model.bin" ? "model.safetensors" : removed;
        EXPECT_NE(msg.find(named), std::string::npos) << removed << ": " << msg;
        EXPECT_NE(msg.find(expected), std::string::npos) << removed << ": " << msg;
    }

    // Strict loading: a missing and an unexpected key are both listed.
    const std::string broken = modern_copy("bert-broken", "bert.", [](auto& tensors) {
        tensors.erase("bert.encoder.layer.1.output.dense.bias");
        tensors["bert.encoder.layer.1.output.extra"] = torch::zeros({2});
    });
    msg                      = error_of([&] { BertTextSimilarity::load(broken); });
    EXPECT_NE(msg.find("bert.encoder.layer.1.output.dense.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bert.encoder.layer.1.output.extra"), std::string::npos) << msg;
    EXPECT_NE(msg.find(broken), std::string::npos) << msg;

    // A config.json that disagrees with the weights: the mis-shaped key is named.
    const std::string dir = test::make_temp_dir("bert-bad-config");
    fs::copy_file(tiny_dir() + "/vocab.txt", dir + "/vocab.txt");
    fs::copy_file(tiny_dir() + "/pytorch_model.bin", dir + "/pytorch_model.bin");
    test::write_bytes(dir + "/config.json", R"({"hidden_size": 32, "num_attention_heads": 4,
        "num_hidden_layers": 2, "intermediate_size": 64, "max_position_embeddings": 64,
        "vocab_size": 300})");
    msg = error_of([&] { BertTextSimilarity::load(dir); });
    EXPECT_NE(msg.find("word_embeddings"), std::string::npos) << msg;

    test::write_bytes(dir + "/config.json", R"({"hidden_act": "relu"})");
    msg = error_of([&] { BertTextSimilarity::load(dir); });
    EXPECT_NE(msg.find("relu"), std::string::npos) << msg;
    EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
}

TEST(BertGolden, LongInputIsTruncatedToThePositions) {
    // The tiny model has 64 positions: a 100-word phrase is cut to 62 pieces + [CLS] + [SEP]
    // (bert-base-uncased: 512, which is evaluate.py's max_length too).
    const auto model   = BertTextSimilarity::load(tiny_dir());
    const int64_t kept = model->config().max_position_embeddings - 2;
    std::string text, truncated;
    for (int64_t i = 0; i < 100; ++i) text += "red ";
    for (int64_t i = 0; i < kept; ++i) truncated += "red ";
    const at::Tensor embedding = model->embed(text);
    EXPECT_EQ(embedding.size(0), model->config().hidden_size);
    EXPECT_TRUE(test::close_to_reference("bert truncated embedding", embedding,
                                         model->embed(truncated), 1e-6));
}

} // namespace
} // namespace glamm::eval
