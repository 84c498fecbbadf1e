// RoIAlign forward and backward: plain loops over contiguous float32 CPU copies on the CPU, a
// gather of the sample points in ATen ops elsewhere.
// Legend: B images, C channels, H×W feature grid, K regions, S output side.
#include "vision/roi_align.h"

#include "core/error.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

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

// The sample points of one region and the count each bin's sum is divided by.
struct RegionSamples {
    std::vector<Sample> samples; // ordered (bin row, bin column, sample row, sample column)
    int64_t per_bin = 1;         // samples per bin
    float count     = 1.f;       // the divisor of a bin's sum
};

// ref: pytorch/vision torchvision/csrc/ops/cpu/roi_align_kernel.cpp (roi_align_forward_kernel_impl)
// The sample points of region `box` (x1, y1, x2, y2 in box units) on an H×W grid: shared by all
// channels, computed once per region.
void region_samples(const float* box, const RoiAlignOptions& options, int64_t height, int64_t width,
                    RegionSamples& out) {
    // torchvision casts the scale to the feature dtype before use.
    const auto scale    = static_cast<float>(options.spatial_scale);
    const float shift   = options.aligned ? 0.5f : 0.f;
    const int64_t bins  = options.output_size;
    const float start_x = box[0] * scale - shift;
    const float start_y = box[1] * scale - shift;
    const float end_x   = box[2] * scale - shift;
    const float end_y   = box[3] * scale - shift;
    float roi_w = end_x - start_x, roi_h = end_y - start_y;
    if (!options.aligned) { // legacy mode forces malformed boxes to 1×1
        roi_w = std::max(roi_w, 1.f);
        roi_h = std::max(roi_h, 1.f);
    }
    const float bin_h    = roi_h / static_cast<float>(bins);
    const float bin_w    = roi_w / static_cast<float>(bins);
    const int64_t grid_h = options.sampling_ratio > 0
                               ? options.sampling_ratio
                               : static_cast<int64_t>(std::ceil(roi_h / static_cast<float>(bins)));
    const int64_t grid_w = options.sampling_ratio > 0
                               ? options.sampling_ratio
                               : static_cast<int64_t>(std::ceil(roi_w / static_cast<float>(bins)));
    out.per_bin          = grid_h * grid_w;
    out.count            = static_cast<float>(std::max<int64_t>(grid_h * grid_w, 1));
    out.samples.assign(static_cast<size_t>(bins * bins * grid_h * grid_w), Sample{});
    size_t n = 0;
    for (int64_t ph = 0; ph < bins; ++ph)
        for (int64_t pw = 0; pw < bins; ++pw)
            for (int64_t iy = 0; iy < grid_h; ++iy) {
                const float y = start_y + static_cast<float>(ph) * bin_h +
                                (static_cast<float>(iy) + .5f) * bin_h / static_cast<float>(grid_h);
                for (int64_t ix = 0; ix < grid_w; ++ix) {
                    const float x =
                        start_x + static_cast<float>(pw) * bin_w +
                        (static_cast<float>(ix) + .5f) * bin_w / static_cast<float>(grid_w);
                    out.samples[n++] = bilinear_sample(y, x, height, width);
                }
            }
}

void check_arguments(const at::Tensor& features, const at::Tensor& rois,
                     const RoiAlignOptions& options) {
    if (features.dim() != 4)
        fail("roi_align: features must be [B, C, H, W], got ", features.sizes());
    if (rois.dim() != 2 || rois.size(1) != 5)
        fail("roi_align: rois must be [K, 5] (batch, x1, y1, x2, y2), got ", rois.sizes());
    if (options.output_size <= 0) fail("roi_align: output_size must be positive");
}

// The image a region reads, checked against the batch.
int64_t batch_index_of(const float* row, int64_t k, int64_t batch) {
    const auto index = static_cast<int64_t>(row[0]);
    if (index < 0 || index >= batch)
        fail("roi_align: roi ", k, " names image ", row[0], " of a batch of ", batch);
    return index;
}

