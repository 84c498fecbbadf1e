// RoIAlign (Mask R-CNN / detectron2), the op GLaMM's region encoder runs through mmcv: average of
// bilinear samples per output bin. Matches torchvision.ops.roi_align and mmcv RoIAlign(pool 'avg').
// Legend: B images, C channels, H×W feature grid, K regions, S output side.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace glamm {

struct RoiAlignOptions {
    int64_t output_size    = 0;    // S: bins per side
    double spatial_scale   = 1.0;  // feature-grid units per box unit (1 / stride)
    int64_t sampling_ratio = 0;    // samples per bin side; <= 0: ceil(roi side / S) per region
    bool aligned           = true; // shift box corners by -0.5 after scaling (pixel-centre model)
};

// features [B, C, H, W] (any floating dtype, any device), rois [K, 5] rows of
// (batch index, x1, y1, x2, y2) in box units. Returns [K, C, S, S] float32 on the features'
// device. On the CPU computed in float32 by plain loops, in torchvision's order of operations;
// features on another device go through roi_align_gather, where they are. A sample whose
// coordinate lies below -1 or above the grid size (H for y, W for x) contributes 0 to its bin's
// average; other samples are clamped into [0, H-1] × [0, W-1]. Throws Error on bad shapes or a
// batch index out of range. Differentiable in the features (not the boxes) when they require a
// gradient: the backward spreads each bin's gradient over its samples' grid points with their
// bilinear weights.
at::Tensor roi_align(const at::Tensor& features, const at::Tensor& rois,
                     const RoiAlignOptions& options);

// The same op as a gather: each region's sample table (grid offsets and bilinear weights, built
// on the host from the boxes) selects from the features' plane of its image, and a weighted sum
// per bin gives [K, C, S, S] float32 on the features' device. Only ATen ops (index_select, mul,
// sum), so it runs on any device and autograd gives its backward. It sums a bin's 4·samples
// products in one reduction where torchvision sums each sample's four first: equal to roi_align
// to float32 rounding. roi_align's path off the CPU; callable on the CPU for its test.
at::Tensor roi_align_gather(const at::Tensor& features, const at::Tensor& rois,
                            const RoiAlignOptions& options);

} // namespace glamm
