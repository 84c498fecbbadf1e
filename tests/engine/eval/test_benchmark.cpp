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