// The forward on the CPU: input [B, C, H, W] f32 contiguous, boxes [K, 5] f32 -> [K, C, S, S].
at::Tensor forward_cpu(const at::Tensor& input, const at::Tensor& boxes,
                       const RoiAlignOptions& options) {
    const int64_t batch = input.size(0), channels = input.size(1);
    const int64_t height = input.size(2), width = input.size(3);
    const int64_t num_rois = boxes.size(0), out = options.output_size;
    at::Tensor output = at::zeros({num_rois, channels, out, out}, input.options()); // [K, C, S, S]
    const float* in_data  = input.data_ptr<float>();
    const float* box_data = boxes.data_ptr<float>();
    float* out_data       = output.data_ptr<float>();
    RegionSamples region;
    for (int64_t k = 0; k < num_rois; ++k) {
        const int64_t batch_index = batch_index_of(box_data + k * 5, k, batch);
        region_samples(box_data + k * 5 + 1, options, height, width, region);
        at::parallel_for(0, channels, 1, [&](int64_t c_begin, int64_t c_end) {
            for (int64_t c = c_begin; c < c_end; ++c) {
                const float* plane = in_data + (batch_index * channels + c) * height * width;
                float* dst         = out_data + (k * channels + c) * out * out;
                size_t i           = 0;
                for (int64_t bin = 0; bin < out * out; ++bin) {
                    float sum = 0.f;
                    for (int64_t g = 0; g < region.per_bin; ++g, ++i) {
                        const Sample& s = region.samples[i];
                        sum += s.weight[0] * plane[s.offset[0]] + s.weight[1] * plane[s.offset[1]] +
                               s.weight[2] * plane[s.offset[2]] + s.weight[3] * plane[s.offset[3]];
                    }
                    dst[bin] = sum / region.count;
                }
            }
        });
    }
    return output;
}

// ref: pytorch/vision torchvision/csrc/ops/cpu/roi_align_kernel.cpp
// (roi_align_backward_kernel_impl) The gradient of the features: each bin's gradient spread back
// over its samples' four grid points with their bilinear weights, divided by the bin's count. grad
// [K, C, S, S] f32 contiguous -> [B, C, H, W] f32.
at::Tensor backward_cpu(const at::Tensor& grad, const at::Tensor& boxes,
                        const RoiAlignOptions& options, at::IntArrayRef input_sizes) {
    const int64_t batch = input_sizes[0], channels = input_sizes[1];
    const int64_t height = input_sizes[2], width = input_sizes[3];
    const int64_t num_rois = boxes.size(0), out = options.output_size;
    at::Tensor grad_input  = at::zeros(input_sizes, grad.options());
    const float* grad_data = grad.data_ptr<float>();
    const float* box_data  = boxes.data_ptr<float>();
    float* in_grad         = grad_input.data_ptr<float>();
    RegionSamples region;
    for (int64_t k = 0; k < num_rois; ++k) {
        const int64_t batch_index = batch_index_of(box_data + k * 5, k, batch);
        region_samples(box_data + k * 5 + 1, options, height, width, region);
        // Channels write disjoint planes, so they run in parallel.
        at::parallel_for(0, channels, 1, [&](int64_t c_begin, int64_t c_end) {
            for (int64_t c = c_begin; c < c_end; ++c) {
                float* plane     = in_grad + (batch_index * channels + c) * height * width;
                const float* src = grad_data + (k * channels + c) * out * out;
                size_t i         = 0;
                for (int64_t bin = 0; bin < out * out; ++bin) {
                    const float g = src[bin] / region.count;
                    for (int64_t n = 0; n < region.per_bin; ++n, ++i) {
                        const Sample& s = region.samples[i];
                        for (int j = 0; j < 4; ++j) plane[s.offset[j]] += s.weight[j] * g;
                    }
                }
            }
        });
    }
    return grad_input;
}

