// GLaMM's two image preprocessing paths: CLIP (CLIPImageProcessor: shortest side -> image_size with
// Pillow BICUBIC, centre crop, /255, normalise) and SAM (ResizeLongestSide with Pillow BILINEAR,
// normalise on 0..255, zero-pad to a square). Legend: H×W original image, h'×w' SAM-resized,
// S the encoder's square input side (CLIP image_size, SAM img_size).
#pragma once

#include "core/config.h"
#include "vision/image.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>

namespace glamm {

// Size (height, width) after CLIPImageProcessor's resize: the shorter side becomes
// `shortest_edge`, the longer `int(shortest_edge * long / short)` (truncated, computed in double
// like Python; ties: width counts as the short side). ref: transformers 4.28
// image_transforms.get_resize_output_image_size(default_to_square=False).
std::pair<int64_t, int64_t> clip_resize_hw(int64_t height, int64_t width, int64_t shortest_edge);

// Size (h', w') after SAM's ResizeLongestSide(longest_side): scale = longest_side / max(H, W),
// h' = int(H * scale + 0.5), w' = int(W * scale + 0.5).
// ref: segment_anything/utils/transforms.py ResizeLongestSide.get_preprocess_shape.
std::pair<int64_t, int64_t> sam_resize_hw(int64_t height, int64_t width, int64_t longest_side);

// CLIP's view of the image as uint8: resized (Pillow BICUBIC; skipped when the short side already
// equals `size`) then centre-cropped to size×size at ((h - size) // 2, (w - size) // 2).
Image clip_resize_and_crop(const Image& image, int64_t size);

// The CLIP vision tower's input: clip_resize_and_crop to config.image_size, then
// (pixel / 255 - image_mean) / image_std in float32, per RGB channel.
// Returns [1, 3, S, S] float32 (S = config.image_size), CHW, RGB.
// Throws Error on an empty image.
at::Tensor preprocess_clip(const Image& image, const ClipVisionConfig& config,
                           const ClipImageProcessorConfig& processor);

// The SAM image encoder's input and what mask post-processing needs.
struct SamPreprocessed {
    at::Tensor pixel_values; // [1, 3, S, S] float32, (pixel - pixel_mean) / pixel_std on the
                             // resized image at the top-left, zeros right and below (S = img_size)
    Image resized; // h'×w' uint8 RGB: the image after ResizeLongestSide, before normalising
    int64_t resized_h = 0; // h' (GLaMM's resize_list entry: the valid crop inside S×S)
    int64_t resized_w = 0; // w'
};

// ResizeLongestSide(config.img_size) with Pillow BILINEAR, normalise with config.pixel_mean /
// pixel_std on 0..255 values in float32, zero-pad bottom/right to S×S.
// Throws Error on an empty image or a pixel_mean / pixel_std that is not 3 values.
SamPreprocessed preprocess_sam(const Image& image, const SamConfig& config);

} // namespace glamm
