// parse_segmentation: COCO "segmentation" fields read the way pycocotools' frPyObjects reads them
// (the GT of GCG mask AP / mIoU and of referring segmentation).
#include "core/error.h"
#include "eval/benchmark.h"
#include "io/rle.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace glamm;
using nlohmann::json;

TEST(ParseSegmentation, AListWhoseFirstEntryHasFourNumbersIsBoxes) {
    // frBbox: [x, y, w, h] -> the polygon (x, y) (x, y + h) (x + w, y + h) (x + w, y): a
    // 50 x 40 box with integer corners covers exactly 2000 pixels, not a 2-point sliver.
    const Rle r = eval::parse_segmentation(json::parse("[[10, 10, 50, 40]]"), 100, 100);
    EXPECT_EQ(r.area(), 50 * 40);
    const Rle two =
        eval::parse_segmentation(json::parse("[[0, 0, 5, 4], [90, 90, 10, 10]]"), 100, 100);
    EXPECT_EQ(two.area(), 5 * 4 + 10 * 10);
    test::expect_error(
        [] { eval::parse_segmentation(json::parse("[[0, 0, 5, 4], [1, 1, 9, 1, 9, 9]]"), 20, 20); },
        "a list of boxes holds one of 6 numbers");
}

TEST(ParseSegmentation, PolygonsDropAnOddLastNumber) {
    // frPoly takes int(len / 2) points: the 7th number of this triangle is ignored.
    const Rle odd  = eval::parse_segmentation(json::parse("[[0, 0, 10, 0, 10, 10, 3]]"), 20, 20);
    const Rle even = eval::parse_segmentation(json::parse("[[0, 0, 10, 0, 10, 10]]"), 20, 20);
    EXPECT_EQ(odd.counts, even.counts);
    EXPECT_GT(even.area(), 0);
    // Fewer than 4 numbers first: pycocotools raises ("input type is not supported").
    test::expect_error([] { eval::parse_segmentation(json::parse("[[1, 2]]"), 20, 20); },
                       "a polygon needs at least 3 points");
}

TEST(ParseSegmentation, ReferTargetsKeepThePixelsInsideExactlyOnePart) {
    // Two 6 x 6 boxes overlapping in a 2 x 2 square: their union is 36 + 36 - 4 = 68 pixels
    // (COCO), while GLaMM's referring target (the parts summed, counts other than 0 and 1 left
    // out by the 2-bin histogram) is the 64 pixels covered once.
    const json two = json::parse("[[0, 0, 6, 6], [4, 4, 6, 6]]");
    EXPECT_EQ(eval::parse_segmentation(two, 20, 20).area(), 68);
    const Rle once = eval::parse_segmentation(two, 20, 20, eval::SegmentParts::kCountedOnce);
    EXPECT_EQ(once.area(), 64);
    EXPECT_EQ(rle_decode(once)[5 * 20 + 5], 0); // (x 5, y 5) lies in both boxes
    EXPECT_EQ(rle_decode(once)[1 * 20 + 1], 1);
    // One part: the same either way.
    const json one = json::parse("[[2, 2, 5, 4]]");
    EXPECT_EQ(eval::parse_segmentation(one, 20, 20, eval::SegmentParts::kCountedOnce).counts,
              eval::parse_segmentation(one, 20, 20).counts);

    // score_refseg scores against that target: a prediction covering the whole union has
    // intersection 64 and union 68.
    const json gt = {
        {"images", json::array({{{"id", 7}, {"height", 20}, {"width", 20}}})},
        {"annotations", json::array({{{"id", 3}, {"image_id", 7}, {"segmentation", two}}})}};
    eval::Prediction p;
    p.image_id   = "3";
    p.masks      = {eval::parse_segmentation(two, 20, 20)};
    const json s = eval::score_refseg({gt}, {p});
    EXPECT_NEAR(s["cIoU"].get<double>(), 64.0 / 68.0, 1e-12);
    EXPECT_EQ(s["missing_predictions"], 0);
}
