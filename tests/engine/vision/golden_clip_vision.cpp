// Golden parity of the CLIP vision tower and the mm_projector on the tiny release: hidden-state
// selection, image features, region levels 0 and L-1, projected image tokens.
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "support/test_support.h"
#include "vision/clip_vision.h"
#include "vision/mm_projector.h"

#include <torch/torch.h>

#include <gtest/gtest.h>

namespace glamm {
namespace {

using test::close_to_reference;

// Loads the tiny CLIP tower strictly: every key of the file consumed, every parameter filled.
ClipVisionModel load_tiny_clip() {
    const ClipVisionConfig config = load_clip_vision_config(test::tiny_clip_dir());
    const Checkpoint checkpoint   = Checkpoint::open(test::tiny_clip_dir());
    ClipVisionModel model(config);
    LoadReport report(checkpoint);
    report.load_module(*model, clip_vision_prefix(checkpoint));
    report.finish("tiny CLIP vision tower");
    model->eval();
    return model;
}

// Loads `module` from the tiny GLaMM checkpoint under `prefix`; keys of the other components are
// ignored by name, so finish() checks exactly this component (missing, unexpected, mis-shaped).
void load_component(torch::nn::Module& module, const Checkpoint& checkpoint,
                    const std::string& prefix) {
    LoadReport report(checkpoint);
    for (const std::string& name : checkpoint.names())
        if (name.rfind(prefix, 0) != 0) report.ignore(name);
    report.load_module(module, prefix);
    report.finish(prefix);
}

TEST(ClipFeatureSelection, FollowsGlammRuleForTheRealTower) {
    const ClipVisionConfig large; // defaults: ViT-L/14-336, 24 layers
    const ClipFeatureSelection s = clip_feature_selection(large, -2, 4);
    EXPECT_EQ(s.image_layer, 23);
    EXPECT_EQ(s.region_layers, (std::vector<int64_t>{14, 17, 20, 23}));
    EXPECT_EQ(s.deepest(), 23); // layer 24 (index 23) is never run
    EXPECT_TRUE(s.drop_cls);
}

TEST(ClipFeatureSelection, TinyTowerAndErrors) {
    const ClipVisionConfig tiny = load_clip_vision_config(test::tiny_clip_dir());
    const GlammConfig glamm     = load_glamm_config(test::tiny_model_dir());
    const ClipFeatureSelection s =
        clip_feature_selection(tiny, glamm.mm_vision_select_layer, glamm.region_encoder.num_levels,
                               glamm.mm_vision_select_feature);
    EXPECT_EQ(s.image_layer, 11);
    EXPECT_EQ(s.region_layers, (std::vector<int64_t>{2, 5, 8, 11}));
    EXPECT_EQ(clip_feature_selection(tiny, 5, 2).region_layers, (std::vector<int64_t>{2, 5}));
    EXPECT_TRUE(clip_feature_selection(tiny, -1, 0).region_layers.empty());
    EXPECT_FALSE(clip_feature_selection(tiny, -1, 0, "cls_patch").drop_cls);
    EXPECT_THROW(clip_feature_selection(tiny, -2, 5), Error);  // only 4 levels below 11
    EXPECT_THROW(clip_feature_selection(tiny, -14, 1), Error); // before hidden_states[0]
    EXPECT_THROW(clip_feature_selection(tiny, 13, 1), Error);  // past the last layer
    EXPECT_THROW(clip_feature_selection(tiny, -2, 1, "cls"), Error);
}

class ClipGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ClipGolden, FeaturesAndProjection) {
    torch::NoGradGuard no_grad;
    const auto golden       = test::load_tensors(test::tiny_case_path(GetParam() + ".safetensors"));
    const GlammConfig glamm = load_glamm_config(test::tiny_model_dir());
    ClipVisionModel clip    = load_tiny_clip();
    const ClipFeatureSelection selection =
        clip_feature_selection(clip->config, glamm.mm_vision_select_layer,
                               glamm.region_encoder.num_levels, glamm.mm_vision_select_feature);

    const ClipVisionFeatures features = clip->forward(golden.at("clip_pixel_values"), selection);
    ASSERT_EQ(features.region_levels.size(), static_cast<size_t>(glamm.region_encoder.num_levels));
    EXPECT_TRUE(close_to_reference("clip_selected_features", features.image_features,
                                   golden.at("clip_selected_features")));
    EXPECT_TRUE(close_to_reference("region_level_0", features.region_levels.front(),
                                   golden.at("region_level_0")));
    EXPECT_TRUE(close_to_reference("region_level_3", features.region_levels.back(),
                                   golden.at("region_level_3")));

