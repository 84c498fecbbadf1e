// SAM ViT image encoder (segment_anything ImageEncoderViT as shipped in groundingLMM model/SAM) and
// the channel LayerNorm2d that the prompt encoder and mask decoder share.
// Legend: B batch, C channels, E embed_dim, D prompt_embed_dim, G grid (img_size / patch_size).
#pragma once

#include "core/config.h"
#include "core/error.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <vector>

namespace glamm {

// Checkpoint prefix of the image encoder's weights.
inline constexpr char kSamImageEncoderPrefix[] = "model.grounding_encoder.image_encoder.";

// LayerNorm over the channel axis of [B, C, H, W], biased variance
// (ref: segment_anything/modeling/common.py LayerNorm2d). Parameters `weight`, `bias` [C].
struct SamLayerNorm2dImpl : torch::nn::Module {
    SamLayerNorm2dImpl(int64_t channels, double eps);
    at::Tensor forward(const at::Tensor& x); // [B, C, H, W] -> [B, C, H, W]

    at::Tensor weight;
    at::Tensor bias;
    double eps;
};
TORCH_MODULE(SamLayerNorm2d);

// The ViT backbone + neck. Registered names equal the checkpoint keys under
// kSamImageEncoderPrefix (patch_embed.proj, pos_embed, blocks.<i>.*, neck.{0,1,2,3}).
struct SamImageEncoderImpl : torch::nn::Module {
    explicit SamImageEncoderImpl(const SamConfig& config);

    // pixels: [1, 3, img_size, img_size], already normalised with pixel_mean/std and zero-padded
    // bottom/right (any dtype; cast to the module's dtype). Returns [1, D, G, G] in the module's
    // dtype. When `block_outputs` is given, the output of every block ([1, G, G, E]) is appended to
    // it (for bisecting against the reference). `should_abort` is asked before each block and
    // between two chunks of attention heads (attention_chunk_bytes); a stop throws Cancelled.
    at::Tensor forward(const at::Tensor& pixels, std::vector<at::Tensor>* block_outputs = nullptr,
                       const ShouldAbort& should_abort = {});

    // Upper bound on one block of attention scores [heads, T, T] in bytes: global attention over
    // ViT-H's 64×64 tokens would otherwise hold 16 × 4096² scores at once, so heads are processed
    // in chunks of this size (at least one head per chunk), and a stop is honoured between two.
    // Results do not depend on it. 64 MiB: two heads of ViT-H's global attention in bf16 (a
    // global block took ~5 s on two CPU cores, the longest wait for a Stop, docs/benchmarks.md).
    int64_t attention_chunk_bytes = int64_t{1} << 26;

    SamConfig config;
    torch::nn::Conv2d patch_proj{
        nullptr};         // "patch_embed.proj": Conv2d 3 -> E, kernel = stride = patch
    at::Tensor pos_embed; // [1, G, G, E]
    torch::nn::ModuleList blocks{nullptr};
    torch::nn::Sequential neck{nullptr};
};
TORCH_MODULE(SamImageEncoder);

} // namespace glamm
