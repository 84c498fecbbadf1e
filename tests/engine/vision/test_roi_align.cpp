// RoIAlign against answers worked out by hand on a 4×4 ramp (value = 4·y + x + 1 at row y,
// column x, so bilinear interpolation inside the grid is exact and each bin's average is the value
// at its mean sample point, except where samples are clamped or dropped).
#include "core/error.h"
#include "vision/roi_align.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace glamm {
namespace {

// [1, 1, 4, 4]: row y, column x holds 4·y + x + 1.
at::Tensor ramp() {
    return (at::arange(16, at::kFloat) + 1).reshape({1, 1, 4, 4});
}

at::Tensor roi(float batch, float x1, float y1, float x2, float y2) {
    return at::tensor({batch, x1, y1, x2, y2}, at::kFloat).reshape({1, 5});
}

RoiAlignOptions options(int64_t output_size, double scale = 1.0, int64_t sampling = 2,
                        bool aligned = true) {
    RoiAlignOptions o;
    o.output_size    = output_size;
    o.spatial_scale  = scale;
    o.sampling_ratio = sampling;
    o.aligned        = aligned;
    return o;
}

void expect_values(const at::Tensor& got, std::initializer_list<float> want) {
    const at::Tensor flat = got.reshape({-1});
    ASSERT_EQ(flat.numel(), static_cast<int64_t>(want.size()));
    int64_t i = 0;
    for (float w : want) {
        EXPECT_NEAR(flat[i].item<float>(), w, 1e-5) << "element " << i;
        ++i;
    }
}

// Box (0,0)-(4,4): aligned shifts it to [-0.5, 3.5]; 2 bins of 2 px, samples at 0,1 and 2,3:
// exactly the pixel centres, so each bin is the mean of a 2×2 block.
TEST(RoiAlign, SamplesOnPixelCentresAverageBlocks) {
    const at::Tensor out = roi_align(ramp(), roi(0, 0, 0, 4, 4), options(2));
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 1, 2, 2}));
    expect_values(out, {(1 + 2 + 5 + 6) / 4.f, (3 + 4 + 7 + 8) / 4.f, (9 + 10 + 13 + 14) / 4.f,
                        (11 + 12 + 15 + 16) / 4.f});
}

// Box (1,1)-(3,3) -> [0.5, 2.5]: samples at 0.75, 1.25 | 1.75, 2.25 (interpolated); bin means sit
// at 1 and 2, so the bins read the ramp at (1,1), (1,2), (2,1), (2,2).
TEST(RoiAlign, InterpolatesBetweenPixels) {
    expect_values(roi_align(ramp(), roi(0, 1, 1, 3, 3), options(2)), {6, 7, 10, 11});
}

// Box (2,2)-(6,6) -> [1.5, 5.5]: samples at 2, 3 | 4, 5. A sample at 4 (= H) is clamped to row 3;
// a sample at 5 (> H) contributes 0 but still counts in the average of 4.
TEST(RoiAlign, BoxHangingOffTheBottomRight) {
    expect_values(roi_align(ramp(), roi(0, 2, 2, 6, 6), options(2)),
                  {(11 + 12 + 15 + 16) / 4.f, (12 + 16) / 4.f, (15 + 16) / 4.f, 16 / 4.f});
}

// Box (-2,-2)-(1,1) -> [-2.5, 0.5], one bin of 3 px: samples at -1.75 (below -1: dropped) and
// -0.25 (clamped to 0). Only the sample (0, 0) survives: 1 / 4.
TEST(RoiAlign, BoxHangingOffTheTopLeft) {
    expect_values(roi_align(ramp(), roi(0, -2, -2, 1, 1), options(1)), {0.25f});
}

// A sample at exactly -1 is still inside (clamped to 0): box (-1.5,-1.5)-(0.5,0.5) -> [-2, 0],
// one bin, samples at -1.5 (dropped) and -0.5 (kept, clamped): again only (0, 0).
TEST(RoiAlign, SampleAtMinusOneBoundary) {
    // samples: -2 + 0.5 = -1.5 and -2 + 1.5 = -0.5
    expect_values(roi_align(ramp(), roi(0, -1.5f, -1.5f, 0.5f, 0.5f), options(1)), {0.25f});
    // box (-1,-1)-(1,1) -> [-1.5, 0.5]: samples at -1 (inside, clamped) and 0: all four kept.
    expect_values(roi_align(ramp(), roi(0, -1, -1, 1, 1), options(1)), {1.f});
}

