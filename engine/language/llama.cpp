// The language model: HF LlamaForCausalLM (transformers 4.28 semantics) and GLaMM's multimodal
// input-embedding assembly.
// Legend: T tokens, S expanded sequence / key positions, H hidden size, V vocabulary,
// P image embeddings, N region boxes, Hq/Hkv query/key-value heads, D head dim.
#include "language/llama.h"

#include "core/attention.h"
#include "core/cuda_graph.h"
#include "core/device.h"
#include "core/linear.h"
#include "core/rms_norm.h"

#include "core/checkpoint.h"
#include "core/error.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <limits>
#include <tuple>
#include <vector>

namespace glamm {
namespace {

// The fast forms written for GPUs (one rounding in RoPE) are taken on CUDA tensors, and on the
// CPU while the tests emulate the GPU's kernels.
bool gpu_form(const at::Tensor& x) {
    return x.is_cuda() || gpu_kernels_emulated();
}

// ref: apply_rotary_pos_emb, rotate-half layout: x * cos + rotate_half(x) * sin with
// rotate_half(x) = cat(-x2, x1). The negation lives in the table instead (sin_signed =
// cat(-sin1, sin2)), so the products are the reference's bit for bit. x [..., T, D]; cos and
// sin_signed [T, D]. On a GPU the product and the sum are rounded once (addcmul).
at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin_signed) {
    const int64_t half       = x.size(-1) / 2;
    const at::Tensor swapped = at::cat({x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
    if (gpu_form(x)) return at::addcmul(x * cos, swapped, sin_signed);
    return x * cos + swapped * sin_signed;
}

// Concatenates weights [O_i, I] into one [sum O_i, I] and makes each a view of its rows, so the
// memory is not doubled and the parameters keep their values and names. Inference only: the
// merged tensor is not a parameter, so no gradient would reach it.
at::Tensor merge_rows(std::initializer_list<at::Tensor*> weights) {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> parts;
    for (const at::Tensor* w : weights) {
        if (w->dim() != 2 || w->size(1) != (*weights.begin())->size(1))
            fail("merging projections: weights ", w->sizes(), " do not share an input width");
        parts.push_back(*w);
    }
    const at::Tensor merged = at::cat(parts, 0);
    int64_t row             = 0;
    for (at::Tensor* w : weights) {
        const int64_t rows = w->size(0);
        w->set_data(merged.narrow(0, row, rows));
        row += rows;
    }
    // The replaced blocks (freed by set_data) go back to the driver at once: left in the
    // allocator's cache, they stayed reserved (25.1 GB reserved for 16.4 GB of tensors, 7B on an
    // H100).
    release_cached_cuda_memory(merged.device());
    return merged;
}

torch::nn::Linear linear_no_bias(int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
}

} // namespace

// ---------------------------------------------------------------------------------------------
// ref: transformers/models/llama/modeling_llama.py (v4.28) LlamaRMSNorm

LlamaRMSNormImpl::LlamaRMSNormImpl(int64_t hidden_size, double eps) : eps(eps) {
    weight = register_parameter("weight", at::ones({hidden_size}));
}

at::Tensor LlamaRMSNormImpl::forward(const at::Tensor& hidden) {
    // Variance in fp32; the normalised value cast to the weight's dtype before the product
    // (core/rms_norm: one fused kernel on GPUs).
    return rms_norm(hidden, weight, eps);
}

// ---------------------------------------------------------------------------------------------
// ref: modeling_llama.py LlamaRotaryEmbedding: inv_freq = 1 / theta^(2j/D), t = 0..positions-1,
// emb = cat(t*inv_freq, t*inv_freq), all in fp32.

RotaryTables rotary_tables(int64_t head_dim, double theta, int64_t positions) {
    const auto f32             = at::TensorOptions().dtype(at::kFloat);
    const at::Tensor exponents = at::arange(0, head_dim, 2, f32) / static_cast<double>(head_dim);
    const at::Tensor inv_freq  = at::pow(theta, exponents).reciprocal(); // [D/2]
    const at::Tensor t         = at::arange(positions, f32);             // [positions]
    const at::Tensor freqs     = at::outer(t, inv_freq);                 // [positions, D/2]
    const at::Tensor emb       = at::cat({freqs, freqs}, -1);            // [positions, D]
    const at::Tensor sin       = emb.sin();
    const int64_t half         = head_dim / 2;
    return {emb.cos(), sin, at::cat({-sin.narrow(-1, 0, half), sin.narrow(-1, half, half)}, -1)};
}

// ---------------------------------------------------------------------------------------------
// ref: modeling_llama.py LlamaAttention (4.28 eager attention; GQA as in later versions)

LlamaAttentionImpl::LlamaAttentionImpl(const LlamaConfig& config)
    : num_heads(config.num_attention_heads), num_kv_heads(config.kv_heads()),
      head_dim(config.head_dim()) {
    if (num_heads % num_kv_heads != 0)
        fail("LlamaAttention: ", num_heads, " attention heads are not a multiple of ", num_kv_heads,
             " key/value heads");
    const int64_t hidden = config.hidden_size;
    q_proj               = register_module("q_proj", linear_no_bias(hidden, num_heads * head_dim));
    k_proj = register_module("k_proj", linear_no_bias(hidden, num_kv_heads * head_dim));
    v_proj = register_module("v_proj", linear_no_bias(hidden, num_kv_heads * head_dim));
    o_proj = register_module("o_proj", linear_no_bias(num_heads * head_dim, hidden));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor>
LlamaAttentionImpl::project(const at::Tensor& hidden, const at::Tensor& cos,
                            const at::Tensor& sin_signed) {
    const int64_t batch = hidden.size(0), count = hidden.size(1);
    if (qkv_weight.defined()) {
        // One product for the three projections, one rotation for queries and keys together.
        const at::Tensor qkv = linear_forward(hidden, qkv_weight)
                                   .view({batch, count, num_heads + 2 * num_kv_heads, head_dim})
                                   .transpose(1, 2); // [1, Hq + 2 Hkv, T, D]
        const at::Tensor qk = rotate(qkv.narrow(1, 0, num_heads + num_kv_heads), cos, sin_signed);
        return {qk.narrow(1, 0, num_heads), qk.narrow(1, num_heads, num_kv_heads),
                qkv.narrow(1, num_heads + num_kv_heads, num_kv_heads)};
    }
    // Projections, split into heads: [1, T, H] -> [1, heads, T, D].
    const at::Tensor query = linear_forward(*q_proj, q_int8, hidden)
                                 .view({batch, count, num_heads, head_dim})
                                 .transpose(1, 2);
    const at::Tensor key = linear_forward(*k_proj, k_int8, hidden)
                               .view({batch, count, num_kv_heads, head_dim})
                               .transpose(1, 2);
    const at::Tensor value = linear_forward(*v_proj, v_int8, hidden)
                                 .view({batch, count, num_kv_heads, head_dim})
                                 .transpose(1, 2);
    // cos/sin [T, D] broadcast over the heads.
    return {rotate(query, cos, sin_signed), rotate(key, cos, sin_signed), value};
}

void LlamaAttentionImpl::merge_projections() {
    if (q_int8.defined()) fail("LlamaAttention: int8 projections cannot be merged");
    if (!qkv_weight.defined())
        qkv_weight = merge_rows({&q_proj->weight, &k_proj->weight, &v_proj->weight});
}

void LlamaAttentionImpl::quantize_int8() {
    if (qkv_weight.defined()) fail("LlamaAttention: merged projections cannot be quantized");
    if (q_int8.defined()) return;
    q_int8 = glamm::quantize_int8(*q_proj);
    k_int8 = glamm::quantize_int8(*k_proj);
    v_int8 = glamm::quantize_int8(*v_proj);
    o_int8 = glamm::quantize_int8(*o_proj);
}

at::Tensor LlamaAttentionImpl::attend(const at::Tensor& query, at::Tensor key, at::Tensor value,
                                      const AttentionMask& mask) {
    const int64_t batch = query.size(0), count = query.size(2), key_count = key.size(2);
    // ref: repeat_kv — query head h uses key/value head h / (Hq / Hkv).
    const int64_t repeats = num_heads / num_kv_heads;
    if (repeats > 1) {
        key = key.unsqueeze(2)
                  .expand({batch, num_kv_heads, repeats, key_count, head_dim})
                  .reshape({batch, num_heads, key_count, head_dim});
        value = value.unsqueeze(2)
                    .expand({batch, num_kv_heads, repeats, key_count, head_dim})
                    .reshape({batch, num_heads, key_count, head_dim});
    }

    at::Tensor attended; // [1, Hq, T, D]
    if (fused_attention_enabled(query)) {
        // On a GPU in bf16/f16: the fused kernel (an additive bias, or a boolean mask: true
        // where a row may look).
        const at::Tensor bias = mask.bias.defined()     ? mask.bias
                                : mask.hidden.defined() ? mask.hidden.logical_not()
                                                        : at::Tensor();
        attended              = fused_attention(query, key, value, bias, mask.causal);
    } else {
        // Scores in the model dtype, mask and softmax in fp32, probabilities cast back.
        at::Tensor scores = at::matmul(query, key.transpose(2, 3)) /
                            std::sqrt(static_cast<double>(head_dim)); // [1, Hq, T, S]
        scores                 = scores.to(at::kFloat);
        at::Tensor hidden_keys = mask.hidden;
        if (mask.causal)
            hidden_keys = at::ones({count, key_count},
                                   at::TensorOptions().dtype(at::kBool).device(scores.device()))
                              .triu(1);
        if (hidden_keys.defined())
            scores = scores.masked_fill(hidden_keys, -std::numeric_limits<float>::infinity());
        const at::Tensor probs = at::softmax(scores, -1).to(query.scalar_type());
        attended               = at::matmul(probs, value);
    }
    return linear_forward(
        *o_proj, o_int8,
        attended.transpose(1, 2).reshape({batch, count, num_heads * head_dim})); // [1, T, H]
}

at::Tensor LlamaAttentionImpl::forward(const at::Tensor& hidden, const at::Tensor& cos,
                                       const at::Tensor& sin_signed, KVCache* cache,
                                       int64_t layer_index, int64_t start) {
    auto [query, key, value] = project(hidden, cos, sin_signed);
    // Keys/values of every position this query block may see: [1, Hkv, S, D].
    if (cache) std::tie(key, value) = cache->write(layer_index, start, key, value);
    const int64_t count = query.size(2), key_count = key.size(2);
    const int64_t offset = key_count - count; // absolute position of query row 0
    AttentionMask mask;
    if (count > 1 && offset == 0) {
        mask.causal = true;
    } else if (count > 1) {
        // Row i (absolute position offset + i) sees keys 0 .. offset + i.
        mask.hidden = at::ones({count, key_count},
                               at::TensorOptions().dtype(at::kBool).device(query.device()))
                          .triu(offset + 1);
    }
    return attend(query, key, value, mask);
}

at::Tensor LlamaAttentionImpl::forward_step(const at::Tensor& hidden, const at::Tensor& cos,
                                            const at::Tensor& sin_signed, KVCache& cache,
                                            int64_t layer_index, const at::Tensor& position,
                                            const AttentionMask& mask) {
    auto [query, key, value] = project(hidden, cos, sin_signed);
    std::tie(key, value)     = cache.write_at(layer_index, position, key, value); // [1, Hkv, N, D]
    return attend(query, key, value, mask);
}

// ---------------------------------------------------------------------------------------------
// ref: modeling_llama.py LlamaMLP

LlamaMLPImpl::LlamaMLPImpl(const LlamaConfig& config) {
    if (config.hidden_act != "silu")
        fail("LlamaMLP: hidden_act '", config.hidden_act, "' is not supported (only silu)");
    gate_proj =
        register_module("gate_proj", linear_no_bias(config.hidden_size, config.intermediate_size));
    up_proj =
        register_module("up_proj", linear_no_bias(config.hidden_size, config.intermediate_size));
    down_proj =
        register_module("down_proj", linear_no_bias(config.intermediate_size, config.hidden_size));
}

at::Tensor LlamaMLPImpl::forward(const at::Tensor& hidden) {
    if (gate_up_weight.defined()) {
        const at::Tensor gate_up = linear_forward(hidden, gate_up_weight); // [..., 2 I]
        const int64_t width      = gate_up.size(-1) / 2;
        return linear_forward(*down_proj, down_int8,
                              at::silu(gate_up.narrow(-1, 0, width)) *
                                  gate_up.narrow(-1, width, width));
    }
    return linear_forward(*down_proj, down_int8,
                          at::silu(linear_forward(*gate_proj, gate_int8, hidden)) *
                              linear_forward(*up_proj, up_int8, hidden));
}

void LlamaMLPImpl::merge_projections() {
    if (gate_int8.defined()) fail("LlamaMLP: int8 projections cannot be merged");
    if (!gate_up_weight.defined())
        gate_up_weight = merge_rows({&gate_proj->weight, &up_proj->weight});
}

void LlamaMLPImpl::quantize_int8() {
    if (gate_up_weight.defined()) fail("LlamaMLP: merged projections cannot be quantized");
    if (gate_int8.defined()) return;
    gate_int8 = glamm::quantize_int8(*gate_proj);
    up_int8   = glamm::quantize_int8(*up_proj);
    down_int8 = glamm::quantize_int8(*down_proj);
}

// ---------------------------------------------------------------------------------------------
// ref: modeling_llama.py LlamaDecoderLayer

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const LlamaConfig& config) {
    self_attn = register_module("self_attn", LlamaAttention(config));
    mlp       = register_module("mlp", LlamaMLP(config));
    input_layernorm =
        register_module("input_layernorm", LlamaRMSNorm(config.hidden_size, config.rms_norm_eps));
    post_attention_layernorm = register_module(
        "post_attention_layernorm", LlamaRMSNorm(config.hidden_size, config.rms_norm_eps));
}

void LlamaDecoderLayerImpl::quantize_int8() {
    self_attn->quantize_int8();
    mlp->quantize_int8();
}

at::Tensor
LlamaDecoderLayerImpl::block(const at::Tensor& hidden_in,
                             const std::function<at::Tensor(const at::Tensor&)>& attention) {
    at::Tensor residual = hidden_in;
    at::Tensor hidden   = attention(input_layernorm(hidden_in));
    hidden              = residual + hidden;
    residual            = hidden;
    hidden              = mlp(post_attention_layernorm(hidden));
    return residual + hidden;
}

at::Tensor LlamaDecoderLayerImpl::forward(const at::Tensor& hidden, const at::Tensor& cos,
                                          const at::Tensor& sin_signed, KVCache* cache,
                                          int64_t layer_index, int64_t start) {
    return block(hidden, [&](const at::Tensor& normed) {
        return self_attn(normed, cos, sin_signed, cache, layer_index, start);
    });
}

at::Tensor LlamaDecoderLayerImpl::forward_step(const at::Tensor& hidden, const at::Tensor& cos,
                                               const at::Tensor& sin_signed, KVCache& cache,
                                               int64_t layer_index, const at::Tensor& position,
                                               const AttentionMask& mask) {
    return block(hidden, [&](const at::Tensor& normed) {
        return self_attn->forward_step(normed, cos, sin_signed, cache, layer_index, position, mask);
    });
}

// ---------------------------------------------------------------------------------------------
// ref: modeling_llama.py LlamaModel

LlamaModelImpl::LlamaModelImpl(const LlamaConfig& config, const LlamaLayerBuilt& on_layer)
    : config_(config) {
    if (config.vocab_size <= 0)
        fail("LlamaModel: vocab_size is not resolved (", config.vocab_size,
             "); use resolve_llama_config()");
    if (config.hidden_size % config.num_attention_heads != 0 || config.head_dim() % 2 != 0)
        fail("LlamaModel: hidden_size ", config.hidden_size, " does not split into ",
             config.num_attention_heads, " heads of even width");
    embed_tokens = register_module("embed_tokens",
                                   torch::nn::Embedding(config.vocab_size, config.hidden_size));
    layers       = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
        LlamaDecoderLayer layer(config);
        if (on_layer) on_layer(i, *layer);
        layers->push_back(layer);
    }
    norm    = register_module("norm", LlamaRMSNorm(config.hidden_size, config.rms_norm_eps));
    rotary_ = rotary_tables(config.head_dim(), config.rope_theta,
                            std::max<int64_t>(config.max_position_embeddings, 1));
}

RotaryTables LlamaModelImpl::rotary(int64_t start, int64_t count,
                                    const at::TensorOptions& options) {
    const int64_t end = start + count;
    if (end > rotary_.cos.size(0)) // HF extends its cos/sin cache the same way
        rotary_ = rotary_tables(config_.head_dim(), config_.rope_theta,
                                std::max(end, 2 * rotary_.cos.size(0)));
    // The reference casts the fp32 tables to the model dtype before rotating.
    // `sin` stays undefined: the decoder rotates with sin_signed only (a cast saved per step).
    return {rotary_.cos.narrow(0, start, count).to(options), at::Tensor(),
            rotary_.sin_signed.narrow(0, start, count).to(options)};
}

at::Tensor LlamaModelImpl::forward(const at::Tensor& inputs_embeds, KVCache* cache, int64_t start,
                                   const ShouldAbort& should_abort) {
    const int64_t count     = inputs_embeds.size(1);
    const RotaryTables rows = rotary(start, count, inputs_embeds.options()); // [T, D]

    at::Tensor hidden   = inputs_embeds; // [1, T, H]
    int64_t layer_index = 0;
    for (const auto& layer : *layers) {
        stop_if_asked(should_abort, "the language model's forward");
        hidden = layer->as<LlamaDecoderLayer>()->forward(hidden, rows.cos, rows.sin_signed, cache,
                                                         layer_index, start);
        ++layer_index;
    }
    if (cache) cache->commit(start, count);
    return norm(hidden); // [1, T, H]
}

at::Tensor LlamaModelImpl::forward_step(const at::Tensor& embeds, const at::Tensor& position,
                                        const RotaryTables& tables, KVCache& cache) {
    const at::Tensor cos        = tables.cos.index_select(0, position); // [1, D]
    const at::Tensor sin_signed = tables.sin_signed.index_select(0, position);
    const int64_t capacity      = tables.cos.size(0);
    // The cache positions after `position`, hidden from the query: made once per step, not per
    // layer (for the fused kernel as an additive bias in the model dtype too).
    AttentionMask mask;
    mask.hidden = at::arange(capacity, position.options()).gt(position).unsqueeze(0); // [1, N]
    if (fused_attention_enabled(embeds))
        mask.bias = at::zeros({1, capacity}, embeds.options())
                        .masked_fill_(mask.hidden, -std::numeric_limits<float>::infinity());
    at::Tensor hidden   = embeds; // [1, 1, H]
    int64_t layer_index = 0;
    for (const auto& layer : *layers) {
        hidden = layer->as<LlamaDecoderLayer>()->forward_step(hidden, cos, sin_signed, cache,
                                                              layer_index, position, mask);
        ++layer_index;
    }
    return norm(hidden); // [1, 1, H]
}

// ---------------------------------------------------------------------------------------------
// ref: modeling_llama.py LlamaForCausalLM

LlamaForCausalLMImpl::LlamaForCausalLMImpl(const LlamaConfig& config,
                                           const LlamaLayerBuilt& on_layer)
    : config_(config) {
    model = register_module("model", LlamaModel(config, on_layer));
    if (!config.tie_word_embeddings)
        lm_head = register_module("lm_head", linear_no_bias(config.hidden_size, config.vocab_size));
}

void LlamaForCausalLMImpl::merge_projections() {
    for (const auto& layer : *model->layers) {
        auto* decoder = layer->as<LlamaDecoderLayer>();
        decoder->self_attn->merge_projections();
        decoder->mlp->merge_projections();
    }
}

void LlamaForCausalLMImpl::quantize_int8(
    const std::function<void(int64_t, int64_t)>& before_layer) {
    const int64_t layers = static_cast<int64_t>(model->layers->size());
    for (int64_t i = 0; i < layers; ++i) {
        if (before_layer) before_layer(i, layers);
        model->layers[i]->as<LlamaDecoderLayer>()->quantize_int8();
    }
    if (before_layer) before_layer(layers, layers);
    quantized_layers_ = true;
    if (lm_head && !lm_head_int8.defined()) lm_head_int8 = glamm::quantize_int8(*lm_head);
}

int64_t LlamaForCausalLMImpl::decode_weight_bytes() const {
    // A linear's bytes: its int8 copy once quantized, else its weight in the model dtype.
    auto bytes = [](const torch::nn::Linear& layer, const Int8Weight& int8) {
        return int8.defined() ? int8.bytes() : layer->weight.numel() * layer->weight.element_size();
    };
    int64_t total = 0;
    for (const auto& layer : *model->layers) {
        const auto* decoder = layer->as<LlamaDecoderLayer>();
        const auto& a       = *decoder->self_attn;
        const auto& m       = *decoder->mlp;
        total += bytes(a.q_proj, a.q_int8) + bytes(a.k_proj, a.k_int8) + bytes(a.v_proj, a.v_int8) +
                 bytes(a.o_proj, a.o_int8) + bytes(m.gate_proj, m.gate_int8) +
                 bytes(m.up_proj, m.up_int8) + bytes(m.down_proj, m.down_int8);
    }
    const at::Tensor& head = lm_head ? lm_head->weight : model->embed_tokens->weight;
    return total +
           (lm_head_int8.defined() ? lm_head_int8.bytes() : head.numel() * head.element_size());
}

at::ScalarType LlamaForCausalLMImpl::dtype() const {
    return model->norm->weight.scalar_type();
}

at::Tensor LlamaForCausalLMImpl::embed(const at::Tensor& ids) {
    if (ids.dim() != 1 || ids.scalar_type() != at::kLong)
        fail("Llama::embed: ids must be a 1-D int64 tensor, got ", ids.sizes(), " ",
             ids.scalar_type());
    if (ids.numel() > 0) {
        const int64_t low = ids.min().item<int64_t>(), high = ids.max().item<int64_t>();
        if (low < 0 || high >= config_.vocab_size)
            fail("Llama::embed: token id ", low < 0 ? low : high, " outside the vocabulary [0, ",
                 config_.vocab_size, ")");
    }
    return model->embed_tokens(ids.to(model->embed_tokens->weight.device())); // [T, H]
}

at::Tensor LlamaForCausalLMImpl::forward(const at::Tensor& inputs_embeds, KVCache* cache,
                                         int64_t start_pos, const ShouldAbort& should_abort) {
    if (inputs_embeds.dim() != 3 || inputs_embeds.size(0) != 1 ||
        inputs_embeds.size(2) != config_.hidden_size)
        fail("Llama::forward: inputs_embeds must be [1, T, ", config_.hidden_size, "], got ",
             inputs_embeds.sizes());
    if (start_pos < 0) fail("Llama::forward: negative start position ", start_pos);
    const at::Tensor embeds = inputs_embeds.to(model->norm->weight.options());
    if (!cache) return model->forward(embeds, nullptr, start_pos, should_abort);
    if (start_pos != cache->length())
        fail("Llama::forward: start_pos ", start_pos, " must equal the cache length ",
             cache->length(), " (truncate() the cache to reuse a prefix)");
    if (cache->num_layers() != config_.num_hidden_layers ||
        cache->kv_heads() != config_.kv_heads() || cache->head_dim() != config_.head_dim())
        fail("Llama::forward: the cache is shaped for another model");
    torch::NoGradGuard no_grad;
    return model->forward(embeds, cache, start_pos, should_abort);
}

at::Tensor LlamaForCausalLMImpl::logits(const at::Tensor& hidden) {
    if (lm_head) return linear_forward(*lm_head, lm_head_int8, hidden); // [..., V]
    return at::linear(hidden, model->embed_tokens->weight);
}

LlamaConfig resolve_llama_config(LlamaConfig config, const Checkpoint& checkpoint) {
    const std::string key = "model.embed_tokens.weight";
    if (!checkpoint.contains(key)) fail("resolving the LLaMA config: the checkpoint has no ", key);
    const auto& shape = checkpoint.stored(key).shape;
    if (shape.size() != 2) fail("resolving the LLaMA config: ", key, " is not 2-D");
    if (shape[1] != config.hidden_size)
        fail("resolving the LLaMA config: ", key, " has width ", shape[1],
             " but config.json says hidden_size ", config.hidden_size);
    if (config.vocab_size == 0) {
        config.vocab_size = shape[0];
    } else if (config.vocab_size != shape[0]) {
        fail("resolving the LLaMA config: config.json says vocab_size ", config.vocab_size, " but ",
             key, " has ", shape[0], " rows");
    }
    return config;
}

void load_llama(LlamaForCausalLM& llama, LoadReport& report, bool layers_loaded) {
    // Optional in some releases and recomputed from rope_theta anyway.
    report.ignore("*.self_attn.rotary_emb.inv_freq");
    if (!layers_loaded) {
        report.load_module(*llama, "");
        return;
    }
    LlamaModelImpl& model = *llama->model;
    report.load_module(*model.embed_tokens, "model.embed_tokens.");
    report.load_module(*model.norm, "model.norm.");
    if (llama->lm_head) report.load_module(*llama->lm_head, "lm_head.");
}

bool is_int8_quantized_key(const std::string& key) {
    if (key == "lm_head.weight") return true;
    const std::string layers = "model.layers.";
    if (key.rfind(layers, 0) != 0) return false;
    const size_t dot = key.find('.', layers.size()); // after the layer number
    if (dot == std::string::npos) return false;
    const std::string rest = key.substr(dot + 1);
    for (const char* name : {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                             "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                             "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"})
        if (rest == name) return true;
    return false;
}

void load_llama_layer(int64_t index, LlamaDecoderLayerImpl& layer, LoadReport& report) {
    report.load_module(layer, "model.layers." + std::to_string(index) + ".");
}

// ---------------------------------------------------------------------------------------------
// ref: groundingLMM/model/llava/llava_with_region_arch.py prepare_inputs_labels_for_multimodal

at::Tensor assemble_embeddings(LlamaForCausalLM& llama, const at::Tensor& ids_in,
                               const at::Tensor& image_features, const at::Tensor& region_features,
                               int64_t image_token_id, int64_t bbox_token_id) {
    if (ids_in.dim() != 1) fail("assemble_embeddings: ids must be 1-D, got ", ids_in.sizes());
    const at::Tensor ids      = ids_in.to(at::kCPU, at::kLong).contiguous();
    const int64_t hidden_size = llama->config().hidden_size;
    const auto options        = llama->model->norm->weight.options();

    // Text embeddings with the image rows spliced in at the placeholder.
    const at::Tensor slots = (ids == image_token_id).nonzero().flatten();
    if (slots.numel() > 1)
        fail("assemble_embeddings: ", slots.numel(), " image placeholders; GLaMM uses one");
    at::Tensor embeds;       // [S, H]
    at::Tensor expanded_ids; // [S], image rows marked with image_token_id
    if (slots.numel() == 0) {
        if (image_features.defined() && image_features.numel() > 0)
            fail("assemble_embeddings: image features given but the ids have no image slot");
        embeds       = llama->embed(ids);
        expanded_ids = ids;
    } else {
        if (!image_features.defined() || image_features.dim() != 2 ||
            image_features.size(1) != hidden_size)
            fail("assemble_embeddings: the ids hold an image slot, so image_features [P, ",
                 hidden_size, "] are required, got ",
                 image_features.defined() ? image_features.sizes() : at::IntArrayRef{});
        const int64_t slot      = slots.item<int64_t>();
        const int64_t after     = ids.numel() - slot - 1;
        const int64_t num_image = image_features.size(0);
        embeds = at::cat({llama->embed(ids.narrow(0, 0, slot)), image_features.to(options),
                          llama->embed(ids.narrow(0, slot + 1, after))},
                         0);
        expanded_ids =
            at::cat({ids.narrow(0, 0, slot), at::full({num_image}, image_token_id, ids.options()),
                     ids.narrow(0, slot + 1, after)});
    }

    // <bbox> rows replaced by the region features, in order. Without region features the rows
    // keep their text embedding (the reference skips the replacement when no boxes are given).
    if (region_features.defined()) {
        if (region_features.dim() != 2 || region_features.size(1) != hidden_size)
            fail("assemble_embeddings: region_features must be [N, ", hidden_size, "], got ",
                 region_features.sizes());
        const at::Tensor rows   = (expanded_ids == bbox_token_id).nonzero().flatten();
        const int64_t num_boxes = region_features.size(0);
        if (rows.numel() > num_boxes)
            fail("assemble_embeddings: the prompt has ", rows.numel(), " <bbox> tokens but only ",
                 num_boxes, " region features");
        // Extra boxes are dropped, as the reference slices reg_feat to the token count.
        if (rows.numel() > 0)
            embeds.index_copy_(0, rows.to(embeds.device()),
                               region_features.narrow(0, 0, rows.numel()).to(options));
    }
    return embeds.unsqueeze(0); // [1, S, H]
}

} // namespace glamm
