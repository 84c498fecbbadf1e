// Activation functions whose LibTorch 1.13 kernels need a guard to be trained through.
#pragma once

#include <ATen/core/Tensor.h>

namespace glamm {

// Exact (erf) GELU, as at::gelu / nn.GELU() compute it. Without autograd this is at::gelu itself.
// With autograd the backward makes its inputs contiguous first: LibTorch 1.13's CPU
// gelu_backward returns garbage (up to 1e32, then NaN downstream) when the incoming gradient is
// channels-last strided and the saved input is not, which is what a permute after the GELU (SAM's
// output upscaling) produces. Found training GLaMM-Shapes; tests/engine/core/test_activations.cpp.
at::Tensor gelu(const at::Tensor& x);

} // namespace glamm
