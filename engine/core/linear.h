// A Linear layer's forward for decoding: one row of activations against a bf16 weight matrix is a
// matrix-vector product bound by the bytes of the weights, and on CPUs with AVX512-BF16 a plain
// streaming kernel (vdpbf16ps, f32 accumulation, rows split over the threads) reads them faster
// than LibTorch 1.13's bf16 matmul does for one row. Everything else goes to at::linear.
// Legend: T rows of activations, I input width, O output width.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

namespace glamm {

// y [..., O] = x [..., I] · weight [O, I]^T + bias. Uses the streaming kernel when x holds one
// row, x and weight are bf16 on the CPU and the CPU has AVX512-BF16 (unless the environment
// variable GLAMM_NO_GEMV=1 turns it off); at::linear otherwise.
at::Tensor linear_forward(const torch::nn::LinearImpl& layer, const at::Tensor& x);
// The same for a weight [O, I] and an optional bias [O] (e.g. several layers' weights merged).
at::Tensor linear_forward(const at::Tensor& x, const at::Tensor& weight,
                          const at::Tensor& bias = {});

// True when linear_forward would use the streaming kernel for this x and weight.
bool streaming_gemv_applies(const at::Tensor& x, const at::Tensor& weight);

} // namespace glamm
