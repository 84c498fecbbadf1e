// SAM mask post-processing (two bilinear resizes around a crop) and thresholding.
// Legend: N masks, H×W original image.
#include "grounding/mask_postprocess.h"

#include "core/error.h"

#include <ATen/ATen.h>

namespace glamm {

at::Tensor postprocess_masks(const at::Tensor& low_res_masks, const MaskGeometry& g) {
    if (low_res_masks.dim() != 4 || low_res_masks.size(1) != 1)
        fail("mask post-processing: expected low-res masks [N, 1, h, w], got ",
             low_res_masks.sizes());
    if (g.img_size <= 0 || g.resized_height <= 0 || g.resized_width <= 0 ||
        g.resized_height > g.img_size || g.resized_width > g.img_size || g.original_height <= 0 ||
        g.original_width <= 0)
        fail("mask post-processing: bad geometry (canvas ", g.img_size, ", resized ",
             g.resized_height, "x", g.resized_width, ", original ", g.original_height, "x",
             g.original_width, ")");
    const int64_t n = low_res_masks.size(0);
    if (n == 0) return at::empty({0, g.original_height, g.original_width}, at::kFloat);

    // ref: sam.py Sam.postprocess_masks — F.interpolate(mode="bilinear", align_corners=False) with
    // an output size (no scale factor), which is what upsample_bilinear2d computes without scales.
    at::Tensor masks = low_res_masks.to(at::kFloat).contiguous();
    masks = at::upsample_bilinear2d(masks, {g.img_size, g.img_size}, /*align_corners=*/false);
    masks = masks.slice(2, 0, g.resized_height).slice(3, 0, g.resized_width).contiguous();
    masks = at::upsample_bilinear2d(masks, {g.original_height, g.original_width},
                                    /*align_corners=*/false);
    return masks.select(1, 0); // [N, H, W]
}

at::Tensor binarize_masks(const at::Tensor& logits) {
    return logits > kSamMaskThreshold;
}

} // namespace glamm
