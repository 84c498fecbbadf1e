// BertModel forward (HF transformers models/bert/modeling_bert.py, eval mode: dropout off, no
// attention mask) and evaluate.py's mean-pooled cosine phrase similarity.
// Legend: B batch (1), T tokens, C hidden, h heads, d head dim, F intermediate.
#include "eval/bert.h"

#include "core/checkpoint.h"
#include "core/error.h"

#include <torch/torch.h>

#include <cfloat>
#include <cmath>
#include <filesystem>
#include <unordered_map>

namespace glamm::eval {

namespace fs = std::filesystem;

namespace {

// The one rename between HF's parameter names and the original bert-base-uncased release
// (Google's TF names kept by pytorch_model.bin): LayerNorm weight/bias were saved as gamma/beta.
struct LegacyName {
    const char* current;
    const char* legacy;
};
constexpr LegacyName kLegacyNames[] = {{"LayerNorm.weight", "LayerNorm.gamma"},
                                       {"LayerNorm.bias", "LayerNorm.beta"}};

// "...LayerNorm.weight" -> "...LayerNorm.gamma"; "" when `name` has no legacy form.
std::string legacy_name(const std::string& name) {
    for (const LegacyName& rename : kLegacyNames) {
        const std::string current = rename.current;
        if (name.size() >= current.size() &&
            name.compare(name.size() - current.size(), current.size(), current) == 0)
            return name.substr(0, name.size() - current.size()) + rename.legacy;
    }
    return {};
}

// What load() tells the user a folder must hold.
constexpr const char* kExpectedFolder =
    "expected a bert-base-uncased folder holding config.json, vocab.txt and pytorch_model.bin or "
    "model.safetensors";
// Weight files Checkpoint::open accepts in a folder, in its order of preference.
constexpr const char* kWeightFiles[] = {"model.safetensors.index.json", "model.safetensors",
                                        "pytorch_model.bin.index.json", "pytorch_model.bin"};
// sklearn's _handle_zeros_in_scale: a norm below 10 * machine epsilon (float32 here) counts as 1.
constexpr double kZeroNormFactor = 10.0;

torch::nn::LayerNorm make_layer_norm(const BertConfig& config) {
    return torch::nn::LayerNorm(
        torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps));
}

} // namespace

// ---------------------------------------------------------------------------------------------
// ref: transformers models/bert/modeling_bert.py BertEmbeddings

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertConfig& config) {
    word_embeddings = register_module("word_embeddings",
                                      torch::nn::Embedding(config.vocab_size, config.hidden_size));
    position_embeddings =
        register_module("position_embeddings",
                        torch::nn::Embedding(config.max_position_embeddings, config.hidden_size));
    token_type_embeddings = register_module(
        "token_type_embeddings", torch::nn::Embedding(config.type_vocab_size, config.hidden_size));
    LayerNorm = register_module("LayerNorm", make_layer_norm(config));
}

at::Tensor BertEmbeddingsImpl::forward(const at::Tensor& input_ids) {
    const int64_t tokens = input_ids.size(1);
    // token_type_ids default to zeros, position_ids to 0..T-1 (absolute embeddings).
    const at::Tensor positions = torch::arange(
        tokens, torch::TensorOptions().dtype(torch::kLong).device(input_ids.device()));
    const at::Tensor token_types = torch::zeros_like(input_ids);
    at::Tensor embeddings        = word_embeddings(input_ids) + token_type_embeddings(token_types);
    embeddings                   = embeddings + position_embeddings(positions).unsqueeze(0);
    return LayerNorm(embeddings); // [B, T, C]
}

// ---------------------------------------------------------------------------------------------
// ref: transformers models/bert/modeling_bert.py BertSelfAttention (eager, absolute positions)

BertSelfAttentionImpl::BertSelfAttentionImpl(const BertConfig& config)
    : num_heads(config.num_attention_heads), head_dim(config.head_dim()) {
    auto linear = [&](const char* name) {
        return register_module(name, torch::nn::Linear(config.hidden_size, config.hidden_size));
    };
    query = linear("query");
    key   = linear("key");
    value = linear("value");
}

at::Tensor BertSelfAttentionImpl::forward(const at::Tensor& hidden) {
    const int64_t batch = hidden.size(0), tokens = hidden.size(1);
    auto heads = [&](const at::Tensor& x) { // [B, T, C] -> [B, h, T, d]
        return x.view({batch, tokens, num_heads, head_dim}).transpose(1, 2);
    };
    const at::Tensor q = heads(query(hidden)), k = heads(key(hidden)), v = heads(value(hidden));
    // scores = q k^T / sqrt(d); no mask (a single unpadded sequence adds zeros in HF).
    const at::Tensor scores =
        torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(head_dim));
    const at::Tensor probs   = torch::softmax(scores, -1); // [B, h, T, T]
    const at::Tensor context = torch::matmul(probs, v);    // [B, h, T, d]
    return context.transpose(1, 2).reshape({batch, tokens, num_heads * head_dim});
}

