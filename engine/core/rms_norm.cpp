// RMSNorm in its reference and fused forms (see the header).
#include "core/rms_norm.h"

#include "core/device.h"

#include <torch/version.h>

#if defined(GLAMM_FUSED_NORM) &&                                                                   \
    (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))
#define GLAMM_HAS_RMS_NORM 1
#endif

namespace glamm {

bool fused_rms_norm_enabled(const at::Tensor& x) {
    if (x.device().is_cpu()) return gpu_kernels_emulated();
#ifdef GLAMM_HAS_RMS_NORM
    static const bool disabled = env_flag("GLAMM_NO_FUSED_NORM");
    const at::ScalarType t     = x.scalar_type();
    return !disabled && x.is_cuda() && (t == at::kBFloat16 || t == at::kHalf);
#else
    return false;
#endif
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
    if (fused_rms_norm_enabled(x)) {
#ifdef GLAMM_HAS_RMS_NORM
        if (!x.device().is_cpu()) return at::rms_norm(x, {x.size(-1)}, weight, eps);
#endif
        // The fused kernel's arithmetic written out: fp32 throughout, rounded once.
        const at::Tensor x32 = x.to(at::kFloat);
        return (x32 * at::rsqrt(x32.pow(2).mean({-1}, true) + eps) * weight.to(at::kFloat))
            .to(x.scalar_type());
    }
    // ref: modeling_llama.py LlamaRMSNorm.forward
    const at::Tensor x32      = x.to(at::kFloat);
    const at::Tensor variance = x32.pow(2).mean({-1}, /*keepdim=*/true);
    const at::Tensor normed   = (x32 * at::rsqrt(variance + eps)).to(weight.scalar_type());
    return weight * normed;
}

} // namespace glamm
