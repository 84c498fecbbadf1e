// CLIP and SAM preprocessing (spec §4). H×W original, h'×w' SAM-resized, S encoder input side.
#include "vision/image_preprocess.h"

#include "core/error.h"
#include "vision/resample.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace glamm {

namespace {

constexpr int kChannels = 3; // RGB

void require_image(const Image& image, const char* what) {
    if (image.empty()) fail(what, ": the image is empty");
    if (image.rgb.size() != static_cast<size_t>(image.width * image.height * kChannels))
        fail(what, ": the image holds ", image.rgb.size(), " bytes, not ", image.width, "x",
             image.height, "x", kChannels);
}

// Per-channel lookup: uint8 value -> normalised float32, so every pixel is computed exactly as the
// reference's float32 arithmetic does it once (256 entries per channel).
constexpr int kByteValues = 256; // the values a uint8 channel can take
using NormalisationTable = std::array<std::array<float, kByteValues>, kChannels>;

// Writes `image` (h×w RGB8) into `out` ([3, S, S] float32, zero-filled by the caller) at the
// top-left, channel-first, through `table`.
void write_chw(const Image& image, const NormalisationTable& table, int64_t side, float* out) {
    for (int64_t y = 0; y < image.height; ++y) {
        const uint8_t* row = image.rgb.data() + y * image.width * kChannels;
        for (int c = 0; c < kChannels; ++c) {
            float* plane    = out + c * side * side + y * side;
            const auto& lut = table[c];
            for (int64_t x = 0; x < image.width; ++x) plane[x] = lut[row[x * kChannels + c]];
        }
    }
}

void require_three(const std::vector<double>& values, const char* what) {
    if (values.size() != kChannels)
        fail(what, " must hold ", kChannels, " values (RGB), got ", values.size());
}

} // namespace

std::pair<int64_t, int64_t> clip_resize_hw(int64_t height, int64_t width, int64_t shortest_edge) {
    if (height < 1 || width < 1 || shortest_edge < 1)
        fail("clip_resize_hw: sizes must be positive, got ", height, "x", width, " -> ",
             shortest_edge);
    // ref: transformers 4.28 image_transforms.py get_resize_output_image_size
    const bool portrait      = width <= height;
    const int64_t short_side = portrait ? width : height;
    const int64_t long_side  = portrait ? height : width;
    if (short_side == shortest_edge) return {height, width};
    // Python: int(requested_new_short * long / short): exact integer product, true division
    // (correctly rounded double), truncation.
    const auto new_long = static_cast<int64_t>(static_cast<double>(shortest_edge * long_side) /
                                               static_cast<double>(short_side));
    return portrait ? std::make_pair(new_long, shortest_edge)
                    : std::make_pair(shortest_edge, new_long);
}

std::pair<int64_t, int64_t> sam_resize_hw(int64_t height, int64_t width, int64_t longest_side) {
    if (height < 1 || width < 1 || longest_side < 1)
        fail("sam_resize_hw: sizes must be positive, got ", height, "x", width, " -> ",
             longest_side);
    // ref: segment_anything/utils/transforms.py ResizeLongestSide.get_preprocess_shape
    const double scale = longest_side * 1.0 / static_cast<double>(std::max(height, width));
    const auto new_h   = static_cast<int64_t>(static_cast<double>(height) * scale + 0.5);
    const auto new_w   = static_cast<int64_t>(static_cast<double>(width) * scale + 0.5);
    return {new_h, new_w};
}

Image clip_resize_and_crop(const Image& image, int64_t size) {
    require_image(image, "CLIP preprocessing");
    // ref: transformers 4.28 CLIPImageProcessor.preprocess: resize (PIL BICUBIC) then center_crop.
    const auto [h, w]   = clip_resize_hw(image.height, image.width, size);
    const Image resized = resize_pillow(image, w, h, ResampleFilter::Bicubic);
    // ref: image_transforms.center_crop (the resized short side equals `size`, so no padding).
    if (resized.height < size || resized.width < size)
        fail("CLIP preprocessing: resized image ", resized.width, "x", resized.height,
             " is smaller than the ", size, " crop");
    const int64_t top  = (resized.height - size) / 2;
    const int64_t left = (resized.width - size) / 2;
    Image crop;
    crop.width  = size;
    crop.height = size;
    crop.rgb.resize(static_cast<size_t>(size * size * kChannels));
    for (int64_t y = 0; y < size; ++y)
        std::memcpy(crop.rgb.data() + y * size * kChannels,
                    resized.rgb.data() + ((top + y) * resized.width + left) * kChannels,
                    static_cast<size_t>(size * kChannels));
    return crop;
}

at::Tensor preprocess_clip(const Image& image, const ClipVisionConfig& config,
                           const ClipImageProcessorConfig& processor) {
    require_three(processor.image_mean, "CLIP image_mean");
    require_three(processor.image_std, "CLIP image_std");
    const int64_t side = config.image_size;
    const Image crop   = clip_resize_and_crop(image, side);
    // rescale 1/255 then normalise, in float32 as the reference: (u8 / 255 - mean) / std.
    NormalisationTable table;
    for (int c = 0; c < kChannels; ++c) {
        const float mean = static_cast<float>(processor.image_mean[c]);
        const float std  = static_cast<float>(processor.image_std[c]);
        for (int v = 0; v < kByteValues; ++v) table[c][v] = (static_cast<float>(v) / 255.0f - mean) / std;
    }
    at::Tensor pixel_values = at::zeros({1, kChannels, side, side}, at::kFloat); // [1, 3, S, S]
    write_chw(crop, table, side, pixel_values.data_ptr<float>());
    return pixel_values;
}

SamPreprocessed preprocess_sam(const Image& image, const SamConfig& config) {
    require_image(image, "SAM preprocessing");
    require_three(config.pixel_mean, "SAM pixel_mean");
    require_three(config.pixel_std, "SAM pixel_std");
    const int64_t side = config.img_size;
    // ref: groundingLMM app.py grounding_enc_processor / ResizeLongestSide.apply_image
    // (torchvision resize of a PIL image = Pillow BILINEAR).
    const auto [h, w] = sam_resize_hw(image.height, image.width, side);
    if (h < 1 || w < 1)
        fail("SAM preprocessing: a ", image.width, "x", image.height, " image resizes to ", w, "x",
             h, " pixels; its aspect ratio is too extreme");
    SamPreprocessed out;
    out.resized   = resize_pillow(image, w, h, ResampleFilter::Bilinear);
    out.resized_h = h;
    out.resized_w = w;
    // ref: model/SAM/modeling/sam.py preprocess: (x - pixel_mean) / pixel_std in float32 on the
    // 0..255 values, then pad right and bottom with zeros.
    NormalisationTable table;
    for (int c = 0; c < kChannels; ++c) {
        const float mean = static_cast<float>(config.pixel_mean[c]);
        const float std  = static_cast<float>(config.pixel_std[c]);
        for (int v = 0; v < kByteValues; ++v) table[c][v] = (static_cast<float>(v) - mean) / std;
    }
    out.pixel_values = at::zeros({1, kChannels, side, side}, at::kFloat); // [1, 3, S, S]
    write_chw(out.resized, table, side, out.pixel_values.data_ptr<float>());
    return out;
}

} // namespace glamm
