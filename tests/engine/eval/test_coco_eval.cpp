// Mask AP (pycocotools COCOeval segm semantics) on crafted prediction sets worked by hand.
#include "eval/coco_eval.h"
#include "eval/numpy_math.h"

#include <gtest/gtest.h>

using namespace glamm;
using namespace glamm::eval;

namespace {

constexpr int64_t kH = 10, kW = 10;
// pr = tp / (tp + fp + np.spacing(1)) is 1 - 2^-53-ish, not exactly 1: compare with a tolerance.
constexpr double kTol = 1e-12;

// A mask of the 10x10 image covering pixels [y0, y1) x [x0, x1).
Rle box(int y0, int y1, int x0, int x1) {
    std::vector<uint8_t> m(kH * kW, 0);
    for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) m[size_t(y * kW + x)] = 1;
    return rle_encode(m.data(), kH, kW);
}

CocoGt gt(int64_t id, const std::string& img, Rle r, bool crowd = false) {
    CocoGt g;
    g.id           = id;
    g.image_id     = img;
    g.area         = double(r.area());
    g.segmentation = std::move(r);
    g.iscrowd      = crowd;
    return g;
}

CocoDt dt(int64_t id, const std::string& img, Rle r, double score = 1.0) {
    CocoDt d;
    d.id           = id;
    d.image_id     = img;
    d.segmentation = std::move(r);
    d.score        = score;
    return d;
}

CocoEvalParams params(std::vector<std::string> images) {
    CocoEvalParams p;
    p.image_ids    = std::move(images);
    p.category_ids = {1};
    return p;
}

} // namespace

TEST(CocoEval, ThresholdsAreNumpyLinspace) {
    const auto t = coco_iou_thresholds();
    ASSERT_EQ(t.size(), 10u);
    EXPECT_EQ(t[0], 0.5);
    EXPECT_EQ(t[9], 0.95);
    const auto r = coco_recall_thresholds();
    ASSERT_EQ(r.size(), 101u);
    EXPECT_EQ(r[0], 0.0);
    EXPECT_EQ(r[100], 1.0);
}

// One GT, one perfect detection: precision 1 at every recall point and threshold.
TEST(CocoEval, PerfectDetection) {
    auto res =
        coco_segm_eval({gt(1, "a", box(0, 4, 0, 4))}, {dt(1, "a", box(0, 4, 0, 4))}, params({"a"}));
    EXPECT_NEAR(res.ap50, 1.0, kTol);
    EXPECT_NEAR(res.ap, 1.0, kTol);
    EXPECT_NEAR(res.ar100, 1.0, kTol);
    // 16 pixels is "small" (< 32²); no GT is medium or large -> -1 as summarize prints.
    EXPECT_NEAR(res.ap_small, 1.0, kTol);
    EXPECT_EQ(res.ap_medium, -1.0);
    EXPECT_EQ(res.ap_large, -1.0);
}

// Two GTs; the 0.9 detection hits g1, the 0.8 one hits nothing. tp = [1, 1], fp = [0, 1]:
// rc = [.5, .5], pr = [1, .5]. Recall points 0.00..0.50 (51 of them) find index 0 -> 1;
// points above .5 are past the end -> 0. AP50 = 51/101.
TEST(CocoEval, FalsePositiveAfterTruePositive) {
    auto res = coco_segm_eval({gt(1, "a", box(0, 4, 0, 4)), gt(2, "a", box(6, 10, 6, 10))},
                              {dt(1, "a", box(0, 4, 0, 4), 0.9), dt(2, "a", box(0, 2, 6, 8), 0.8)},
                              params({"a"}));
    EXPECT_NEAR(res.ap50, 51.0 / 101.0, kTol);
    EXPECT_NEAR(res.ar100, 0.5, kTol);
}

// One GT; the higher-scored detection misses, the lower one hits. tp = [0, 1], fp = [1, 1]:
// rc = [0, 1], pr = [0, .5] -> envelope [.5, .5]; every recall point gets .5. AP50 = 0.5.
// Listing them in the other order does not matter: detections are sorted by score.
TEST(CocoEval, ScoresDecideTheOrder) {
    std::vector<CocoDt> dts = {dt(1, "a", box(0, 4, 0, 4), 0.3),
                               dt(2, "a", box(6, 10, 6, 10), 0.7)};
    auto res                = coco_segm_eval({gt(1, "a", box(0, 4, 0, 4))}, dts, params({"a"}));
    EXPECT_NEAR(res.ap50, 0.5, kTol);
}

