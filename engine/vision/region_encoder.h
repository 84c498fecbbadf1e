// GLaMM's region encoder (model/layers.py MLVLROIQueryModule): multi-level CLIP features fused
// across levels, RoIAlign per box, one LLaMA-width vector per box that replaces a <bbox> token.
// Legend: C CLIP width (embed_dims), H LLaMA hidden size, L levels, K boxes, g CLIP grid side,
// S RoIAlign output side, P box-embedding width.
#pragma once

#include "core/config.h"
#include "core/error.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <vector>

namespace glamm {

// Checkpoint key prefix of the region encoder.
inline constexpr char kRegionEncoderPrefix[] = "model.region_encoder.";

// mlvl_fuse.fuse_convs.r: mmcv ConvModule = 3×3 conv (no bias) -> GroupNorm ("gn") -> ReLU.
struct FuseConvModuleImpl : torch::nn::Module {
    FuseConvModuleImpl(const RegionEncoderConfig& config, int64_t channels);
    at::Tensor forward(const at::Tensor& x); // [1, C, h, w] -> [1, C, h, w]

    torch::nn::Conv2d conv{nullptr};
    torch::nn::GroupNorm gn{nullptr};
};
TORCH_MODULE(FuseConvModule);

// mlvl_fuse: coordinate channels + per-level 1×1 input conv, then num_fuse rounds of channel
// shuffling with the neighbouring levels through one shared ConvModule per round.
struct MlvlFuseModuleImpl : torch::nn::Module {
    MlvlFuseModuleImpl(const RegionEncoderConfig& config, int64_t channels);
    // L maps [1, C, h_l, w_l], finest first -> L fused maps of the same shapes. `should_abort`
    // is asked before each 3×3 convolution (a stop throws Cancelled).
    std::vector<at::Tensor> forward(const std::vector<at::Tensor>& levels,
                                    const ShouldAbort& should_abort = {});

    int64_t channels, shuffle_channels, remain_channels;
    torch::nn::ModuleList input_conv{nullptr}; // L × Conv2d(C + 2, C, 1)
    torch::nn::ModuleList fuse_convs{nullptr}; // num_fuse × FuseConvModule
};
TORCH_MODULE(MlvlFuseModule);

// Intermediate tensors of one forward, for bisecting against the reference's debug dump.
struct RegionEncoderTrace {
    std::vector<at::Tensor> fused_levels; // L × [1, C, h_l, w_l] after mlvl_fuse
    std::vector<at::Tensor> roi_levels;   // L × [K, C, S, S] RoIAlign per level
    at::Tensor flatten_linear;            // [K, C] before adding the box embedding
    at::Tensor pos_embedding;             // [K, C]
};

// roi_align (mmdet MlvlRoIExtractor subclass): RoIAlign per level, pconvs, flatten_linear,
// pos_embedd(box), updims.
struct MlvlRoiExtractorImpl : torch::nn::Module {
    MlvlRoiExtractorImpl(const RegionEncoderConfig& config, int64_t channels, int64_t out_dims,
                         int64_t patch_size);
    // fused L × [1, C, h_l, w_l] finest first, boxes [K, 4] normalised (x1, y1, x2, y2) ->
    // [K, H]. `trace` (optional) receives the intermediates.
    at::Tensor forward(const std::vector<at::Tensor>& fused, const at::Tensor& boxes,
                       RegionEncoderTrace* trace = nullptr);

    RegionEncoderConfig config;
    std::vector<double> strides;           // box units (box_scale px) per grid cell, finest first
    torch::nn::ModuleList pconvs{nullptr}; // L × Conv2d(C, C, 3, pad 1)
    torch::nn::Sequential pos_embedd{nullptr}; // Linear(4,P) ReLU LN(P) Linear(P,C) ReLU LN(C)
    torch::nn::Linear flatten_linear{nullptr}; // C·S·S -> C
    torch::nn::Linear updims{nullptr};         // C -> H
};
TORCH_MODULE(MlvlRoiExtractor);

// The whole region encoder; named_parameters() equal the checkpoint keys under
// "model.region_encoder.".
struct RegionEncoderImpl : torch::nn::Module {
    // channels = CLIP hidden size (GlammConfig::mm_hidden_size), out_dims = LLaMA hidden size,
    // patch_size = CLIP patch size (the coarsest level's stride in box units). The box-embedding
    // width is config.pos_embed_dim (set it from the checkpoint's pos_embedd.0.weight shape).
    // Throws Error if the widths do not split (C not divisible by 4 or by gn_groups).
    RegionEncoderImpl(const RegionEncoderConfig& config, int64_t channels, int64_t out_dims,
                      int64_t patch_size);

    // clip_levels: L × [1, g², C] CLIP hidden states without CLS, shallowest first (from
    // ClipVisionFeatures::region_levels); boxes: [K, 4] (x1/W, y1/H, x2/W, y2/H) of the original
    // image. Returns [K, H] in the module's dtype. Numerics follow the reference: upsampling,
    // neighbour resizing and RoIAlign in float32, everything else in the module's dtype; the box
    // embedding reads the boxes cast to the module's dtype, RoIAlign reads boxes × box_scale
    // computed in the boxes' own dtype (the caller does GLaMM's fp16->bf16 rounding, spec §3.3).
    // K = 0 gives [0, H]. Throws Error on shape mismatches. forward = extract(fuse(levels)).
    at::Tensor forward(const std::vector<at::Tensor>& clip_levels, const at::Tensor& boxes,
                       RegionEncoderTrace* trace = nullptr);
    // The part that does not depend on the boxes — levels upsampled and fused (mlvl_fuse):
    // L × [1, C, g·2^(L-1-l), g·2^(L-1-l)]. Nearly all of the encoder's work (at GLaMM's size
    // ~4.6 TFLOP of 3×3 convolutions over 1024 channels), so a session keeps it per image.
    // `should_abort` is asked before each convolution (a stop throws Cancelled).
    std::vector<at::Tensor> fuse(const std::vector<at::Tensor>& clip_levels,
                                 const ShouldAbort& should_abort = {});
    // RoIAlign and the projections for boxes [K, 4] on fused maps from fuse() -> [K, H].
    at::Tensor extract(const std::vector<at::Tensor>& fused, const at::Tensor& boxes,
                       RegionEncoderTrace* trace = nullptr);

    RegionEncoderConfig config;
    int64_t channels;
    MlvlFuseModule mlvl_fuse{nullptr};
    MlvlRoiExtractor roi_align{nullptr};
};
TORCH_MODULE(RegionEncoder);

} // namespace glamm