// spatial_scale maps box units to grid units before the shift: (0,0)-(8,8) at scale 0.5 is the
// first test's box.
TEST(RoiAlign, SpatialScale) {
    expect_values(roi_align(ramp(), roi(0, 0, 0, 8, 8), options(2, 0.5)),
                  {3.5f, 5.5f, 11.5f, 13.5f});
}

// Legacy (aligned = false): no shift; (0,0)-(4,4) gives samples 0.5, 1.5 | 2.5, 3.5 and 3.5 is
// clamped to 3 (x_low >= W - 1), so the second column's mean x is (2.5 + 3) / 2 = 2.75.
TEST(RoiAlign, UnalignedLegacyMode) {
    expect_values(roi_align(ramp(), roi(0, 0, 0, 4, 4), options(2, 1.0, 2, false)),
                  {6.f, 7.75f, 4 * 2.75f + 1 + 1, 4 * 2.75f + 2.75f + 1});
}

// sampling_ratio <= 0 picks ceil(roi side / bins) samples: a 4-px box in 2 bins gets 2 per side,
// the same as the explicit first test.
TEST(RoiAlign, AdaptiveSamplingRatio) {
    expect_values(roi_align(ramp(), roi(0, 0, 0, 4, 4), options(2, 1.0, 0)),
                  {3.5f, 5.5f, 11.5f, 13.5f});
}

// The batch index selects the image; channels are independent; several rois at once.
TEST(RoiAlign, BatchIndexChannelsAndSeveralRois) {
    const at::Tensor image0   = at::cat({ramp(), 2 * ramp()}, 1); // [1, 2, 4, 4]
    const at::Tensor features = at::cat({image0, -image0}, 0);    // [2, 2, 4, 4]
    const at::Tensor rois     = at::cat({roi(1, 0, 0, 4, 4), roi(0, 1, 1, 3, 3)}, 0);
    const at::Tensor out      = roi_align(features, rois, options(2));
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 2, 2, 2}));
    expect_values(out[0][0], {-3.5f, -5.5f, -11.5f, -13.5f});
    expect_values(out[0][1], {-7.f, -11.f, -23.f, -27.f});
    expect_values(out[1][0], {6, 7, 10, 11});
    expect_values(out[1][1], {12, 14, 20, 22});
}

// Input dtype does not matter (computed in float32), result is float32.
TEST(RoiAlign, ComputesInFloat32) {
    const at::Tensor out = roi_align(ramp().to(at::kBFloat16), roi(0, 0, 0, 4, 4), options(2));
    EXPECT_EQ(out.scalar_type(), at::kFloat);
    expect_values(out, {3.5f, 5.5f, 11.5f, 13.5f});
}

// The backward by hand: with samples on the pixel centres each bin is the mean of its 2×2 block,
// so the gradient of sum(out · g) is each bin's g / 4 on its block's four pixels.
TEST(RoiAlign, BackwardSpreadsEachBinsGradientOverItsBlock) {
    const at::Tensor features = ramp().requires_grad_(true);
    const at::Tensor out      = roi_align(features, roi(0, 0, 0, 4, 4), options(2));
    ASSERT_TRUE(out.requires_grad());
    (out * at::tensor({1.f, 2.f, 3.f, 4.f}).reshape({1, 1, 2, 2})).sum().backward();
    expect_values(features.grad(), {.25f, .25f, .5f, .5f, .25f, .25f, .5f, .5f, //
                                    .75f, .75f, 1.f, 1.f, .75f, .75f, 1.f, 1.f});
}

// RoIAlign is linear in the features: out = A · features. The backward must be Aᵀ, with A read
// column by column from the forward on each basis image; checked where samples are clamped and
// dropped (a box hanging off the grid), with several images, channels and regions.
TEST(RoiAlign, BackwardIsTheTransposeOfTheForward) {
    const int64_t batch = 2, channels = 2, side = 4;
    const at::Tensor rois =
        at::cat({roi(1, 2, 2, 6, 6), roi(0, 0.3f, 0.7f, 3.1f, 2.2f), roi(1, -1, 0, 2, 3)}, 0);
    const RoiAlignOptions o = options(3, 1.0, 0); // adaptive sampling as well
    const int64_t inputs    = batch * channels * side * side;
    std::vector<at::Tensor> columns;
    for (int64_t i = 0; i < inputs; ++i) {
        at::Tensor basis = at::zeros({inputs}, at::kFloat);
        basis[i]         = 1.f;
        columns.push_back(
            roi_align(basis.reshape({batch, channels, side, side}), rois, o).reshape({-1}));
    }
    const at::Tensor a = at::stack(columns, 1); // [outputs, inputs]
    at::manual_seed(0);
    const at::Tensor upstream = at::randn({a.size(0)}, at::kFloat);
    const at::Tensor features =
        at::randn({batch, channels, side, side}, at::kFloat).requires_grad_(true);
    const at::Tensor out = roi_align(features, rois, o);
    EXPECT_TRUE(at::allclose(out.detach().reshape({-1}), a.matmul(features.detach().reshape({-1})),
                             1e-5, 1e-6));
    (out.reshape({-1}) * upstream).sum().backward();
    EXPECT_TRUE(at::allclose(features.grad().reshape({-1}), a.t().matmul(upstream), 1e-5, 1e-6));
}

