// Golden parity of the region encoder on the tiny release's `region` case: CLIP levels computed
// by our tower from the golden pixels, golden normalised boxes, compared with region_features.
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "support/test_support.h"
#include "vision/clip_vision.h"
#include "vision/region_encoder.h"

#include <torch/torch.h>

#include <gtest/gtest.h>

namespace glamm {
namespace {

using test::close_to_reference;

const std::string kPrefix = "model.region_encoder.";

// The model's config with the box-embedding width read from the checkpoint, as the pipeline does.
GlammConfig tiny_config(const Checkpoint& checkpoint) {
    GlammConfig config = load_glamm_config(test::tiny_model_dir());
    config.region_encoder.pos_embed_dim =
        checkpoint.stored(kPrefix + "roi_align.pos_embedd.0.weight").shape.at(0);
    return config;
}

RegionEncoder load_region_encoder(const Checkpoint& checkpoint, const GlammConfig& config,
                                  const ClipVisionConfig& clip) {
    RegionEncoder encoder(config.region_encoder, config.mm_hidden_size, config.llama.hidden_size,
                          clip.patch_size);
    LoadReport report(checkpoint);
    for (const std::string& name : checkpoint.names())
        if (name.rfind(kPrefix, 0) != 0) report.ignore(name); // the other components
    report.load_module(*encoder, kPrefix);
    report.finish("region encoder");
    encoder->eval();
    return encoder;
}

std::vector<at::Tensor> clip_levels(const at::Tensor& pixel_values, const GlammConfig& config,
                                    const ClipVisionConfig& clip_config) {
    const Checkpoint checkpoint = Checkpoint::open(test::tiny_clip_dir());
    ClipVisionModel clip(clip_config);
    LoadReport report(checkpoint);
    report.load_module(*clip, clip_vision_prefix(checkpoint));
    report.finish("tiny CLIP vision tower");
    const ClipFeatureSelection selection =
        clip_feature_selection(clip_config, config.mm_vision_select_layer,
                               config.region_encoder.num_levels, config.mm_vision_select_feature);
    return clip->forward(pixel_values, selection).region_levels;
}

TEST(RegionEncoderGolden, RegionCase) {
    torch::NoGradGuard no_grad;
    const auto golden           = test::load_tensors(test::tiny_case_path("region.safetensors"));
    const Checkpoint checkpoint = Checkpoint::open(test::tiny_model_dir());
    const GlammConfig config    = tiny_config(checkpoint);
    const ClipVisionConfig clip = load_clip_vision_config(test::tiny_clip_dir());
    RegionEncoder encoder       = load_region_encoder(checkpoint, config, clip);
    const std::vector<at::Tensor> levels =
        clip_levels(golden.at("clip_pixel_values"), config, clip);
    ASSERT_TRUE(close_to_reference("region_level_0", levels.front(), golden.at("region_level_0")));

    RegionEncoderTrace trace;
    const at::Tensor features =
        encoder->forward(levels, golden.at("region_boxes_normalized"), &trace);
    EXPECT_TRUE(close_to_reference("region_features", features, golden.at("region_features")));

    // Shapes of the intermediates: grids g·2^(L-1-l), one RoI map per level.
    const int64_t num_levels = config.region_encoder.num_levels;
    const int64_t grid       = clip.grid_size();
    ASSERT_EQ(trace.fused_levels.size(), static_cast<size_t>(num_levels));
    for (int64_t l = 0; l < num_levels; ++l)
        EXPECT_EQ(trace.fused_levels[static_cast<size_t>(l)].size(2), grid << (num_levels - 1 - l));
    ASSERT_EQ(trace.roi_levels.size(), static_cast<size_t>(num_levels));
    EXPECT_EQ(trace.roi_levels[0].sizes(),
              (std::vector<int64_t>{1, config.mm_hidden_size, config.region_encoder.roi_output_size,
                                    config.region_encoder.roi_output_size}));
}

// One row per box, rows independent of each other; no boxes gives no rows.
TEST(RegionEncoderGolden, SeveralBoxesAndNone) {
    torch::NoGradGuard no_grad;
    const auto golden           = test::load_tensors(test::tiny_case_path("region.safetensors"));
    const Checkpoint checkpoint = Checkpoint::open(test::tiny_model_dir());
    const GlammConfig config    = tiny_config(checkpoint);
    const ClipVisionConfig clip = load_clip_vision_config(test::tiny_clip_dir());
    RegionEncoder encoder       = load_region_encoder(checkpoint, config, clip);
    const std::vector<at::Tensor> levels =
        clip_levels(golden.at("clip_pixel_values"), config, clip);

    const at::Tensor box   = golden.at("region_boxes_normalized");
    const at::Tensor whole = torch::tensor({0.f, 0.f, 1.f, 1.f}).view({1, 4});
    const at::Tensor both  = encoder->forward(levels, torch::cat({whole, box}, 0));
    ASSERT_EQ(both.sizes(), (std::vector<int64_t>{2, config.llama.hidden_size}));
    EXPECT_TRUE(close_to_reference("second row = single box", both[1].unsqueeze(0),
                                   golden.at("region_features")));
    EXPECT_TRUE(close_to_reference("first row = whole image alone", both[0].unsqueeze(0),
                                   encoder->forward(levels, whole), 1e-5));
    EXPECT_EQ(encoder->forward(levels, torch::zeros({0, 4})).sizes(),
              (std::vector<int64_t>{0, config.llama.hidden_size}));

    EXPECT_THROW(encoder->forward({levels[0]}, box), Error);
    EXPECT_THROW(encoder->forward(levels, torch::zeros({1, 5})), Error);
}

// region_encoder.box_scale (GLaMM-Shapes sets it to its tower's image size): RoIAlign reads
// box × box_scale, so a box at scale 112 samples exactly what the half-size box samples at GLaMM's
// 224, while the box embedding still reads the normalised box as given.
TEST(RegionEncoderGolden, BoxScaleSetsWhereBoxesLandOnTheGrid) {
    torch::NoGradGuard no_grad;
    const auto golden           = test::load_tensors(test::tiny_case_path("region.safetensors"));
    const Checkpoint checkpoint = Checkpoint::open(test::tiny_model_dir());
    const GlammConfig config    = tiny_config(checkpoint);
    GlammConfig halved          = config;
    halved.region_encoder.box_scale = config.region_encoder.box_scale / 2;
    const ClipVisionConfig clip     = load_clip_vision_config(test::tiny_clip_dir());
    RegionEncoder glamm             = load_region_encoder(checkpoint, config, clip);
    RegionEncoder half              = load_region_encoder(checkpoint, halved, clip);
    const std::vector<at::Tensor> levels =
        clip_levels(golden.at("clip_pixel_values"), config, clip);
    const at::Tensor box = golden.at("region_boxes_normalized");
    RegionEncoderTrace at_glamm, at_half;
    glamm->forward(levels, box * 0.5, &at_glamm);
    half->forward(levels, box, &at_half);
    ASSERT_EQ(at_glamm.roi_levels.size(), at_half.roi_levels.size());
    for (size_t l = 0; l < at_half.roi_levels.size(); ++l)
        EXPECT_TRUE(torch::equal(at_glamm.roi_levels[l], at_half.roi_levels[l])) << "level " << l;
    EXPECT_FALSE(torch::equal(at_glamm.pos_embedding, at_half.pos_embedding));
}

// bfloat16 (the real model's dtype): the same weights in bf16 stay near the fp32 golden; RoIAlign
// and the resizes still run in float32 inside.
TEST(RegionEncoderGolden, Bf16) {
    torch::NoGradGuard no_grad;
    const auto golden           = test::load_tensors(test::tiny_case_path("region.safetensors"));
    const Checkpoint checkpoint = Checkpoint::open(test::tiny_model_dir());
    const GlammConfig config    = tiny_config(checkpoint);
    const ClipVisionConfig clip = load_clip_vision_config(test::tiny_clip_dir());
    RegionEncoder encoder       = load_region_encoder(checkpoint, config, clip);
    encoder->to(torch::kBFloat16);
    std::vector<at::Tensor> levels = clip_levels(golden.at("clip_pixel_values"), config, clip);
    for (auto& level : levels) level = level.to(torch::kBFloat16);
    const at::Tensor boxes    = golden.at("region_boxes_normalized").to(torch::kBFloat16);
    const at::Tensor features = encoder->forward(levels, boxes);
    EXPECT_EQ(features.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(
        close_to_reference("bf16 region_features", features, golden.at("region_features"), 5e-2));
}

TEST(RegionEncoder, ModuleNamesAndWidthChecks) {
    RegionEncoderConfig config;
    config.gn_groups     = 2;
    config.pos_embed_dim = 6;
    RegionEncoder encoder(config, 8, 10, 14);
    const auto params = encoder->named_parameters();
    for (const char* key : {"mlvl_fuse.input_conv.3.weight", "mlvl_fuse.fuse_convs.4.conv.weight",
                            "mlvl_fuse.fuse_convs.4.gn.bias", "roi_align.pconvs.3.bias",
                            "roi_align.pos_embedd.0.weight", "roi_align.pos_embedd.2.weight",
                            "roi_align.pos_embedd.3.weight", "roi_align.pos_embedd.5.bias",
                            "roi_align.flatten_linear.weight", "roi_align.updims.weight"})
        EXPECT_TRUE(params.contains(key)) << key;
    EXPECT_FALSE(params.contains("mlvl_fuse.fuse_convs.0.conv.bias")); // ConvModule with a norm
    EXPECT_EQ(params["roi_align.pos_embedd.0.weight"].sizes(), (std::vector<int64_t>{6, 4}));
    EXPECT_EQ(params["mlvl_fuse.input_conv.0.weight"].sizes(), (std::vector<int64_t>{8, 10, 1, 1}));
    EXPECT_EQ(encoder->roi_align->strides, (std::vector<double>{1.75, 3.5, 7.0, 14.0}));

    config.gn_groups = 3;
    EXPECT_THROW(RegionEncoder(config, 8, 10, 14), Error);
    config.gn_groups = 2;
    EXPECT_THROW(RegionEncoder(config, 6, 10, 14), Error); // 6 channels do not split in quarters
}

} // namespace
} // namespace glamm
