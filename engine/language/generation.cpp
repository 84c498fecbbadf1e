// Decoding loop over the LLaMA with a KV cache, and GLaMM's [SEG] hidden-state rule.
// Legend: S prompt positions (expanded), N generated tokens, H hidden size, V vocabulary.
#include "language/generation.h"

#include "core/cuda_graph.h"
#include "core/device.h"
#include "core/error.h"
#include "language/static_decoder.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace glamm {
namespace {

// Cache capacity granularity for fixed-shape decoding (positions): 64 bf16 keys are 128 bytes,
// the widest alignment the fused attention kernels ask of a mask row.
constexpr int64_t kCapacityQuantum = 64;

// SplitMix64: a tiny, well-mixed generator whose whole state is one integer, so sampling is
// reproducible from a seed on every platform.
uint64_t next_random(uint64_t& state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z          = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z          = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform in [0, 1) with 53 random bits.
double next_uniform(uint64_t& state) {
    return static_cast<double>(next_random(state) >> 11) * (1.0 / 9007199254740992.0);
}

} // namespace

const char* to_string(StopReason reason) {
    switch (reason) {
    case StopReason::kEos:
        return "eos";
    case StopReason::kMaxNewTokens:
        return "max_new_tokens";
    case StopReason::kAborted:
        return "aborted";
    }
    return "?";
}

const char* to_string(DecodeMode mode) {
    switch (mode) {
    case DecodeMode::kAuto:
        return "auto";
    case DecodeMode::kEager:
        return "eager";
    case DecodeMode::kStatic:
        return "static";
    case DecodeMode::kCudaGraph:
        return "cuda_graph";
    }
    return "?";
}

at::Tensor GenerationResult::sequence_hidden_states() const {
    if (!producer_hidden_states.defined() || producer_hidden_states.size(0) <= 1)
        return prompt_hidden_states;
    return at::cat({prompt_hidden_states,
                    producer_hidden_states.narrow(0, 1, producer_hidden_states.size(0) - 1)});
}

int64_t choose_token(const at::Tensor& logits_in, const GenerationOptions& options,
                     at::ScalarType model_dtype, uint64_t& rng_state) {
    at::Tensor logits  = logits_in.detach().to(at::kCPU).flatten();
    const bool reduced = model_dtype == at::kBFloat16 || model_dtype == at::kHalf;
    if (options.round_logits_to_model_dtype.value_or(reduced) &&
        logits.scalar_type() != model_dtype)
        logits = logits.to(model_dtype);
    logits              = logits.to(at::kFloat).contiguous(); // exact for bf16/f16: ties survive
    const float* values = logits.data_ptr<float>();
    const int64_t vocab = logits.numel();
    if (vocab == 0) fail("choose_token: empty logits");

    if (options.temperature <= 0.0) {
        // ref: HF greedy search = torch.argmax: the first (lowest) id among equal maxima.
        int64_t best = -1;
        for (int64_t i = 0; i < vocab; ++i)
            if (!std::isnan(values[i]) && (best < 0 || values[i] > values[best])) best = i;
        if (best < 0) fail("choose_token: every logit is NaN");
        return best;
    }

    // Sampling: softmax(logits / T) in double, nucleus of mass top_p (most probable first, ties
    // by lower id), then inverse-CDF draw.
    const double inv_temperature = 1.0 / options.temperature;
    double max_value             = -INFINITY;
    for (int64_t i = 0; i < vocab; ++i)
        if (!std::isnan(values[i])) max_value = std::max(max_value, double(values[i]));
    if (!std::isfinite(max_value)) fail("choose_token: no finite logit to sample from");
    std::vector<double> probs(vocab);
    double total = 0.0;
    for (int64_t i = 0; i < vocab; ++i) {
        probs[i] =
            std::isnan(values[i]) ? 0.0 : std::exp((values[i] - max_value) * inv_temperature);
        total += probs[i];
    }
    std::vector<int64_t> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return probs[a] > probs[b]; });
    const double top_p = std::clamp(options.top_p, 0.0, 1.0);
    double kept        = 0.0;
    size_t keep        = 0;
    while (keep < order.size() && (keep == 0 || kept < top_p * total)) kept += probs[order[keep++]];
    const double target = next_uniform(rng_state) * kept;
    double cumulative   = 0.0;
    for (size_t i = 0; i < keep; ++i) {
        cumulative += probs[order[i]];
        if (target < cumulative) return order[i];
    }
    return order[keep - 1];
}

