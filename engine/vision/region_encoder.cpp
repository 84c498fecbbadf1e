// Region encoder forward (groundingLMM model/layers.py MLVLROIQueryModule, MLVLFuseModule,
// MlvlRoIExtractor). Legend: C CLIP width, H LLaMA hidden size, L levels, K boxes, g CLIP grid
// side, S RoIAlign output side, P box-embedding width.
#include "vision/region_encoder.h"

#include "core/error.h"
#include "vision/roi_align.h"

#include <torch/torch.h>

#include <cmath>

namespace glamm {

namespace F = torch::nn::functional;

namespace {

// Width of the two coordinate channels (x, y) appended before input_conv.
constexpr int64_t kCoordinateChannels = 2;
// Box coordinates per region (x1, y1, x2, y2).
constexpr int64_t kBoxCoordinates = 4;
// MLVLFuseModule hands a quarter of the channels to each neighbour (shuffle_channles = C // 4).
constexpr int64_t kShuffleDivisor = 4;
// fuse_convs and pconvs are 3×3 convolutions with padding 1 (same size out).
constexpr int64_t kConvKernel  = 3;
constexpr int64_t kConvPadding = kConvKernel / 2;

// Level l of L is upsampled by 2^(L-1-l): the shallowest level gets the finest grid.
int64_t upsample_factor(int64_t level, int64_t num_levels) {
    return int64_t{1} << (num_levels - 1 - level);
}

// Bilinear resize with align_corners=True, computed in float32 (the reference's "temporary fix"
// for bf16 upsampling), returned in float32.
at::Tensor resize_fp32(const at::Tensor& x, int64_t height, int64_t width) {
    return F::interpolate(x.to(torch::kFloat32), F::InterpolateFuncOptions()
                                                     .size(std::vector<int64_t>{height, width})
                                                     .mode(torch::kBilinear)
                                                     .align_corners(true));
}

void check_boxes(const at::Tensor& boxes) {
    if (boxes.dim() != 2 || boxes.size(1) != kBoxCoordinates)
        fail("region encoder expects boxes [K, 4], got ", boxes.sizes());
}

} // namespace

// ---------------------------------------------------------------------------------------------
// ref: groundingLMM model/layers.py MLVLFuseModule._init_layers (mmcv ConvModule with GN)

FuseConvModuleImpl::FuseConvModuleImpl(const RegionEncoderConfig& config, int64_t channels) {
    // mmcv ConvModule drops the conv bias when a norm follows.
    conv = register_module(
        "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels, kConvKernel)
                                      .padding(kConvPadding)
                                      .bias(false)));
    gn = register_module(
        "gn", torch::nn::GroupNorm(
                  torch::nn::GroupNormOptions(config.gn_groups, channels).eps(config.norm_eps)));
}

at::Tensor FuseConvModuleImpl::forward(const at::Tensor& x) {
    return torch::relu(gn(conv(x)));
}

MlvlFuseModuleImpl::MlvlFuseModuleImpl(const RegionEncoderConfig& config, int64_t channels_)
    : channels(channels_), shuffle_channels(channels_ / kShuffleDivisor),
      remain_channels(channels_ - 2 * (channels_ / kShuffleDivisor)) {
    input_conv = register_module("input_conv", torch::nn::ModuleList());
    for (int64_t l = 0; l < config.num_levels; ++l)
        input_conv->push_back(torch::nn::Conv2d(
            torch::nn::Conv2dOptions(channels + kCoordinateChannels, channels, 1)));
    fuse_convs = register_module("fuse_convs", torch::nn::ModuleList());
    for (int64_t r = 0; r < config.num_fuse; ++r)
        fuse_convs->push_back(FuseConvModule(config, channels));
}