// The gradient comes back in the features' dtype; without a gradient to track (or under
// no_grad) the output tracks none.
TEST(RoiAlign, BackwardKeepsTheFeaturesDtype) {
    const at::Tensor features = ramp().to(at::kBFloat16).requires_grad_(true);
    roi_align(features, roi(0, 0, 0, 4, 4), options(2)).sum().backward();
    EXPECT_EQ(features.grad().scalar_type(), at::kBFloat16);
    EXPECT_FALSE(roi_align(ramp(), roi(0, 0, 0, 4, 4), options(2)).requires_grad());
    at::NoGradGuard no_grad;
    EXPECT_FALSE(roi_align(features, roi(0, 0, 0, 4, 4), options(2)).requires_grad());
}

// The gather (the path off the CPU) against the CPU loops, forward and backward, where samples
// are clamped and dropped, with several images, channels and regions, both sampling modes and
// both alignments; and in bf16, whose gradient comes back in bf16.
TEST(RoiAlign, TheGatherPathMatchesTheLoopsForwardAndBackward) {
    const at::Tensor rois = at::cat({roi(1, 2, 2, 6, 6), roi(0, 0.3f, 0.7f, 3.1f, 2.2f),
                                     roi(1, -1, 0, 2, 3), roi(0, 1, 1, 1, 1), roi(0, 0, 0, 16, 12)},
                                    0);
    at::manual_seed(0);
    const at::Tensor values = at::randn({2, 3, 5, 6}, at::kFloat);
    for (const RoiAlignOptions& o :
         {options(3, 1.0, 0), options(2, 0.5, 2), options(4, 0.25, 0, false)}) {
        const at::Tensor a     = values.clone().requires_grad_(true);
        const at::Tensor b     = values.clone().requires_grad_(true);
        const at::Tensor loops = roi_align(a, rois, o), gather = roi_align_gather(b, rois, o);
        ASSERT_EQ(gather.sizes(), loops.sizes());
        EXPECT_EQ(gather.scalar_type(), at::kFloat);
        EXPECT_TRUE(at::allclose(gather, loops, 1e-5, 1e-6))
            << (gather - loops).abs().max().item<float>();
        const at::Tensor upstream = at::randn(loops.sizes(), at::kFloat);
        (loops * upstream).sum().backward();
        (gather * upstream).sum().backward();
        EXPECT_TRUE(at::allclose(b.grad(), a.grad(), 1e-5, 1e-6))
            << (b.grad() - a.grad()).abs().max().item<float>();
    }
    const at::Tensor half = ramp().to(at::kBFloat16).requires_grad_(true);
    const at::Tensor out  = roi_align_gather(half, roi(0, 0, 0, 4, 4), options(2));
    expect_values(out, {3.5f, 5.5f, 11.5f, 13.5f});
    out.sum().backward();
    EXPECT_EQ(half.grad().scalar_type(), at::kBFloat16);
    EXPECT_THROW(roi_align_gather(ramp(), roi(1, 0, 0, 1, 1), options(2)), Error);
}

TEST(RoiAlign, RejectsBadInput) {
    EXPECT_THROW(roi_align(ramp()[0], roi(0, 0, 0, 1, 1), options(2)), Error);
    EXPECT_THROW(roi_align(ramp(), at::zeros({1, 4}), options(2)), Error);
    EXPECT_THROW(roi_align(ramp(), roi(1, 0, 0, 1, 1), options(2)), Error);
    EXPECT_THROW(roi_align(ramp(), roi(0, 0, 0, 1, 1), options(0)), Error);
}

} // namespace
} // namespace glamm
