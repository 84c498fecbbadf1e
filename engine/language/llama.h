// The language model: HF LlamaForCausalLM (transformers 4.28 semantics; Vicuna-7B v1.5 in GLaMM)
// plus GLaMM's multimodal input-embedding assembly (image rows spliced in, <bbox> rows replaced).
// Legend: T tokens, S expanded sequence, H hidden size, V vocabulary, P image embeddings,
// N region boxes, Hq/Hkv query/key-value heads, D head dim.
#pragma once

#include "core/config.h"
#include "core/error.h"
#include "core/linear.h"
#include "language/kv_cache.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <string>
#include <tuple>

namespace glamm {

class Checkpoint;
class LoadReport;

// LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), statistics in fp32, cast back, then x weight.
struct LlamaRMSNormImpl : torch::nn::Module {
    LlamaRMSNormImpl(int64_t hidden_size, double eps);
    at::Tensor forward(const at::Tensor& hidden); // [..., H] -> [..., H]

    at::Tensor weight; // [H]
    double eps;
};
TORCH_MODULE(LlamaRMSNorm);

// Rotary position tables cos/sin [positions, D] in fp32 (HF LlamaRotaryEmbedding, rotate-half
// layout: the table repeats the D/2 frequencies twice). Not a module buffer: the checkpoint's
// optional `rotary_emb.inv_freq` is ignored and the tables are recomputed from rope_theta.
struct RotaryTables {
    at::Tensor cos;        // [positions, D] f32
    at::Tensor sin;        // [positions, D] f32
    at::Tensor sin_signed; // sin with its first half negated: rotate_half(x) * sin equals
                           // cat(x2, x1) * sin_signed exactly
};
RotaryTables rotary_tables(int64_t head_dim, double theta, int64_t positions);

// Which keys each query row may not see: `hidden` [T, S] bool (undefined: none) or `causal` (key
// j > row i, T == S); `bias` optionally the same mask prepared once as an additive [T, S] tensor
// in the model dtype (0 / -inf) for the fused kernel.
struct AttentionMask {
    at::Tensor hidden;
    at::Tensor bias;
    bool causal = false;
};

// Self-attention with RoPE over absolute positions, grouped-query heads and fp32 softmax.
struct LlamaAttentionImpl : torch::nn::Module {
    explicit LlamaAttentionImpl(const LlamaConfig& config);
    // hidden [1, T, H]; cos/sin_signed [T, D] for the positions of these T rows (model dtype,
    // RotaryTables); `cache` (may be null) receives this layer's keys/values at
    // [start, start + T).
    at::Tensor forward(const at::Tensor& hidden, const at::Tensor& cos,
                       const at::Tensor& sin_signed, KVCache* cache, int64_t layer_index,
                       int64_t start); // -> [1, T, H]
    // One decoding step at a device-side position (LlamaModelImpl::forward_step): hidden
    // [1, 1, H], cos/sin_signed [1, D]; keys/values written at `position`; `mask` hides the cache
    // positions after it ([1, N]). -> [1, 1, H]
    at::Tensor forward_step(const at::Tensor& hidden, const at::Tensor& cos,
                            const at::Tensor& sin_signed, KVCache& cache, int64_t layer_index,
                            const at::Tensor& position, const AttentionMask& mask);
    // Inference on a GPU: the q/k/v weights merged into one [(Hq + 2 Hkv) D, H] tensor (the three
    // parameters become views of it), so one product replaces three.
    void merge_projections();
    // Inference on the CPU: the four projections as int8 rows (Int8Weight; their float weights
    // are freed). Not with merged projections.
    void quantize_int8();

    torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
    at::Tensor qkv_weight; // merged (not a parameter); undefined until merge_projections()
    Int8Weight q_int8, k_int8, v_int8, o_int8; // undefined until quantize_int8()
    int64_t num_heads, num_kv_heads, head_dim;

private:
    // hidden [1, T, H] -> rotated query [1, Hq, T, D], rotated key and value [1, Hkv, T, D].
    std::tuple<at::Tensor, at::Tensor, at::Tensor>
    project(const at::Tensor& hidden, const at::Tensor& cos, const at::Tensor& sin_signed);
    // softmax(q k^T / sqrt(D)) v over keys/values [1, Hkv, S, D] with `mask`, then o_proj.
    // -> [1, T, H]
    at::Tensor attend(const at::Tensor& query, at::Tensor key, at::Tensor value,
                      const AttentionMask& mask);
};
TORCH_MODULE(LlamaAttention);

// SwiGLU MLP: down(silu(gate(x)) * up(x)).
struct LlamaMLPImpl : torch::nn::Module {
    explicit LlamaMLPImpl(const LlamaConfig& config);
    at::Tensor forward(const at::Tensor& hidden); // [..., H] -> [..., H]
    // Inference on a GPU: the gate/up weights merged into one [2 I, H] tensor (views, as above).
    void merge_projections();
    // The three projections as int8 rows (as LlamaAttentionImpl::quantize_int8).
    void quantize_int8();

    torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
    at::Tensor gate_up_weight; // merged (not a parameter); undefined until merge_projections()
    Int8Weight gate_int8, up_int8, down_int8; // undefined until quantize_int8()
};
TORCH_MODULE(LlamaMLP);

// Pre-norm decoder block.
struct LlamaDecoderLayerImpl : torch::nn::Module {
    explicit LlamaDecoderLayerImpl(const LlamaConfig& config);
    at::Tensor forward(const at::Tensor& hidden, const at::Tensor& cos,
                       const at::Tensor& sin_signed, KVCache* cache, int64_t layer_index,
                       int64_t start); // [1,T,H] -> [1,T,H]
    at::Tensor forward_step(const at::Tensor& hidden, const at::Tensor& cos,
                            const at::Tensor& sin_signed, KVCache& cache, int64_t layer_index,
                            const at::Tensor& position,
                            const AttentionMask& mask); // [1,1,H] -> [1,1,H]
    // Its seven linears as int8 rows (LlamaForCausalLMImpl::quantize_int8); again: no-op.
    void quantize_int8();

    LlamaAttention self_attn{nullptr};
    LlamaMLP mlp{nullptr};
    LlamaRMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};

private:
    // The pre-norm residual structure around `attention` (which gets the normed input).
    at::Tensor block(const at::Tensor& hidden,
                     const std::function<at::Tensor(const at::Tensor&)>& attention);
};
TORCH_MODULE(LlamaDecoderLayer);

// Called with (i, layer) once decoder layer i is built, before layer i + 1 is: loading a release
// there replaces one layer's default initialisation at a time, so a 7B model never holds its
// whole initialisation (the load's memory peak; load_llama_layer).
using LlamaLayerBuilt = std::function<void(int64_t, LlamaDecoderLayerImpl&)>;

// HF LlamaModel: embed_tokens, layers, final norm (registered as "model" below).
struct LlamaModelImpl : torch::nn::Module {
    explicit LlamaModelImpl(const LlamaConfig& config, const LlamaLayerBuilt& on_layer = {});
    // inputs_embeds [1, T, H] at absolute positions [start, start + T) -> final-norm hidden
    // states [1, T, H]. `should_abort` is asked before each layer: a stop throws Cancelled with
    // the cache's length() unchanged (the positions written are not committed).
    at::Tensor forward(const at::Tensor& inputs_embeds, KVCache* cache, int64_t start,
                       const ShouldAbort& should_abort = {});
    // One decoding step with fixed shapes and no host synchronisation (what a CUDA graph
    // records): embeds [1, 1, H] of the token at `position` ([1] int64 on the model's device);
    // `tables` = rotary(0, N, options) for a cache allocated with capacity N. Writes the
    // keys/values at `position` and attends to positions 0 .. position; the cache's length() is the
    // caller's to commit. -> final-norm hidden [1, 1, H]
    at::Tensor forward_step(const at::Tensor& embeds, const at::Tensor& position,
                            const RotaryTables& tables, KVCache& cache);
    // Rotary table rows cos and sin_signed (sin left undefined) for positions
    // [start, start + count) cast to `options` (the reference rotates with tables cast to the
    // model dtype).
    RotaryTables rotary(int64_t start, int64_t count, const at::TensorOptions& options);

    torch::nn::Embedding embed_tokens{nullptr};
    torch::nn::ModuleList layers{nullptr};
    LlamaRMSNorm norm{nullptr};

private:
    LlamaConfig config_;
    RotaryTables rotary_; // grows on demand past max_position_embeddings (as HF does)
};
TORCH_MODULE(LlamaModel);

// HF LlamaForCausalLM. named_parameters() equal the checkpoint keys under prefix "":
// "model.embed_tokens.weight", "model.layers.{i}.…", "model.norm.weight", "lm_head.weight"
// (lm_head absent when tie_word_embeddings). Works in the dtype of its parameters (f32 or bf16).
struct LlamaForCausalLMImpl : torch::nn::Module {
    // config.vocab_size must be resolved (> 0): see resolve_llama_config().
    explicit LlamaForCausalLMImpl(const LlamaConfig& config, const LlamaLayerBuilt& on_layer = {});

