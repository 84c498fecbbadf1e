// Fused scaled-dot-product attention where LibTorch has it (PyTorch >= 2.0's
// at::scaled_dot_product_attention: flash / memory-efficient kernels on CUDA). The reference
// formulas (softmax(q k^T / sqrt(d) + bias) v, written out by each component) stay the path for
// float32 and for the CPU, so the golden data is matched bit for bit where it always was; on a GPU
// in bf16/f16 the fused kernel computes the same function with fp32 accumulation.
// Legend: N batch (or batch × heads), h heads, T queries, S keys, d head width.
#pragma once

#include <ATen/ATen.h>

namespace glamm {

// True when `query` (a CUDA bf16/f16 tensor) can use the fused kernel in this build. Off with the
// environment variable GLAMM_NO_FUSED_ATTENTION=1 (to compare against the written-out path).
// Also true for a CPU query while gpu_kernels_emulated() (core/device.h).
bool fused_attention_enabled(const at::Tensor& query);

// softmax(q k^T / sqrt(d) + bias) v for q [N, h, T, d], k and v [N, h, S, d], bias undefined,
// additive (broadcastable to [N, h, T, S] in q's dtype) or boolean (true: the key takes part);
// `causal` masks key j > query i (T == S only). On a CPU tensor (emulation, below) the same
// function is computed with plain matmuls and an fp32 softmax. Throws Error on a GPU tensor when
// this build has no fused kernel.
at::Tensor fused_attention(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                           const at::Tensor& bias, bool causal);

} // namespace glamm