// ref: groundingLMM model/layers.py MLVLFuseModule.forward, generate_coordinate, _single_shuffle
std::vector<at::Tensor> MlvlFuseModuleImpl::forward(const std::vector<at::Tensor>& levels,
                                                    const ShouldAbort& should_abort) {
    const auto num_levels = static_cast<int64_t>(levels.size());
    std::vector<at::Tensor> inputs;
    // Coordinate channels [x, y], each linspace(-1, 1) along its axis, then the 1×1 input conv.
    for (int64_t l = 0; l < num_levels; ++l) {
        const at::Tensor& feat = levels[static_cast<size_t>(l)]; // [1, C, h, w]
        const int64_t batch = feat.size(0), height = feat.size(2), width = feat.size(3);
        const auto float_options = feat.options().dtype(torch::kFloat32);
        const at::Tensor x       = torch::linspace(-1, 1, width, float_options)
                                 .view({1, 1, 1, width})
                                 .expand({batch, 1, height, width});
        const at::Tensor y = torch::linspace(-1, 1, height, float_options)
                                 .view({1, 1, height, 1})
                                 .expand({batch, 1, height, width});
        const at::Tensor coords = torch::cat({x, y}, 1).to(feat.scalar_type()); // [1, 2, h, w]
        inputs.push_back(input_conv[static_cast<size_t>(l)]->as<torch::nn::Conv2d>()->forward(
            torch::cat({feat, coords}, 1)));
    }

    for (size_t r = 0; r < fuse_convs->size(); ++r) {
        auto& fuse_conv = *fuse_convs[r]->as<FuseConvModule>();
        std::vector<at::Tensor> fused;
        for (int64_t t = 0; t < num_levels; ++t) {
            stop_if_asked(should_abort, "the region encoder");
            const at::Tensor& target = inputs[static_cast<size_t>(t)];
            const at::Tensor& coarser =
                inputs[static_cast<size_t>(std::min(t + 1, num_levels - 1))];
            const at::Tensor& finer = inputs[static_cast<size_t>(std::max<int64_t>(t - 1, 0))];
            const int64_t height = target.size(2), width = target.size(3);
            // own [0, remain) | coarser [remain + shuffle, C) | finer [remain, remain + shuffle)
            const at::Tensor remain = target.slice(1, 0, remain_channels);
            const at::Tensor from_top =
                resize_fp32(coarser.slice(1, remain_channels + shuffle_channels), height, width);
            const at::Tensor from_down = resize_fp32(
                finer.slice(1, remain_channels, remain_channels + shuffle_channels), height, width);
            fused.push_back(fuse_conv.forward(torch::cat(
                {remain, from_top.to(remain.scalar_type()), from_down.to(remain.scalar_type())},
                1)));
        }
        inputs = std::move(fused);
    }
    return inputs;
}

// ---------------------------------------------------------------------------------------------
// ref: groundingLMM model/layers.py MlvlRoIExtractor.__init__, MLVLROIQueryModule.__init__

MlvlRoiExtractorImpl::MlvlRoiExtractorImpl(const RegionEncoderConfig& config_, int64_t channels,
                                           int64_t out_dims, int64_t patch_size)
    : config(config_) {
    // strides [14/8, 14/4, 14/2, 14] for a 14-px patch and 4 levels: the coarsest level is the
    // CLIP grid itself, each finer one upsampled 2×.
    for (int64_t l = 0; l < config.num_levels; ++l)
        strides.push_back(static_cast<double>(patch_size) /
                          static_cast<double>(upsample_factor(l, config.num_levels)));
    pconvs = register_module("pconvs", torch::nn::ModuleList());
    for (int64_t l = 0; l < config.num_levels; ++l)
        pconvs->push_back(torch::nn::Conv2d(
            torch::nn::Conv2dOptions(channels, channels, kConvKernel).padding(kConvPadding)));
    auto layer_norm = [&](int64_t width) {
        return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(config.norm_eps));
    };
    pos_embedd = register_module(
        "pos_embedd",
        torch::nn::Sequential(torch::nn::Linear(kBoxCoordinates, config.pos_embed_dim),
                              torch::nn::ReLU(), layer_norm(config.pos_embed_dim),
                              torch::nn::Linear(config.pos_embed_dim, channels), torch::nn::ReLU(),
                              layer_norm(channels)));
    updims         = register_module("updims", torch::nn::Linear(channels, out_dims));
    flatten_linear = register_module(
        "flatten_linear",
        torch::nn::Linear(channels * config.roi_output_size * config.roi_output_size, channels));
}

// ref: groundingLMM model/layers.py MlvlRoIExtractor.forward
at::Tensor MlvlRoiExtractorImpl::forward(const std::vector<at::Tensor>& fused,
                                         const at::Tensor& boxes, RegionEncoderTrace* trace) {
    const at::ScalarType dtype = flatten_linear->weight.scalar_type();
    const int64_t num_boxes    = boxes.size(0);

    const at::Tensor pos =
        pos_embedd->forward(boxes.to(flatten_linear->weight.device(), dtype)); // [K, C]

    // RoIs (batch index, x1, y1, x2, y2) in box_scale px: box × box_scale in the boxes' dtype,
    // then float32 for RoIAlign.
    const at::Tensor scaled = (boxes * config.box_scale).to(torch::kFloat32);
    const at::Tensor rois = torch::cat({torch::zeros({num_boxes, 1}, scaled.options()), scaled}, 1);

    at::Tensor summed; // [K, C, S, S]
    for (size_t l = 0; l < fused.size(); ++l) {
        RoiAlignOptions options;
        options.output_size    = config.roi_output_size;
        options.spatial_scale  = 1.0 / strides[l];
        options.sampling_ratio = config.sampling_ratio;
        options.aligned        = true; // mmcv RoIAlign default
        const at::Tensor roi   = roi_align(fused[l], rois.to(fused[l].device()), options).to(dtype);
        if (trace) trace->roi_levels.push_back(roi);
        const at::Tensor projected = pconvs[l]->as<torch::nn::Conv2d>()->forward(roi);
        summed                     = l == 0 ? projected : summed + projected;
    }
    // Channel-major flatten (index c·S² + y·S + x), the layout flatten_linear was trained on.
    const at::Tensor flat = flatten_linear(torch::relu(summed).flatten(1)); // [K, C]
    if (trace) {
        trace->flatten_linear = flat;
        trace->pos_embedding  = pos;
    }
    return updims(flat + pos); // [K, H]
}

