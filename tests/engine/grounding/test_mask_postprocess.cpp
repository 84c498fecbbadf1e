// Mask post-processing on hand-worked examples: bilinear (align_corners=false) upscaling, the crop
// to the resized image, the resize to the original size, and the threshold.
#include "core/error.h"
#include "grounding/mask_postprocess.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

using namespace glamm;

namespace {

// [[0, 4], [8, 12]] as a [1, 1, 2, 2] low-res mask.
at::Tensor two_by_two() {
    return at::tensor({0.f, 4.f, 8.f, 12.f}).view({1, 1, 2, 2});
}

// 2 -> 4 with align_corners=false samples source coordinates (i + 0.5) / 2 - 0.5 =
// -0.25, 0.25, 0.75, 1.25, clamped to [0, 1]: [a, b] -> [a, .75a + .25b, .25a + .75b, b].
// Rows [0, 4] -> [0, 1, 3, 4] and [8, 12] -> [8, 9, 11, 12]; then the same along columns.
at::Tensor expected_four_by_four() {
    return at::tensor({0.f, 1.f, 3.f, 4.f,    //
                       2.f, 3.f, 5.f, 6.f,    //
                       6.f, 7.f, 9.f, 10.f,   //
                       8.f, 9.f, 11.f, 12.f}) //
        .view({4, 4});
}

} // namespace

TEST(MaskPostprocess, UpscalesBilinearWithoutAlignedCorners) {
    MaskGeometry g{/*img_size=*/4, /*resized=*/4, 4, /*original=*/4, 4};
    at::Tensor out = postprocess_masks(two_by_two(), g);
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{1, 4, 4}));
    EXPECT_EQ(out.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::allclose(out[0], expected_four_by_four(), 0, 1e-6)) << out;
}

TEST(MaskPostprocess, CropsToTheResizedImage) {
    // The image occupied the top two rows of the 4×4 canvas and kept its size.
    MaskGeometry g{4, /*resized=*/2, 4, /*original=*/2, 4};
    at::Tensor out = postprocess_masks(two_by_two(), g);
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{1, 2, 4}));
    EXPECT_TRUE(at::allclose(out[0], expected_four_by_four().slice(0, 0, 2), 0, 1e-6)) << out;
}

TEST(MaskPostprocess, DownscalesToTheOriginalSize) {
    // Crop [[0,1,3,4],[2,3,5,6]] -> 1×2: scale 2 on both axes, source coordinate
    // (0 + 0.5) * 2 - 0.5 = 0.5 (rows 0/1 averaged) and columns 0.5 and 2.5:
    // row average [1, 2, 4, 5] -> [1.5, 4.5]. No antialiasing, as in F.interpolate.
    MaskGeometry g{4, 2, 4, /*original=*/1, 2};
    at::Tensor out = postprocess_masks(two_by_two(), g);
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{1, 1, 2}));
    EXPECT_NEAR(out[0][0][0].item<float>(), 1.5f, 1e-6);
    EXPECT_NEAR(out[0][0][1].item<float>(), 4.5f, 1e-6);
}

TEST(MaskPostprocess, CastsLowPrecisionInputToFloat) {
    MaskGeometry g{4, 4, 4, 4, 4};
    at::Tensor out = postprocess_masks(two_by_two().to(at::kBFloat16), g);
    EXPECT_EQ(out.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::allclose(out[0], expected_four_by_four(), 0, 1e-6));
}

TEST(MaskPostprocess, HandlesNoMasks) {
    MaskGeometry g{4, 4, 4, 3, 5};
    at::Tensor out = postprocess_masks(at::empty({0, 1, 2, 2}), g);
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{0, 3, 5}));
}

TEST(MaskPostprocess, RejectsBadInput) {
    EXPECT_THROW(postprocess_masks(at::zeros({1, 2, 2, 2}), MaskGeometry{4, 4, 4, 4, 4}), Error);
    EXPECT_THROW(postprocess_masks(at::zeros({2, 2}), MaskGeometry{4, 4, 4, 4, 4}), Error);
    EXPECT_THROW(postprocess_masks(two_by_two(), MaskGeometry{4, 5, 4, 4, 4}),
                 Error); // outside canvas
    EXPECT_THROW(postprocess_masks(two_by_two(), MaskGeometry{4, 4, 4, 0, 4}), Error);
}

TEST(MaskPostprocess, ThresholdIsStrictlyPositive) {
    at::Tensor logits = at::tensor({-1.f, 0.f, 1e-6f, 3.f}).view({1, 2, 2});
    at::Tensor masks  = binarize_masks(logits);
    EXPECT_EQ(masks.scalar_type(), at::kBool);
    EXPECT_FALSE(masks[0][0][0].item<bool>());
    EXPECT_FALSE(masks[0][0][1].item<bool>());
    EXPECT_TRUE(masks[0][1][0].item<bool>());
    EXPECT_TRUE(masks[0][1][1].item<bool>());
}
