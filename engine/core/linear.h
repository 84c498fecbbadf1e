// A Linear layer's forward for decoding: one row of activations against a bf16 weight matrix is a
// matrix-vector product bound by the bytes of the weights, and on CPUs with AVX512-BF16 a plain
// streaming kernel (vdpbf16ps, f32 accumulation, rows split over the threads) reads them faster
// than LibTorch 1.13's bf16 matmul does for one row. Everything else goes to at::linear.
// Weights may also be kept as int8 rows (Int8Weight: the language model's linears with
// ModelOptions::quantize = "int8"), which halves the bytes a decoding step reads against bf16.
// Legend: T rows of activations, I input width, O output width.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

#include <string>

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

// A weight [O, I] as int8 rows with one f32 scale each (symmetric, rounded to nearest even):
// w[o, i] ≈ scales[o] · values[o, i] with scales[o] = max_i |w[o, i]| / 127, so every element
// is within scales[o] / 2 of the original (a row of zeros has scale 0).
struct Int8Weight {
    at::Tensor values; // [O, I] int8, contiguous
    at::Tensor scales; // [O] f32

    // `weight` [O, I] of any floating dtype on the CPU; throws if it is not 2-D or holds a
    // non-finite value.
    static Int8Weight quantize(const at::Tensor& weight);
    bool defined() const { return values.defined(); }
    // scales[o] · values[o, i] -> [O, I] in `dtype` (what the int8 products compute with).
    at::Tensor dequantize(c10::ScalarType dtype) const;
    int64_t bytes() const; // values and scales
};

// y [..., O] = x [..., I] · dequantize(weight)^T + bias, in x's dtype. One row of x on the CPU
// (decoding) streams the int8 rows (int8_gemv_kernel(): products and sums in f32, each row's sum
// scaled once, rounded once to x's dtype); several rows (a prefill) or another device multiply by
// the weight dequantized to x's dtype with at::linear.
at::Tensor linear_forward(const at::Tensor& x, const Int8Weight& weight,
                          const at::Tensor& bias = {});
// The layer's product, through `int8` when it is defined (quantize_int8 emptied the layer's own
// weight), through its weight otherwise.
at::Tensor linear_forward(const torch::nn::LinearImpl& layer, const Int8Weight& int8,
                          const at::Tensor& x);
// Quantizes the layer's weight and frees its float copy (the parameter keeps its name, shaped
// [0, I]); the bias stays as it is. For inference only: the layer can no longer be trained or
// saved.
Int8Weight quantize_int8(torch::nn::LinearImpl& layer);

// The kernel linear_forward runs for one row against an Int8Weight on this CPU: "avx512",
// "avx2", or "none" (the dequantized product). GLAMM_INT8_KERNEL=avx2 or none in the environment
// chooses a lesser one (to compare or test them); GLAMM_NO_GEMV=1 means none.
std::string int8_gemv_kernel();

} // namespace glamm
