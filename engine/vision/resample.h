// Pillow-exact image resizing (Image.resize with BILINEAR or BICUBIC over the full image), the
// resampler GLaMM's preprocessing runs: antialiased separable convolution, horizontal pass then
// vertical pass through a uint8 intermediate, 22-bit fixed-point coefficients.
// W×H: width×height in pixels; images are RGB8, [H, W, 3] row-major.
#pragma once

#include "vision/image.h"

#include <cstdint>

namespace glamm {

// Pillow's resampling filters that GLaMM uses (PIL.Image.BILINEAR = triangle of support 1,
// PIL.Image.BICUBIC = cubic convolution a = -0.5, support 2), both widened by the scale factor
// when downscaling (antialiasing).
enum class ResampleFilter { Bilinear, Bicubic };

// Returns `src` resized to width×height exactly as Pillow's `Image.resize((width, height), filter)`
// does for an RGB image (box = the whole image, reducing_gap None): the same bytes, not an
// approximation. A pass whose axis keeps its size is skipped; equal sizes give a copy.
// Throws Error when `src` is empty or inconsistent, or a target side is < 1 or too large.
// Cost: O(H·W'·taps_x + H'·W'·taps_y) integer multiply-adds, one core; coefficients are computed
// once per axis.
Image resize_pillow(const Image& src, int64_t width, int64_t height, ResampleFilter filter);

} // namespace glamm