GenerationResult generate(LlamaForCausalLM& llama, const at::Tensor& prompt_embeds, KVCache& cache,
                          const GenerationOptions& options, const GenerationCallbacks& callbacks) {
    torch::NoGradGuard no_grad;
    const LlamaConfig& config = llama->config();
    if (prompt_embeds.dim() != 3 || prompt_embeds.size(0) != 1 || prompt_embeds.size(1) == 0 ||
        prompt_embeds.size(2) != config.hidden_size)
        fail("generate: prompt embeddings must be [1, S > 0, ", config.hidden_size, "], got ",
             prompt_embeds.sizes());
    if (options.max_new_tokens < 0)
        fail("generate: max_new_tokens must be >= 0, got ", options.max_new_tokens);
    const std::vector<int64_t> eos   = options.eos_token_ids.empty()
                                           ? std::vector<int64_t>{config.eos_token_id}
                                           : options.eos_token_ids;
    const at::ScalarType model_dtype = llama->dtype();
    uint64_t rng_state               = options.seed;
    auto aborted = [&] { return callbacks.should_abort && callbacks.should_abort(); };

    GenerationResult result;
    const auto hidden_options     = llama->model->norm->weight.options();
    result.prompt_hidden_states   = at::empty({0, config.hidden_size}, hidden_options);
    result.producer_hidden_states = at::empty({0, config.hidden_size}, hidden_options);
    if (aborted()) {
        result.stopped_by = StopReason::kAborted;
        return result;
    }

    // Prefill: one pass over the prompt; then one position per step. Reserving up front means
    // no step reallocates the cache.
    DecodeMode mode = options.decode_mode;
    if (mode == DecodeMode::kAuto) {
        static const bool graphs_off = env_flag("GLAMM_NO_CUDA_GRAPH");
        mode = llama->model->norm->weight.is_cuda() && CudaGraph::supported() && !graphs_off
                   ? DecodeMode::kCudaGraph
                   : DecodeMode::kEager;
    }
    result.decode_mode   = mode;
    const int64_t needed = cache.length() + prompt_embeds.size(1) + options.max_new_tokens;
    // Fixed-shape steps attend over the whole capacity: a multiple of kCapacityQuantum keeps
    // the fused kernel's mask aligned (no per-layer padding copy).
    cache.reserve(mode == DecodeMode::kEager
                      ? needed
                      : (needed + kCapacityQuantum - 1) / kCapacityQuantum * kCapacityQuantum);
    at::Tensor prompt_hidden; // [S, H]
    try {
        prompt_hidden =
            llama->forward(prompt_embeds, &cache, cache.length(), callbacks.should_abort)[0];
    } catch (const Cancelled&) {
        result.stopped_by = StopReason::kAborted; // the cache committed nothing
        return result;
    }
    result.prompt_hidden_states    = prompt_hidden;
    at::Tensor last                = prompt_hidden[prompt_hidden.size(0) - 1]; // [H]

    std::optional<StaticDecoder> fixed; // made at the first step (kStatic, kCudaGraph)
    auto decode_step = [&](const at::Tensor& embeds) -> at::Tensor { // [1, 1, H] -> [H]
        if (result.decode_mode == DecodeMode::kEager)
            return llama->forward(embeds, &cache, cache.length())[0][0];
        try {
            if (!fixed) fixed.emplace(llama, cache, result.decode_mode == DecodeMode::kCudaGraph);
            return fixed->step(embeds);
        } catch (const Error& e) {
            // Only an automatic choice may fall back; the step did not commit its position.
            if (options.decode_mode != DecodeMode::kAuto) throw;
            result.decode_fallback = e.what();
            result.decode_mode     = DecodeMode::kEager;
            fixed.reset();
            return llama->forward(embeds, &cache, cache.length())[0][0];
        }
    };

    std::vector<at::Tensor> producers;
    result.stopped_by = StopReason::kMaxNewTokens;
    for (int64_t index = 0; index < options.max_new_tokens; ++index) {
        const int64_t id = choose_token(llama->logits(last), options, model_dtype, rng_state);
        result.ids.push_back(id);
        producers.push_back(last);
        if (callbacks.on_token) callbacks.on_token(id, index);
        if (callbacks.on_token_state) callbacks.on_token_state(id, index, last);
        if (std::find(eos.begin(), eos.end(), id) != eos.end()) {
            result.stopped_by = StopReason::kEos;
            break;
        }
        if (index + 1 == options.max_new_tokens) break;
        if (aborted()) {
            result.stopped_by = StopReason::kAborted;
            break;
        }
        const at::Tensor token = at::full({1}, id, at::TensorOptions().dtype(at::kLong));
        last                   = decode_step(llama->embed(token).unsqueeze(0));
    }
    if (!producers.empty()) result.producer_hidden_states = at::stack(producers); // [N, H]
    return result;
}

// ---------------------------------------------------------------------------------------------
// ref: groundingLMM/model/GLaMM.py evaluate: seg_mask = cat(zeros(575), ids[1:] == [SEG]) over
// the hidden states of the whole sequence — i.e. the position just before each [SEG] (575 is
// num_image_embeddings - 1 for the one image placeholder; derived here, not assumed).

std::vector<int64_t> seg_hidden_positions(const std::vector<int64_t>& ids, int64_t seg_token_id,
                                          int64_t image_token_id, int64_t num_image_embeddings) {
    if (num_image_embeddings < 0) fail("seg_hidden_positions: negative image embedding count");
    std::vector<int64_t> positions;
    int64_t expanded = 0; // position of ids[t] in the expanded sequence
    for (size_t t = 0; t < ids.size(); ++t) {
        if (ids[t] == image_token_id) {
            expanded += num_image_embeddings;
            continue;
        }
        if (ids[t] == seg_token_id && t > 0) positions.push_back(expanded - 1);
        ++expanded;
    }
    return positions;
}

at::Tensor select_seg_hidden_states(const at::Tensor& hidden_in, const std::vector<int64_t>& ids,
                                    int64_t seg_token_id, int64_t image_token_id,
                                    int64_t num_image_embeddings) {
    const at::Tensor hidden = hidden_in.dim() == 3 ? hidden_in.squeeze(0) : hidden_in; // [S, H]
    if (hidden.dim() != 2)
        fail("select_seg_hidden_states: hidden must be [S, H], got ", hidden_in.sizes());
    const auto positions =
        seg_hidden_positions(ids, seg_token_id, image_token_id, num_image_embeddings);
    for (int64_t p : positions)
        if (p >= hidden.size(0))
            fail("select_seg_hidden_states: [SEG] needs hidden position ", p, " but only ",
                 hidden.size(0), " are given");
    const at::Tensor index =
        at::tensor(positions, at::TensorOptions().dtype(at::kLong)).to(hidden.device());
    return hidden.index_select(0, index); // [K, H]
}

} // namespace glamm
