// RMSNorm as LLaMA computes it (HF LlamaRMSNorm): statistics in fp32, the normalised value cast
// to the weight's dtype, then multiplied by the weight — two roundings in bf16. On a GPU in
// bf16/f16, LibTorch's fused kernel (at::rms_norm, LibTorch >= 2.4) does the same in one launch
// instead of eight, multiplying by the weight before its single rounding.
// Legend: H normalised width.
#pragma once

#include <ATen/ATen.h>

namespace glamm {

// x [..., H] -> x * rsqrt(mean(x^2) + eps) * weight [H], in x's dtype.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// True when rms_norm(x, ...) takes the fused form: a CUDA bf16/f16 x in a build with the kernel
// (unless GLAMM_NO_FUSED_NORM=1), or any CPU x while gpu_kernels_emulated() (the fused form
// written out: fp32 throughout, one rounding).
bool fused_rms_norm_enabled(const at::Tensor& x);

} // namespace glamm