// ref: modeling_bert.py BertSelfOutput / BertOutput
BertResidualOutputImpl::BertResidualOutputImpl(const BertConfig& config, int64_t in_features) {
    dense     = register_module("dense", torch::nn::Linear(in_features, config.hidden_size));
    LayerNorm = register_module("LayerNorm", make_layer_norm(config));
}

at::Tensor BertResidualOutputImpl::forward(const at::Tensor& hidden, const at::Tensor& residual) {
    return LayerNorm(dense(hidden) + residual);
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& config) {
    self_attention = register_module("self", BertSelfAttention(config));
    output         = register_module("output", BertResidualOutput(config, config.hidden_size));
}

at::Tensor BertAttentionImpl::forward(const at::Tensor& hidden) {
    return output(self_attention(hidden), hidden);
}

// ref: modeling_bert.py BertIntermediate (ACT2FN["gelu"]: the exact erf form)
BertIntermediateImpl::BertIntermediateImpl(const BertConfig& config) {
    dense =
        register_module("dense", torch::nn::Linear(config.hidden_size, config.intermediate_size));
}

at::Tensor BertIntermediateImpl::forward(const at::Tensor& hidden) {
    return torch::gelu(dense(hidden)); // [B, T, F]
}

// ref: modeling_bert.py BertLayer (no cross-attention; chunk size 0)
BertLayerImpl::BertLayerImpl(const BertConfig& config) {
    attention    = register_module("attention", BertAttention(config));
    intermediate = register_module("intermediate", BertIntermediate(config));
    output       = register_module("output", BertResidualOutput(config, config.intermediate_size));
}

at::Tensor BertLayerImpl::forward(const at::Tensor& residual) {
    const at::Tensor hidden = attention(residual);
    return output(intermediate(hidden), hidden);
}

BertEncoderImpl::BertEncoderImpl(const BertConfig& config) {
    layer = register_module("layer", torch::nn::ModuleList());
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) layer->push_back(BertLayer(config));
}

BertModelImpl::BertModelImpl(const BertConfig& config_) : config(config_) {
    embeddings = register_module("embeddings", BertEmbeddings(config));
    encoder    = register_module("encoder", BertEncoder(config));
}

at::Tensor BertModelImpl::forward(const at::Tensor& input_ids) {
    if (input_ids.dim() != 2) fail("BERT expects input_ids [B, T], got ", input_ids.sizes());
    if (input_ids.size(1) > config.max_position_embeddings)
        fail("BERT input of ", input_ids.size(1), " tokens exceeds max_position_embeddings (",
             config.max_position_embeddings, ")");
    // ref: modeling_bert.py BertModel.forward (last_hidden_state; the pooler is not run)
    at::Tensor hidden = embeddings(input_ids);
    for (const auto& layer : *encoder->layer) hidden = layer->as<BertLayer>()->forward(hidden);
    return hidden; // [B, T, C]
}

void load_bert_weights(BertModel& model, const Checkpoint& checkpoint) {
    // BertForPreTraining saves (the original release) prefix the encoder with "bert."; a bare
    // BertModel.save_pretrained does not.
    const std::string probe = "embeddings.word_embeddings.weight";
    std::string prefix;
    if (checkpoint.contains("bert." + probe))
        prefix = "bert.";
    else if (!checkpoint.contains(probe))
        fail(checkpoint.source(), " holds neither bert.", probe, " nor ", probe,
             ": not a BERT checkpoint");

    LoadReport report(checkpoint);
    auto has_legacy = [&](const std::string& name) {
        const std::string legacy = legacy_name(name);
        return !legacy.empty() && checkpoint.contains(prefix + legacy);
    };
    report.load_module(*model, prefix, has_legacy);
    {
        torch::NoGradGuard no_grad;
        for (auto& item : model->named_parameters(/*recurse=*/true)) {
            if (checkpoint.contains(prefix + item.key()) || !has_legacy(item.key())) continue;
            const std::string key      = prefix + legacy_name(item.key());
            const StoredTensor& stored = checkpoint.stored(key);
            if (stored.shape != item.value().sizes().vec())
                fail(checkpoint.source(), ": ", key, " has shape ", c10::IntArrayRef(stored.shape),
                     ", expected ", item.value().sizes());
            item.value().copy_(checkpoint.tensor(key));
            report.consume(key);
        }
    }
    report.ignore(prefix + "pooler.");                 // BertPooler: not used by evaluate.py
    report.ignore("cls.");                             // pre-training heads
    report.ignore(prefix + "embeddings.position_ids"); // a buffer older transformers saved
    report.finish(cat("BERT checkpoint ", checkpoint.source()));
}

