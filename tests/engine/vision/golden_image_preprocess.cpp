// Golden: CLIP and SAM preprocessing of the tiny cases against the reference tensors
// (clip_pixel_values [1,3,336,336] f32, sam_resized_image [h',w',3] u8) and meta.json sizes.
#include "core/config.h"
#include "core/error.h"
#include "io/image_file.h"
#include "support/test_support.h"
#include "vision/image_preprocess.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

namespace glamm {
namespace {

nlohmann::json case_meta(const std::string& name) {
    std::ifstream file(test::tiny_case_path("meta.json"));
    EXPECT_TRUE(file) << "cannot open meta.json";
    return nlohmann::json::parse(file).at("cases").at(name);
}

class GoldenPreprocess : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenPreprocess, SamResizedImageIsExact) {
    const std::string name = GetParam();
    const auto meta        = case_meta(name);
    const Image image      = load_image(test::tiny_case_path(name + ".png"));
    EXPECT_EQ(image.height, meta.at("image_hw")[0].get<int64_t>());
    EXPECT_EQ(image.width, meta.at("image_hw")[1].get<int64_t>());

    const GlammConfig config  = load_glamm_config(test::tiny_model_dir());
    const SamConfig& sam      = config.grounding_encoder;
    const SamPreprocessed out = preprocess_sam(image, sam);
    EXPECT_EQ(out.resized_h, meta.at("resized_hw")[0].get<int64_t>());
    EXPECT_EQ(out.resized_w, meta.at("resized_hw")[1].get<int64_t>());

    const at::Tensor ref = test::load_tensors(test::tiny_case_path(name + ".safetensors"))
                               .at("sam_resized_image"); // [h', w', 3] u8
    ASSERT_EQ(ref.sizes(), (std::vector<int64_t>{out.resized_h, out.resized_w, 3}));
    const at::Tensor got  = at::from_blob(const_cast<uint8_t*>(out.resized.rgb.data()),
                                          {out.resized.height, out.resized.width, 3}, at::kByte);
    const at::Tensor diff = (got.to(at::kInt) - ref.to(at::kInt)).abs();
    const int64_t exact   = (diff == 0).sum().item<int64_t>();
    const int max_diff    = diff.max().item<int>();
    std::cout << "[golden] " << name << " sam_resized_image: " << exact << " of " << diff.numel()
              << " exact (" << 100.0 * double(exact) / double(diff.numel()) << "%), max diff "
              << max_diff << "\n";
    EXPECT_EQ(exact, diff.numel()); // a port of Pillow's resampler is byte-exact