// RoIAlign as an autograd function of the features (the boxes get no gradient, as in
// torchvision): GLaMM-Shapes trains the region encoder's fuse module through it.
struct RoiAlignFunction : torch::autograd::Function<RoiAlignFunction> {
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& features,
                              const at::Tensor& boxes, const RoiAlignOptions& options) {
        ctx->saved_data["boxes"]          = boxes;
        ctx->saved_data["output_size"]    = options.output_size;
        ctx->saved_data["spatial_scale"]  = options.spatial_scale;
        ctx->saved_data["sampling_ratio"] = options.sampling_ratio;
        ctx->saved_data["aligned"]        = options.aligned;
        ctx->saved_data["sizes"]          = features.sizes().vec();
        ctx->saved_data["dtype"]          = static_cast<int64_t>(features.scalar_type());
        ctx->saved_data["device"]         = features.device().str();
        const at::Tensor input            = features.to(at::kCPU, at::kFloat).contiguous();
        return forward_cpu(input, boxes, options).to(features.device());
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        RoiAlignOptions options;
        options.output_size              = ctx->saved_data["output_size"].toInt();
        options.spatial_scale            = ctx->saved_data["spatial_scale"].toDouble();
        options.sampling_ratio           = ctx->saved_data["sampling_ratio"].toInt();
        options.aligned                  = ctx->saved_data["aligned"].toBool();
        const at::Tensor boxes           = ctx->saved_data["boxes"].toTensor();
        const std::vector<int64_t> sizes = ctx->saved_data["sizes"].toIntVector();
        const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
        const c10::Device device(ctx->saved_data["device"].toStringRef());
        const at::Tensor grad = grads[0].to(at::kCPU, at::kFloat).contiguous();
        const at::Tensor grad_features =
            backward_cpu(grad, boxes, options, sizes).to(device, dtype);
        return {grad_features, at::Tensor(), at::Tensor()};
    }
};

} // namespace

at::Tensor roi_align_gather(const at::Tensor& features, const at::Tensor& rois,
                            const RoiAlignOptions& options) {
    check_arguments(features, rois, options);
    const at::Tensor boxes = rois.detach().to(at::kCPU, at::kFloat).contiguous(); // [K, 5]
    const int64_t batch = features.size(0), channels = features.size(1);
    const int64_t height = features.size(2), width = features.size(3);
    const int64_t num_rois = boxes.size(0), bins = options.output_size * options.output_size;
    const float* box_data  = boxes.data_ptr<float>();
    const at::Tensor input = features.to(at::kFloat); // [B, C, H, W], autograd tracks the cast
    std::vector<at::Tensor> regions;
    RegionSamples region;
    for (int64_t k = 0; k < num_rois; ++k) {
        const int64_t batch_index = batch_index_of(box_data + k * 5, k, batch);
        region_samples(box_data + k * 5 + 1, options, height, width, region);
        // The sample table on the host: [S·S, per_bin·4] grid offsets and weights / count.
        const int64_t taps = region.per_bin * 4;
        at::Tensor offsets = at::empty({bins * taps}, at::kLong);
        at::Tensor weights = at::empty({bins * taps}, at::kFloat);
        int64_t* o         = offsets.data_ptr<int64_t>();
        float* w           = weights.data_ptr<float>();
        for (const Sample& sample : region.samples)
            for (int j = 0; j < 4; ++j) {
                *o++ = sample.offset[j];
                *w++ = sample.weight[j] / region.count;
            }
        const at::Tensor plane = input[batch_index].reshape({channels, height * width}); // [C, H·W]
        const at::Tensor taken =
            plane.index_select(1, offsets.to(features.device())); // [C, S·S·per_bin·4]
        regions.push_back((taken * weights.to(features.device()))
                              .reshape({channels, bins, taps})
                              .sum(-1)); // [C, S·S]
    }
    if (regions.empty())
        return at::zeros({0, channels, options.output_size, options.output_size}, input.options());
    return at::stack(regions, 0)
        .reshape({num_rois, channels, options.output_size, options.output_size}); // [K, C, S, S]
}

at::Tensor roi_align(const at::Tensor& features, const at::Tensor& rois,
                     const RoiAlignOptions& options) {
    // Off the CPU the gather runs where the features are (no copies to the host and back).
    if (!features.device().is_cpu()) return roi_align_gather(features, rois, options);
    check_arguments(features, rois, options);
    const at::Tensor boxes = rois.detach().to(at::kCPU, at::kFloat).contiguous(); // [K, 5]
    if (features.requires_grad() && at::GradMode::is_enabled())
        return RoiAlignFunction::apply(features, boxes, options);
    const at::Tensor input = features.to(at::kCPU, at::kFloat).contiguous(); // [B, C, H, W]
    return forward_cpu(input, boxes, options).to(features.device());
}

} // namespace glamm
