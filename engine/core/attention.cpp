#include "core/attention.h"

#include "core/device.h"
#include "core/error.h"

#include <torch/version.h>

#if defined(GLAMM_FUSED_ATTENTION) && TORCH_VERSION_MAJOR >= 2
#define GLAMM_HAS_SDPA 1
#endif

namespace glamm {

bool fused_attention_enabled(const at::Tensor& query) {
#ifdef GLAMM_HAS_SDPA
    static const bool disabled = env_flag("GLAMM_NO_FUSED_ATTENTION");
    const at::ScalarType t     = query.scalar_type();
    return !disabled && query.is_cuda() && (t == at::kBFloat16 || t == at::kHalf);
#else
    (void)query;
    return false;
#endif
}

at::Tensor fused_attention(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                           const at::Tensor& bias, bool causal) {
#ifdef GLAMM_HAS_SDPA
    if (causal && query.size(-2) != key.size(-2))
        fail("fused_attention: a causal mask needs as many queries as keys, got ", query.size(-2),
             " and ", key.size(-2));
    const c10::optional<at::Tensor> mask =
        bias.defined() ? c10::optional<at::Tensor>(bias) : c10::optional<at::Tensor>();
    return at::scaled_dot_product_attention(query, key, value, mask, /*dropout_p=*/0.0, causal);
#else
    (void)query, (void)key, (void)value, (void)bias, (void)causal;
    fail("fused attention is not available in this build (LibTorch ", TORCH_VERSION, ")");
#endif
}

} // namespace glamm
