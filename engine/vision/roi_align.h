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
// device. Computed in float32 on the CPU (features elsewhere are copied to the CPU and the result
// copied back), in torchvision's order of operations. A sample whose coordinate lies below -1 or
// above the grid size (H for y, W for x) contributes 0 to its bin's average; other samples are
// clamped into [0, H-1] × [0, W-1]. Throws Error on bad shapes or a batch index out of range.
// Differentiable in the features (not the boxes) when they require a gradient: the backward
// spreads each bin's gradient over its samples' grid points with their bilinear weights.
at::Tensor roi_align(const at::Tensor& features, const at::Tensor& rois,
                     const RoiAlignOptions& options);

} // namespace glamm