// ---------------------------------------------------------------------------------------------
// ref: groundingLMM model/layers.py MLVLROIQueryModule

RegionEncoderImpl::RegionEncoderImpl(const RegionEncoderConfig& config_, int64_t channels_,
                                     int64_t out_dims, int64_t patch_size)
    : config(config_), channels(channels_) {
    if (channels <= 0 || out_dims <= 0 || patch_size <= 0 || config.pos_embed_dim <= 0)
        fail("region encoder widths must be positive (channels ", channels, ", out ", out_dims,
             ", patch ", patch_size, ", pos_embed_dim ", config.pos_embed_dim, ")");
    if (channels % kShuffleDivisor != 0)
        fail("region encoder: CLIP width ", channels, " is not divisible by ", kShuffleDivisor);
    if (config.gn_groups <= 0 || channels % config.gn_groups != 0)
        fail("region encoder: CLIP width ", channels, " is not divisible by gn_groups ",
             config.gn_groups);
    if (config.num_levels <= 0 || config.num_levels >= 63)
        fail("region encoder: unsupported number of levels ", config.num_levels);
    mlvl_fuse = register_module("mlvl_fuse", MlvlFuseModule(config, channels));
    roi_align =
        register_module("roi_align", MlvlRoiExtractor(config, channels, out_dims, patch_size));
}

at::Tensor RegionEncoderImpl::forward(const std::vector<at::Tensor>& clip_levels,
                                      const at::Tensor& boxes, RegionEncoderTrace* trace) {
    check_boxes(boxes);
    if (boxes.size(0) == 0) return extract({}, boxes, trace);
    return extract(fuse(clip_levels), boxes, trace);
}

std::vector<at::Tensor> RegionEncoderImpl::fuse(const std::vector<at::Tensor>& clip_levels,
                                                const ShouldAbort& should_abort) {
    const auto num_levels = static_cast<int64_t>(clip_levels.size());
    if (num_levels != config.num_levels)
        fail("region encoder expects ", config.num_levels, " CLIP levels, got ", num_levels);
    const at::Tensor& reference = roi_align->updims->weight;

    // [1, g², C] -> [1, C, g, g] (token t at row t / g, column t % g), upsampled in float32 to
    // g·2^(L-1-l) (align_corners=True), then back to the module's dtype.
    std::vector<at::Tensor> levels;
    for (int64_t l = 0; l < num_levels; ++l) {
        const at::Tensor& tokens = clip_levels[static_cast<size_t>(l)];
        if (tokens.dim() != 3 || tokens.size(2) != channels)
            fail("region encoder level ", l, ": expected [B, g², ", channels, "], got ",
                 tokens.sizes());
        const auto grid = static_cast<int64_t>(std::llround(std::sqrt(tokens.size(1))));
        if (grid * grid != tokens.size(1))
            fail("region encoder level ", l, ": ", tokens.size(1), " tokens are not a square grid");
        const at::Tensor map = tokens.to(reference.device())
                                   .view({tokens.size(0), grid, grid, channels})
                                   .permute({0, 3, 1, 2});
        const int64_t side = grid * upsample_factor(l, num_levels);
        levels.push_back(resize_fp32(map, side, side).to(reference.scalar_type()));
    }
    return mlvl_fuse->forward(levels, should_abort);
}

at::Tensor RegionEncoderImpl::extract(const std::vector<at::Tensor>& fused, const at::Tensor& boxes,
                                      RegionEncoderTrace* trace) {
    check_boxes(boxes);
    const at::Tensor& reference = roi_align->updims->weight;
    if (boxes.size(0) == 0) return torch::zeros({0, reference.size(0)}, reference.options());
    if (static_cast<int64_t>(fused.size()) != config.num_levels)
        fail("region encoder expects ", config.num_levels, " fused maps, got ", fused.size());
    if (trace) trace->fused_levels = fused;
    return roi_align->forward(fused, boxes.to(reference.device()), trace);
}

} // namespace glamm
