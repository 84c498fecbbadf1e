// SAM mask post-processing: low-resolution decoder logits -> logits at the original image size
// (ref: groundingLMM model/SAM/modeling/sam.py Sam.postprocess_masks) and the binary threshold.
// Legend: N masks, h×w low-res grid, H×W original image.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace glamm {

// Logit threshold of a foreground pixel (Sam.mask_threshold).
inline constexpr double kSamMaskThreshold = 0.0;

// Where the image sits in the SAM input and how large it was.
struct MaskGeometry {
    int64_t img_size        = 0; // SAM input side (SamConfig::img_size), the square canvas
    int64_t resized_height  = 0; // h' of the image after ResizeLongestSide, inside the canvas
    int64_t resized_width   = 0; // w'
    int64_t original_height = 0; // H of the image the user gave
    int64_t original_width  = 0; // W
};

// low_res_masks [N, 1, h, w] (any float dtype) -> fp32 logits [N, H, W]:
// cast to fp32, bilinear (align_corners=false) to img_size², crop [:h', :w'], bilinear
// (align_corners=false) to H×W, take channel 0. N may be 0 (returns [0, H, W]).
// Throws Error on a bad shape or a geometry outside the canvas.
at::Tensor postprocess_masks(const at::Tensor& low_res_masks, const MaskGeometry& geometry);

// logits [N, H, W] -> bool [N, H, W], true where logit > kSamMaskThreshold.
at::Tensor binarize_masks(const at::Tensor& logits);

} // namespace glamm