    const Checkpoint checkpoint = Checkpoint::open(test::tiny_model_dir());
    MmProjector projector(glamm);
    load_component(*projector, checkpoint, "model.mm_projector.");
    // From the golden CLIP features (projector alone) and from ours (the chain).
    EXPECT_TRUE(close_to_reference("projected (golden input)",
                                   projector->forward(golden.at("clip_selected_features")),
                                   golden.at("projected_image_features")));
    EXPECT_TRUE(close_to_reference("projected_image_features",
                                   projector->forward(features.image_features),
                                   golden.at("projected_image_features")));
}

INSTANTIATE_TEST_SUITE_P(Tiny, ClipGolden, ::testing::Values("gcg", "region"));

// The real model runs in bfloat16: the same modules converted to bf16 stay near the fp32 golden
// (bf16 keeps ~3 significant digits, so the tolerance is loose; this checks that every op has a
// bf16 kernel and that nothing silently stays in float32).
TEST(ClipGoldenBf16, FeaturesAndProjection) {
    torch::NoGradGuard no_grad;
    const auto golden       = test::load_tensors(test::tiny_case_path("gcg.safetensors"));
    const GlammConfig glamm = load_glamm_config(test::tiny_model_dir());
    ClipVisionModel clip    = load_tiny_clip();
    clip->to(torch::kBFloat16);
    const ClipFeatureSelection selection =
        clip_feature_selection(clip->config, glamm.mm_vision_select_layer,
                               glamm.region_encoder.num_levels, glamm.mm_vision_select_feature);
    const ClipVisionFeatures features = clip->forward(golden.at("clip_pixel_values"), selection);
    EXPECT_EQ(features.image_features.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(close_to_reference("bf16 clip_selected_features", features.image_features,
                                   golden.at("clip_selected_features"), 5e-2));

    MmProjector projector(glamm);
    load_component(*projector, Checkpoint::open(test::tiny_model_dir()), "model.mm_projector.");
    projector->to(torch::kBFloat16);
    const at::Tensor projected = projector->forward(features.image_features);
    EXPECT_EQ(projected.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(close_to_reference("bf16 projected_image_features", projected,
                                   golden.at("projected_image_features"), 5e-2));
}

// hidden_states() runs only what is asked for, keeps CLS, and index 0 is after pre_layrnorm.
TEST(ClipVisionModel, HiddenStatesShapesAndStrictLoad) {
    torch::NoGradGuard no_grad;
    ClipVisionModel clip = load_tiny_clip();
    const auto golden    = test::load_tensors(test::tiny_case_path("region.safetensors"));
    const auto states    = clip->hidden_states(golden.at("clip_pixel_values"), 3);
    ASSERT_EQ(states.size(), 4u);
    EXPECT_EQ(states[0].sizes(),
              (std::vector<int64_t>{1, clip->config.num_positions(), clip->config.hidden_size}));
    EXPECT_THROW(
        clip->hidden_states(golden.at("clip_pixel_values"), clip->config.num_hidden_layers + 1),
        Error);
    EXPECT_THROW(clip->hidden_states(torch::zeros({1, 3, 14, 14}), 1), Error);

    // A wrong-width tower does not load silently.
    ClipVisionConfig wrong = clip->config;
    wrong.intermediate_size *= 2;
    ClipVisionModel other(wrong);
    const Checkpoint checkpoint = Checkpoint::open(test::tiny_clip_dir());
    LoadReport report(checkpoint);
    report.load_module(*other, clip_vision_prefix(checkpoint));
    EXPECT_THROW(report.finish("wrong CLIP"), Error);
}

TEST(MmProjector, LinearTypeAndErrors) {
    torch::NoGradGuard no_grad;
    MmProjector linear("linear", 3, 2);
    const auto params = linear->named_parameters();
    EXPECT_TRUE(params.contains("weight"));
    EXPECT_TRUE(params.contains("bias"));
    linear->weight.copy_(torch::tensor({1.f, 0.f, 2.f, 0.f, 1.f, -1.f}).view({2, 3}));
    linear->bias.copy_(torch::tensor({0.5f, -0.5f}));
    const at::Tensor out = linear->forward(torch::tensor({1.f, 2.f, 3.f}).view({1, 1, 3}));
    EXPECT_TRUE(torch::allclose(out, torch::tensor({7.5f, -1.5f}).view({1, 1, 2})));

    MmProjector mlp2("mlp2x_gelu", 3, 2);
    std::vector<std::string> names;
    for (const auto& item : mlp2->named_parameters()) names.push_back(item.key());
    EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
    EXPECT_THROW(MmProjector("identity", 3, 2), Error);
    EXPECT_THROW(MmProjector("mlp0x_gelu", 3, 2), Error);
}

} // namespace
} // namespace glamm
