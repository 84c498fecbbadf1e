// Decoding loop on top of the LLaMA and its KV cache (greedy by default, optional temperature /
// top-p sampling), keeping the final-norm hidden state that produced every generated token, and
// GLaMM's rule for which hidden state belongs to a [SEG] token.
// Legend: S prompt positions (expanded), N generated tokens, H hidden size, K [SEG] tokens.
#pragma once

#include "language/kv_cache.h"
#include "language/llama.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace glamm {

// How the decoding steps after the prefill run.
enum class DecodeMode {
    kAuto,      // kCudaGraph on a GPU when the build has CUDA graphs, else kEager
    kEager,     // LlamaForCausalLM::forward over a cache that grows by one position per step
    kStatic,    // StaticDecoder without a graph: fixed shapes, position on the device
    kCudaGraph, // StaticDecoder recorded once as a CUDA graph and replayed per token
};
const char* to_string(DecodeMode mode);

// Runtime knobs of one generate() call.
struct GenerationOptions {
    int64_t max_new_tokens = 512; // what app.py and the eval scripts use
    // Stop ids (kept in the output). Empty: the model config's eos_token_id.
    std::vector<int64_t> eos_token_ids;
    // Round logits to the model's dtype before choosing (the reference's lm_head output is bf16,
    // spec §9.2). Unset: on when the model dtype is bf16 or f16. A no-op when logits already have
    // that dtype.
    std::optional<bool> round_logits_to_model_dtype;
    // 0: greedy (argmax, ties -> lowest id; the reference). > 0: sample from softmax(logits / T).
    double temperature = 0.0;
    double top_p       = 1.0; // nucleus sampling mass (sampling only)
    uint64_t seed      = 0;   // sampling RNG seed (SplitMix64), same seed -> same tokens
    // kAuto picks kCudaGraph on CUDA unless GLAMM_NO_CUDA_GRAPH=1; if recording the graph fails
    // there, decoding goes on with kEager (GenerationResult says so). An explicit mode that
    // cannot run throws.
    DecodeMode decode_mode = DecodeMode::kAuto;
};

struct GenerationCallbacks {
    // Called after each token is chosen: id and its index among the generated tokens (0-based).
    std::function<void(int64_t id, int64_t index)> on_token;
    // Same moment, with the final-norm hidden state that produced the id ([H], model dtype):
    // what a [SEG] mask is decoded from while generation goes on.
    std::function<void(int64_t id, int64_t index, const at::Tensor& producer_hidden)>
        on_token_state;
    // Checked before the prefill, between its decoder layers and before every decoding step;
    // true stops with kAborted. A stop inside the prefill leaves the cache as it was given
    // (prompt_hidden_states then has no rows).
    std::function<bool()> should_abort;
};

enum class StopReason { kEos, kMaxNewTokens, kAborted };
const char* to_string(StopReason reason);

struct GenerationResult {
    std::vector<int64_t> ids; // generated ids (EOS included when it stopped there)
    // Final-norm hidden state of the position whose logits chose each id: row 0 is the prompt's
    // last position, row i > 0 the position of ids[i - 1]. [N, H], model dtype.
    at::Tensor producer_hidden_states;
    // Final-norm hidden states of the prompt positions fed to this call. [S, H], model dtype.
    at::Tensor prompt_hidden_states;
    StopReason stopped_by  = StopReason::kMaxNewTokens;
    DecodeMode decode_mode = DecodeMode::kEager; // what really ran the steps
    std::string decode_fallback; // why kAuto fell back from kCudaGraph ("" when it did not)

    // Hidden states of every position of (prompt + ids) except the last id, as a reference
    // forward over that whole sequence gives them: cat(prompt, producers[1:]). [S + N - 1, H]
    // (just the prompt when N == 0).
    at::Tensor sequence_hidden_states() const;
};

// Runs the prompt embeddings [1, S, H] through `llama` starting at cache.length() (reset() the
// cache for a fresh conversation, truncate() it to reuse a prefix), then decodes up to
// max_new_tokens. On return the cache holds the prompt and every generated token but the last
// (whose keys/values were never needed). Runs without autograd. Throws Error on bad input.
GenerationResult generate(LlamaForCausalLM& llama, const at::Tensor& prompt_embeds, KVCache& cache,
                          const GenerationOptions& options     = {},
                          const GenerationCallbacks& callbacks = {});

// Picks the next token from logits [V] (greedy or sampled as `options` say). `rng_state` carries
// the sampler between calls (start it at options.seed; untouched by greedy). Exposed for tests.
int64_t choose_token(const at::Tensor& logits, const GenerationOptions& options,
                     at::ScalarType model_dtype, uint64_t& rng_state);

// GLaMM's [SEG] rule (spec §6.3): for every `seg_token_id` in `ids` (a token sequence where each
// `image_token_id` slot stands for `num_image_embeddings` rows), the position in the expanded
// sequence of the hidden state just BEFORE it — the state whose logits produced the [SEG]. A
// [SEG] at index 0 is never selected (as in the reference). Order: as in `ids`.
std::vector<int64_t> seg_hidden_positions(const std::vector<int64_t>& ids, int64_t seg_token_id,
                                          int64_t image_token_id, int64_t num_image_embeddings);
// hidden [S, H] or [1, S, H] -> the rows at seg_hidden_positions(...): [K, H].
at::Tensor select_seg_hidden_states(const at::Tensor& hidden, const std::vector<int64_t>& ids,
                                    int64_t seg_token_id, int64_t image_token_id,
                                    int64_t num_image_embeddings);

} // namespace glamm