    // Token embeddings of ids [T] (int64, no image placeholder) -> [T, H] in the model dtype.
    at::Tensor embed(const at::Tensor& ids);
    // inputs_embeds [1, T, H] (cast to the model dtype) at absolute positions
    // [start_pos, start_pos + T) -> final-norm hidden states [1, T, H]. With a cache, start_pos
    // must equal cache->length(); the keys/values of the T positions are appended to it and the
    // call runs without autograd. Without a cache the T rows attend only to each other. A stop
    // (should_abort, asked before each layer) throws Cancelled and leaves the cache as it was.
    at::Tensor forward(const at::Tensor& inputs_embeds, KVCache* cache = nullptr,
                       int64_t start_pos = 0, const ShouldAbort& should_abort = {});
    // lm_head: hidden [..., H] -> logits [..., V] in the model dtype (bf16 in the reference).
    at::Tensor logits(const at::Tensor& hidden);

    const LlamaConfig& config() const { return config_; }
    // A cache shaped for this model (capacity 0 = grow as needed).
    KVCache make_cache(int64_t capacity = 0) const { return KVCache(config_, capacity); }
    // Merges every layer's q/k/v and gate/up weights (inference on a GPU; see
    // LlamaAttentionImpl::merge_projections). Values, names and results stay the same.
    void merge_projections();
    // Every decoder layer's linears and lm_head as int8 rows with one scale each (Int8Weight),
    // their float copies freed: decoding on the CPU reads about half the bytes of bf16. The
    // embeddings and norms keep the model dtype, activations stay in it. Inference only (the
    // model can no longer be trained or saved); not after merge_projections(). `before_layer`
    // (may be empty) is called with (i, layers) before layer i and with (layers, layers) before
    // lm_head: progress, and a stop by throwing.
    void quantize_int8(const std::function<void(int64_t, int64_t)>& before_layer = {});
    bool quantized() const { return quantized_layers_; }
    // Bytes of the weights one decoding step reads: every decoder layer's linears and lm_head
    // (int8 values and scales once quantized).
    int64_t decode_weight_bytes() const;
    // Dtype of the parameters (what forward computes in).
    at::ScalarType dtype() const;

    LlamaModel model{nullptr};
    torch::nn::Linear lm_head{nullptr};
    Int8Weight lm_head_int8; // undefined until quantize_int8() (and with tied embeddings)

private:
    LlamaConfig config_;
    bool quantized_layers_ = false;
};
TORCH_MODULE(LlamaForCausalLM);

// The config with vocab_size taken from model.embed_tokens.weight when config.json has none (0);
// throws if both are given and disagree, or if the tensor is missing.
LlamaConfig resolve_llama_config(LlamaConfig config, const Checkpoint& checkpoint);

// Loads every parameter of `llama` from the checkpoint root (prefix ""), the decoder layers
// unless `layers_loaded` (loaded as they were built: load_llama_layer); marks the optional
// `*.self_attn.rotary_emb.inv_freq` keys as ignored (recomputed from rope_theta).
void load_llama(LlamaForCausalLM& llama, LoadReport& report, bool layers_loaded = false);
// True for the checkpoint keys quantize_int8 replaces: every decoder layer's seven projection
// weights and lm_head.weight.
bool is_int8_quantized_key(const std::string& key);
// Loads model.layers.{index}.* into decoder layer `index`: a LlamaLayerBuilt.
void load_llama_layer(int64_t index, LlamaDecoderLayerImpl& layer, LoadReport& report);

// GLaMM's input embeddings (llava_with_region_arch.py prepare_inputs_labels_for_multimodal):
// ids [T] (int64) with at most one `image_token_id` slot; embed_tokens of every other id; the slot
// replaced by image_features [P, H] (required iff the slot is present); then every row whose id is
// `bbox_token_id` replaced, in order, by region_features [N, H] (N must equal the number of such
// ids; pass an undefined tensor when there are none). -> [1, S, H] with S = T - 1 + P (T without
// an image), in the model dtype.
at::Tensor assemble_embeddings(LlamaForCausalLM& llama, const at::Tensor& ids,
                               const at::Tensor& image_features, const at::Tensor& region_features,
                               int64_t image_token_id, int64_t bbox_token_id);

} // namespace glamm
