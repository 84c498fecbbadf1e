// RoIAlign forward, plain loops over a contiguous float32 CPU copy of the features.
// Legend: B images, C channels, H×W feature grid, K regions, S output side.
#include "vision/roi_align.h"

#include "core/error.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace glamm {

namespace {

// One bilinear sample: four grid offsets and their weights (all zero for a sample off the grid).
struct Sample {
    int64_t offset[4] = {0, 0, 0, 0};
    float weight[4]   = {0.f, 0.f, 0.f, 0.f};
};

// ref: pytorch/vision torchvision/csrc/ops/cpu/roi_align_common.h
// (pre_calc_for_bilinear_interpolate) The interpolation of one point (y, x) on an H×W grid with
// detectron2's boundary rules.
Sample bilinear_sample(float y, float x, int64_t height, int64_t width) {
    Sample s;
    // Written as "not inside" so that NaN coordinates also count as outside.
    if (!(y >= -1.f && y <= static_cast<float>(height) && x >= -1.f &&
          x <= static_cast<float>(width)))
        return s;
    y              = std::max(y, 0.f);
    x              = std::max(x, 0.f);
    auto y_low     = static_cast<int64_t>(y);
    auto x_low     = static_cast<int64_t>(x);
    int64_t y_high = y_low + 1;
    int64_t x_high = x_low + 1;
    if (y_low >= height - 1) {
        y_low = y_high = height - 1;
        y              = static_cast<float>(y_low);
    }
    if (x_low >= width - 1) {
        x_low = x_high = width - 1;
        x              = static_cast<float>(x_low);
    }
    const float ly = y - static_cast<float>(y_low), lx = x - static_cast<float>(x_low);
    const float hy = 1.f - ly, hx = 1.f - lx;
    s.offset[0] = y_low * width + x_low;
    s.offset[1] = y_low * width + x_high;
    s.offset[2] = y_high * width + x_low;
    s.offset[3] = y_high * width + x_high;
    s.weight[0] = hy * hx;
    s.weight[1] = hy * lx;
    s.weight[2] = ly * hx;
    s.weight[3] = ly * lx;
    return s;
}

} // namespace

// ref: pytorch/vision torchvision/csrc/ops/cpu/roi_align_kernel.cpp (roi_align_forward_kernel_impl)
at::Tensor roi_align(const at::Tensor& features, const at::Tensor& rois,
                     const RoiAlignOptions& options) {
    if (features.dim() != 4)
        fail("roi_align: features must be [B, C, H, W], got ", features.sizes());
    if (rois.dim() != 2 || rois.size(1) != 5)
        fail("roi_align: rois must be [K, 5] (batch, x1, y1, x2, y2), got ", rois.sizes());
    if (options.output_size <= 0) fail("roi_align: output_size must be positive");

    const at::Tensor input = features.to(at::kCPU, at::kFloat).contiguous(); // [B, C, H, W]
    const at::Tensor boxes = rois.to(at::kCPU, at::kFloat).contiguous();     // [K, 5]
    const int64_t batch = input.size(0), channels = input.size(1);
    const int64_t height = input.size(2), width = input.size(3);
    const int64_t num_rois = boxes.size(0), out = options.output_size;

    at::Tensor output = at::zeros({num_rois, channels, out, out}, input.options()); // [K, C, S, S]
    const float* in_data  = input.data_ptr<float>();
    const float* box_data = boxes.data_ptr<float>();
    float* out_data       = output.data_ptr<float>();

    // torchvision casts the scale to the feature dtype before use.
    const auto scale  = static_cast<float>(options.spatial_scale);
    const float shift = options.aligned ? 0.5f : 0.f;
    std::vector<Sample> samples;
    for (int64_t k = 0; k < num_rois; ++k) {
        const float* box       = box_data + k * 5;
        const auto batch_index = static_cast<int64_t>(box[0]);
        if (batch_index < 0 || batch_index >= batch)
            fail("roi_align: roi ", k, " names image ", box[0], " of a batch of ", batch);

        const float start_x = box[1] * scale - shift;
        const float start_y = box[2] * scale - shift;
        const float end_x   = box[3] * scale - shift;
        const float end_y   = box[4] * scale - shift;
        float roi_w = end_x - start_x, roi_h = end_y - start_y;
        if (!options.aligned) { // legacy mode forces malformed boxes to 1×1
            roi_w = std::max(roi_w, 1.f);
            roi_h = std::max(roi_h, 1.f);
        }
        const float bin_h = roi_h / static_cast<float>(out);
        const float bin_w = roi_w / static_cast<float>(out);
        const int64_t grid_h =
            options.sampling_ratio > 0
                ? options.sampling_ratio
                : static_cast<int64_t>(std::ceil(roi_h / static_cast<float>(out)));
        const int64_t grid_w =
            options.sampling_ratio > 0
                ? options.sampling_ratio
                : static_cast<int64_t>(std::ceil(roi_w / static_cast<float>(out)));
        const auto count = static_cast<float>(std::max<int64_t>(grid_h * grid_w, 1));

        // Sample points and weights are shared by all channels: compute them once per region,
        // ordered (bin row, bin column, sample row, sample column).
        samples.assign(static_cast<size_t>(out * out * grid_h * grid_w), Sample{});
        size_t n = 0;
        for (int64_t ph = 0; ph < out; ++ph)
            for (int64_t pw = 0; pw < out; ++pw)
                for (int64_t iy = 0; iy < grid_h; ++iy) {
                    const float y =
                        start_y + static_cast<float>(ph) * bin_h +
                        (static_cast<float>(iy) + .5f) * bin_h / static_cast<float>(grid_h);
                    for (int64_t ix = 0; ix < grid_w; ++ix) {
                        const float x =
                            start_x + static_cast<float>(pw) * bin_w +
                            (static_cast<float>(ix) + .5f) * bin_w / static_cast<float>(grid_w);
                        samples[n++] = bilinear_sample(y, x, height, width);
                    }
                }

        at::parallel_for(0, channels, 1, [&](int64_t c_begin, int64_t c_end) {
            for (int64_t c = c_begin; c < c_end; ++c) {
                const float* plane = in_data + (batch_index * channels + c) * height * width;
                float* dst         = out_data + (k * channels + c) * out * out;
                size_t i           = 0;
                for (int64_t bin = 0; bin < out * out; ++bin) {
                    float sum = 0.f;
                    for (int64_t g = 0; g < grid_h * grid_w; ++g, ++i) {
                        const Sample& s = samples[i];
                        sum += s.weight[0] * plane[s.offset[0]] + s.weight[1] * plane[s.offset[1]] +
                               s.weight[2] * plane[s.offset[2]] + s.weight[3] * plane[s.offset[3]];
                    }
                    dst[bin] = sum / count;
                }
            }
        });
    }
    return output.to(features.device());
}

} // namespace glamm
