#include "core/attention.h"

#include "core/device.h"
#include "core/error.h"

#include <torch/version.h>

#include <cmath>
#include <limits>

#if defined(GLAMM_FUSED_ATTENTION) && TORCH_VERSION_MAJOR >= 2
#define GLAMM_HAS_SDPA 1
#endif

namespace glamm {
namespace {

// What the fused kernel computes, written out (the CPU emulation).
at::Tensor math_attention(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                          const at::Tensor& bias, bool causal) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(query.size(-1)));
    at::Tensor scores  = (at::matmul(query, key.transpose(-2, -1)) * scale).to(at::kFloat);
    const float hidden = -std::numeric_limits<float>::infinity();
    if (bias.defined())
        scores = bias.scalar_type() == at::kBool ? scores.masked_fill(bias.logical_not(), hidden)
                                                 : scores + bias.to(at::kFloat);
    if (causal)
        scores = scores.masked_fill(
            at::ones({query.size(-2), key.size(-2)}, scores.options().dtype(at::kBool)).triu(1),
            hidden);
    return at::matmul(at::softmax(scores, -1).to(query.scalar_type()), value);
}

} // namespace

bool fused_attention_enabled(const at::Tensor& query) {
    if (gpu_kernels_emulated() && query.device().is_cpu()) return true;
#ifdef GLAMM_HAS_SDPA
    static const bool disabled = env_flag("GLAMM_NO_FUSED_ATTENTION");
    const at::ScalarType t     = query.scalar_type();
    return !disabled && query.is_cuda() && (t == at::kBFloat16 || t == at::kHalf);
#else
    return false;
#endif
}

at::Tensor fused_attention(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                           const at::Tensor& bias, bool causal) {
    if (causal && query.size(-2) != key.size(-2))
        fail("fused_attention: a causal mask needs as many queries as keys, got ", query.size(-2),
             " and ", key.size(-2));
    if (query.device().is_cpu()) return math_attention(query, key, value, bias, causal);
#ifdef GLAMM_HAS_SDPA
    const c10::optional<at::Tensor> mask =
        bias.defined() ? c10::optional<at::Tensor>(bias) : c10::optional<at::Tensor>();
    return at::scaled_dot_product_attention(query, key, value, mask, /*dropout_p=*/0.0, causal);
#else
    fail("fused attention is not available on ", query.device(), " in this build (LibTorch ",
         TORCH_VERSION, ")");
#endif
}

} // namespace glamm