    // pixel_values: the normalised resized image at the top-left, zeros elsewhere.
    ASSERT_EQ(out.pixel_values.sizes(), (std::vector<int64_t>{1, 3, sam.img_size, sam.img_size}));
    const at::Tensor mean =
        at::tensor(std::vector<float>(sam.pixel_mean.begin(), sam.pixel_mean.end()));
    const at::Tensor std =
        at::tensor(std::vector<float>(sam.pixel_std.begin(), sam.pixel_std.end()));
    const at::Tensor expected_valid =
        ((ref.to(at::kFloat) - mean) / std).permute({2, 0, 1}).unsqueeze(0); // [1, 3, h', w']
    const at::Tensor valid =
        out.pixel_values.narrow(2, 0, out.resized_h).narrow(3, 0, out.resized_w);
    EXPECT_TRUE(test::close_to_reference(name + " sam pixel_values", valid, expected_valid, 1e-6));
    const double outside =
        out.pixel_values.abs().sum().item<double>() - valid.abs().sum().item<double>();
    EXPECT_EQ(outside, 0.0) << "padding must be zeros";
}

TEST_P(GoldenPreprocess, ClipPixelValuesMatch) {
    const std::string name      = GetParam();
    const Image image           = load_image(test::tiny_case_path(name + ".png"));
    const ClipVisionConfig clip = load_clip_vision_config(test::tiny_clip_dir());
    const ClipImageProcessorConfig processor =
        load_clip_image_processor_config(test::tiny_clip_dir());
    const at::Tensor got = preprocess_clip(image, clip, processor); // [1, 3, 336, 336]
    const at::Tensor ref =
        test::load_tensors(test::tiny_case_path(name + ".safetensors")).at("clip_pixel_values");
    ASSERT_EQ(got.sizes(), ref.sizes());
    const int64_t exact = (got == ref).sum().item<int64_t>();
    std::cout << "[golden] " << name << " clip_pixel_values: " << exact << " of " << ref.numel()
              << " bit-identical\n";
    // README tolerance is one uint8 level (1 / 255 / 0.26 ~ 0.015); a Pillow-exact port with the
    // reference's float32 arithmetic is far tighter.
    EXPECT_TRUE(test::close_to_reference(name + " clip_pixel_values", got, ref, 1e-6));
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenPreprocess, ::testing::Values("gcg", "region"));

using HW = std::pair<int64_t, int64_t>;

TEST(GoldenPreprocessSizes, MatchPythonRoundingRules) {
    // CLIP: int(336 * long / short), truncated; the short side becomes 336.
    EXPECT_EQ(clip_resize_hw(480, 640, 336), HW(336, 448));
    EXPECT_EQ(clip_resize_hw(1100, 900, 336), HW(410, 336));
    EXPECT_EQ(clip_resize_hw(23, 37, 336), HW(336, 540));
    EXPECT_EQ(clip_resize_hw(336, 1000, 336), HW(336, 1000));
    EXPECT_EQ(clip_resize_hw(500, 500, 336), HW(336, 336));
    // 336 * 1001 / 3 = 112112 exactly; 336 * 1000 / 3 = 112000; 336 * 7 / 3 = 784.
    EXPECT_EQ(clip_resize_hw(3, 1001, 336).second, 112112);
    EXPECT_EQ(clip_resize_hw(7, 3, 336).first, 784);
    // SAM: int(x * 1024 / max + 0.5).
    EXPECT_EQ(sam_resize_hw(480, 640, 1024), HW(768, 1024));
    EXPECT_EQ(sam_resize_hw(1100, 900, 1024), HW(1024, 838));
    EXPECT_EQ(sam_resize_hw(3000, 4000, 1024), HW(768, 1024));
    // 1024 * 1 / 2048 = 0.5 -> int(1.0) = 1 (rounds half up).
    EXPECT_EQ(sam_resize_hw(1, 2048, 1024), HW(1, 1024));
}

// Hand-worked: a constant image stays constant through the resize, so every CLIP value is
// (v / 255 - mean) / std with the preprocessor_config.json numbers; the tiny CLIP folder has no
// such file, which must mean the OpenAI constants.
TEST(PreprocessClip, UsesPreprocessorConfigMeanStd) {
    Image flat;
    flat.width  = 500;
    flat.height = 400;
    flat.rgb.assign(500 * 400 * 3, 51); // 51 / 255 = 0.2
    ClipVisionConfig clip;
    clip.image_size   = 28;
    const auto custom = parse_clip_image_processor_config(
        R"({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.5, 1.0]})", "test");
    const at::Tensor got = preprocess_clip(flat, clip, custom);
    ASSERT_EQ(got.sizes(), (std::vector<int64_t>{1, 3, 28, 28}));
    const float expected[3] = {-1.2f, -0.6f, -0.3f};
    for (int c = 0; c < 3; ++c) {
        EXPECT_NEAR(got[0][c].min().item<float>(), expected[c], 1e-6) << c;
        EXPECT_NEAR(got[0][c].max().item<float>(), expected[c], 1e-6) << c;
    }
    const auto defaults = load_clip_image_processor_config(test::tiny_clip_dir());
    EXPECT_EQ(defaults.image_mean, (std::vector<double>{0.48145466, 0.4578275, 0.40821073}));
    EXPECT_EQ(defaults.image_std, (std::vector<double>{0.26862954, 0.26130258, 0.27577711}));
    EXPECT_THROW(parse_clip_image_processor_config(R"({"image_mean": [0.5, 0.5]})", "t"), Error);
    EXPECT_THROW(parse_clip_image_processor_config(R"({"image_std": [1, 0, 1]})", "t"), Error);
}

// Hand-worked SAM geometry on a small canvas: 20x10 (WxH) with img_size 32 -> scale 1.6, h' = 16,
// w' = 32; the valid block holds (v - mean) / std, the padding below it zeros.
TEST(PreprocessSam, ResizesNormalisesAndPads) {
    Image flat;
    flat.width  = 20;
    flat.height = 10;
    flat.rgb.assign(20 * 10 * 3, 100);
    SamConfig sam;
    sam.img_size              = 32;
    const SamPreprocessed out = preprocess_sam(flat, sam);
    EXPECT_EQ(out.resized_h, 16);
    EXPECT_EQ(out.resized_w, 32);
    EXPECT_EQ(out.resized.height, 16);
    EXPECT_EQ(out.resized.width, 32);
    ASSERT_EQ(out.pixel_values.sizes(), (std::vector<int64_t>{1, 3, 32, 32}));
    for (int c = 0; c < 3; ++c) {
        const float expected   = (100.0f - float(sam.pixel_mean[c])) / float(sam.pixel_std[c]);
        const at::Tensor valid = out.pixel_values[0][c].narrow(0, 0, 16);
        EXPECT_FLOAT_EQ(valid.min().item<float>(), expected);
        EXPECT_FLOAT_EQ(valid.max().item<float>(), expected);
        EXPECT_EQ(out.pixel_values[0][c].narrow(0, 16, 16).abs().max().item<float>(), 0.0f);
    }
    // An aspect ratio so extreme that a side rounds to 0 pixels is refused, as Pillow refuses it.
    Image thin;
    thin.width  = 200;
    thin.height = 1;
    thin.rgb.assign(200 * 3, 0);
    EXPECT_THROW(preprocess_sam(thin, sam), Error);
    EXPECT_THROW(preprocess_sam(Image{}, sam), Error);
}

} // namespace
} // namespace glamm