// ---------------------------------------------------------------------------------------------
// ref: groundingLMM eval/gcg/evaluate.py get_bert_embedding / text_similarity_bert

BertTextSimilarity::BertTextSimilarity(WordpieceTokenizer tokenizer, BertModel model)
    : tokenizer_(std::move(tokenizer)), model_(std::move(model)) {}

std::unique_ptr<BertTextSimilarity> BertTextSimilarity::load(const std::string& dir) {
    if (!fs::is_directory(dir))
        fail("BERT text model: ", dir, " is not a folder; ", kExpectedFolder);
    for (const char* file : {"config.json", "vocab.txt"})
        if (!fs::exists(fs::path(dir) / file))
            fail("BERT text model: ", (fs::path(dir) / file).string(), " is missing; ",
                 kExpectedFolder);
    bool has_weights = false;
    for (const char* file : kWeightFiles)
        has_weights = has_weights || fs::exists(fs::path(dir) / file);
    if (!has_weights)
        fail("BERT text model: ", dir, " has no pytorch_model.bin or model.safetensors; ",
             kExpectedFolder);

    return with_context("loading BERT text model from " + dir, [&] {
        const BertConfig config = load_bert_config(dir);
        WordpieceTokenizer tokenizer =
            WordpieceTokenizer::load((fs::path(dir) / "vocab.txt").string());
        if (tokenizer.vocab_size() > config.vocab_size)
            fail("vocab.txt has ", tokenizer.vocab_size(),
                 " pieces but config.json's vocab_size is ", config.vocab_size);
        BertModel model(config);
        const Checkpoint checkpoint = Checkpoint::open(dir);
        load_bert_weights(model, checkpoint);
        model->eval();
        return std::unique_ptr<BertTextSimilarity>(
            new BertTextSimilarity(std::move(tokenizer), std::move(model)));
    });
}

at::Tensor BertTextSimilarity::embed(const std::string& text) {
    c10::InferenceMode inference;
    // tokenizer(text, return_tensors="pt", max_length=512, truncation=True): [CLS] ... [SEP],
    // token_type 0, attention mask all ones (one sequence, no padding).
    const int64_t max_length = std::min(kBertEvalMaxLength, model_->config.max_position_embeddings);
    const std::vector<int64_t> ids = tokenizer_.encode(text, max_length);
    const at::Tensor input_ids =
        torch::tensor(ids, torch::TensorOptions().dtype(torch::kLong)).unsqueeze(0); // [1, T]
    const at::Tensor last_hidden_state = model_->forward(input_ids);                 // [1, T, C]
    // torch.mean(outputs.last_hidden_state[0], dim=0): every token, [CLS] and [SEP] included.
    return last_hidden_state[0].mean(0).to(torch::kFloat).clone(); // [C]
}

double BertTextSimilarity::cosine(const at::Tensor& a, const at::Tensor& b) {
    // sklearn cosine_similarity([a], [b]) on float32 rows: normalize each row by its L2 norm
    // (sqrt of the sum of squares; ~0 counts as 1), then the dot product, all in float32.
    c10::InferenceMode inference;
    auto normalized = [](const at::Tensor& x) {
        const at::Tensor row = x.to(torch::kFloat).flatten();
        float norm           = row.dot(row).sqrt().item<float>();
        if (norm < kZeroNormFactor * FLT_EPSILON) norm = 1.0f;
        return row / norm;
    };
    return static_cast<double>(normalized(a).dot(normalized(b)).item<float>());
}

double BertTextSimilarity::similarity(const std::string& a, const std::string& b) {
    return cosine(embed(a), embed(b));
}

TextSimilarity make_bert_similarity(const std::string& dir) {
    struct State {
        std::unique_ptr<BertTextSimilarity> model;
        std::unordered_map<std::string, at::Tensor> cache; // text -> embedding [C]
        const at::Tensor& embedding(const std::string& text) {
            auto it = cache.find(text);
            if (it == cache.end()) it = cache.emplace(text, model->embed(text)).first;
            return it->second;
        }
    };
    auto state   = std::make_shared<State>();
    state->model = BertTextSimilarity::load(dir);
    return [state](const std::string& gt, const std::string& pred) {
        const at::Tensor gt_embedding = state->embedding(gt);
        return BertTextSimilarity::cosine(gt_embedding, state->embedding(pred));
    };
}

} // namespace glamm::eval
