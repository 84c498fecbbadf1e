// BERT encoder (HF transformers BertModel, eval mode, no pooler) and the GCG phrase similarity
// GLaMM's eval/gcg/evaluate.py computes with bert-base-uncased: cosine of mean-pooled last states.
// Legend: B batch (1), T tokens ([CLS] ... [SEP]), C hidden, h heads, d head dim, F intermediate.
#pragma once

#include "core/config.h"
#include "eval/gcg_metrics.h"
#include "eval/wordpiece.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>
#include <vector>

namespace glamm {
class Checkpoint;
}

namespace glamm::eval {

// embeddings.{word_embeddings, position_embeddings, token_type_embeddings, LayerNorm}
struct BertEmbeddingsImpl : torch::nn::Module {
    explicit BertEmbeddingsImpl(const BertConfig& config);
    // input_ids [B, T] (int64) -> [B, T, C]: word + position (0..T-1) + token type 0, LayerNorm.
    at::Tensor forward(const at::Tensor& input_ids);

    torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr},
        token_type_embeddings{nullptr};
    torch::nn::LayerNorm LayerNorm{nullptr}; // HF's attribute name
};
TORCH_MODULE(BertEmbeddings);

// encoder.layer.i.attention.self.{query, key, value}
struct BertSelfAttentionImpl : torch::nn::Module {
    explicit BertSelfAttentionImpl(const BertConfig& config);
    at::Tensor forward(const at::Tensor& hidden); // [B, T, C] -> [B, T, C] (heads merged)

    int64_t num_heads, head_dim;
    torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
};
TORCH_MODULE(BertSelfAttention);

// encoder.layer.i.attention.output.{dense, LayerNorm} and encoder.layer.i.output.{dense,
// LayerNorm}: LayerNorm(dense(x) + residual).
struct BertResidualOutputImpl : torch::nn::Module {
    BertResidualOutputImpl(const BertConfig& config, int64_t in_features);
    at::Tensor forward(const at::Tensor& hidden, const at::Tensor& residual); // -> [B, T, C]

    torch::nn::Linear dense{nullptr};
    torch::nn::LayerNorm LayerNorm{nullptr};
};
TORCH_MODULE(BertResidualOutput);

// encoder.layer.i.attention.{self, output}
struct BertAttentionImpl : torch::nn::Module {
    explicit BertAttentionImpl(const BertConfig& config);
    at::Tensor forward(const at::Tensor& hidden); // [B, T, C] -> [B, T, C]

    BertSelfAttention self_attention{nullptr}; // registered as "self"
    BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

// encoder.layer.i.intermediate.dense, then gelu (erf form).
struct BertIntermediateImpl : torch::nn::Module {
    explicit BertIntermediateImpl(const BertConfig& config);
    at::Tensor forward(const at::Tensor& hidden); // [B, T, C] -> [B, T, F]

    torch::nn::Linear dense{nullptr};
};
TORCH_MODULE(BertIntermediate);

// encoder.layer.i: attention, intermediate, output.
struct BertLayerImpl : torch::nn::Module {
    explicit BertLayerImpl(const BertConfig& config);
    at::Tensor forward(const at::Tensor& hidden); // [B, T, C] -> [B, T, C]

    BertAttention attention{nullptr};
    BertIntermediate intermediate{nullptr};
    BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertLayer);

// encoder.layer.{0 .. L-1}
struct BertEncoderImpl : torch::nn::Module {
    explicit BertEncoderImpl(const BertConfig& config);

    torch::nn::ModuleList layer{nullptr}; // of BertLayer
};
TORCH_MODULE(BertEncoder);

// embeddings + encoder.layer.{0 .. L-1}. named_parameters() equal a BertModel state dict without
// pooler.*; LayerNorm parameters are named weight/bias (legacy files say gamma/beta: see
// load_bert_weights).
struct BertModelImpl : torch::nn::Module {
    explicit BertModelImpl(const BertConfig& config);
    // input_ids [B, T] of one unpadded sequence each (no attention mask: evaluate.py never pads)
    // -> last_hidden_state [B, T, C]. Throws Error if T exceeds max_position_embeddings.
    at::Tensor forward(const at::Tensor& input_ids);

    BertConfig config;
    BertEmbeddings embeddings{nullptr};
    BertEncoder encoder{nullptr};
};
TORCH_MODULE(BertModel);

// Loads `model` strictly from a BertModel / BertForPreTraining checkpoint: keys with or without
// the "bert." prefix; LayerNorm weight/bias or the original release's gamma/beta; pooler.*,
// cls.* (pre-training heads) and embeddings.position_ids are ignored. Throws Error listing
// missing, unexpected and mis-shaped keys.
void load_bert_weights(BertModel& model, const Checkpoint& checkpoint);

// The phrase similarity of evaluate.py (text_similarity_bert). Not thread-safe.
class BertTextSimilarity {
public:
    // Reads `dir`/config.json, vocab.txt and pytorch_model.bin or model.safetensors (f32 on the
    // CPU). Throws Error naming the missing or bad file and what the folder should hold.
    static std::unique_ptr<BertTextSimilarity> load(const std::string& dir);

    // get_bert_embedding: mean over all T tokens ([CLS] and [SEP] included) of the last hidden
    // state of encode(text) (truncated to 512 tokens, or max_position_embeddings if smaller).
    // -> [C] float32.
    at::Tensor embed(const std::string& text);
    // sklearn cosine_similarity of the two embeddings, in float32 as sklearn does with float32
    // input (a zero vector counts as norm 1, giving 0).
    double similarity(const std::string& a, const std::string& b);
    // The same from embeddings [C] (for cached embeddings).
    static double cosine(const at::Tensor& a, const at::Tensor& b);

    const WordpieceTokenizer& tokenizer() const { return tokenizer_; }
    const BertConfig& config() const { return model_->config; }

private:
    BertTextSimilarity(WordpieceTokenizer tokenizer, BertModel model);

    WordpieceTokenizer tokenizer_;
    BertModel model_;
};

// A TextSimilarity (eval/gcg_metrics.h) backed by BertTextSimilarity::load(dir); embeddings are
// cached per distinct string. Throws Error (from load) at creation; the function itself is
// not thread-safe.
TextSimilarity make_bert_similarity(const std::string& dir);

} // namespace glamm::eval