// GCG gives every mask score 1.0, so ties are broken by image order (sorted image ids) and then
// by the file order (stable mergesort). Image "a": a miss; image "b": a hit; 2 GTs.
// Order a, b: tp = [0, 1], fp = [1, 1] -> rc = [0, .5], pr = [0, .5] -> envelope [.5, .5];
// recall points <= .5 (51) give .5, the rest 0: AP50 = 25.5/101.
// Order b, a: tp = [1, 1], fp = [0, 1] -> rc = [.5, .5], pr = [1, .5]: AP50 = 51/101.
TEST(CocoEval, EqualScoresFollowImageOrder) {
    std::vector<CocoGt> gts = {gt(1, "a", box(0, 4, 0, 4)), gt(2, "b", box(0, 4, 0, 4))};
    std::vector<CocoDt> dts = {dt(1, "a", box(6, 10, 6, 10)), dt(2, "b", box(0, 4, 0, 4))};
    EXPECT_NEAR(coco_segm_eval(gts, dts, params({"a", "b"})).ap50, 25.5 / 101.0, kTol);
    EXPECT_NEAR(coco_segm_eval(gts, dts, params({"b", "a"})).ap50, 51.0 / 101.0, kTol);
}

// AP averages the ten thresholds; a threshold the IoU misses gives tp = 0, fp = 1 -> precision 0.
// Nested: detection = row 0 of an 8-pixel GT (rows 0-1, cols 0-3) -> IoU 4/8 = .5 exactly,
// which meets the first threshold (.5 exactly, linspace's start) only: AP50 = 1, AP = 1/10.
// Shifted: GT 4x4 (16 px), detection rows 0-2 x cols 0-4 (15 px), intersection 12, union 19:
// IoU .6316 meets .50, .55, .60 -> AP = 3/10.
TEST(CocoEval, ApAveragesOverIouThresholds) {
    auto nested =
        coco_segm_eval({gt(1, "a", box(0, 2, 0, 4))}, {dt(1, "a", box(0, 1, 0, 4))}, params({"a"}));
    EXPECT_NEAR(nested.ap50, 1.0, kTol);
    EXPECT_NEAR(nested.ap, 0.1, kTol);
    EXPECT_NEAR(nested.ap75, 0.0, kTol);
    auto shifted =
        coco_segm_eval({gt(1, "a", box(0, 4, 0, 4))}, {dt(1, "a", box(0, 3, 0, 5))}, params({"a"}));
    EXPECT_NEAR(shifted.ap50, 1.0, kTol);
    EXPECT_NEAR(shifted.ap, 0.3, kTol);
}

// A detection inside a crowd region matches it (IoU = intersection / detection area = 1) and is
// ignored instead of counted as a false positive: only the hit on g1 counts -> AP50 = 1. Without
// the crowd flag it is a false positive after the hit (as in FalsePositiveAfterTruePositive,
// but now g2 is a real GT): rc = [.5, .5], pr = [1, .5] -> AP50 = 51/101.
TEST(CocoEval, CrowdRegionsAbsorbDetections) {
    std::vector<CocoDt> dts = {dt(1, "a", box(0, 4, 0, 4), 0.9), dt(2, "a", box(6, 8, 6, 8), 0.8)};
    auto crowd = coco_segm_eval({gt(1, "a", box(0, 4, 0, 4)), gt(2, "a", box(5, 10, 5, 10), true)},
                                dts, params({"a"}));
    EXPECT_NEAR(crowd.ap50, 1.0, kTol);
    auto plain = coco_segm_eval(
        {gt(1, "a", box(0, 4, 0, 4)), gt(2, "a", box(5, 10, 0, 10))},
        {dt(1, "a", box(0, 4, 0, 4), 0.9), dt(2, "a", box(0, 2, 6, 10), 0.8)}, params({"a"}));
    EXPECT_NEAR(plain.ap50, 51.0 / 101.0, kTol);
}

// np.sum is pairwise: ten 0.1s sum to exactly 1.0 (8 lanes, then two more), while a plain
// left-to-right loop gives 0.9999999999999999.
TEST(NumpyMath, PairwiseSumMatchesNumpy) {
    std::vector<double> v(10, 0.1);
    EXPECT_EQ(numpy_sum(v), 1.0);
    double seq = 0;
    for (double x : v) seq += x;
    EXPECT_NE(seq, 1.0);
    EXPECT_EQ(numpy_mean(v), 0.1);
}
