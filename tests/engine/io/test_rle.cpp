// COCO RLE: known answers worked out by hand from the maskApi.c algorithm.
#include "core/error.h"
#include "io/rle.h"

#include <gtest/gtest.h>

#include <random>

using namespace glamm;

namespace {
// h = 3, w = 2, row-major:   y0: 0 1 / y1: 1 1 / y2: 0 0
// column-major scan: 0 1 0 | 1 1 0  -> runs 1 zero, 1 one, 1 zero, 2 ones, 1 zero.
const uint8_t kMask[6] = {0, 1, 1, 1, 0, 0};
} // namespace

TEST(Rle, EncodesColumnMajorStartingWithZeros) {
    Rle rle = rle_encode(kMask, 3, 2);
    EXPECT_EQ(rle.counts, (std::vector<uint32_t>{1, 1, 1, 2, 1}));
    EXPECT_EQ(rle.area(), 3);
    // Pixels (x=1,y=0), (0,1), (1,1): box x 0..1, y 0..1.
    EXPECT_EQ(rle.bbox(), (std::vector<double>{0, 0, 2, 2}));
    // A mask starting with a one has a leading zero-length run.
    const uint8_t ones[4] = {1, 1, 1, 1};
    EXPECT_EQ(rle_encode(ones, 2, 2).counts, (std::vector<uint32_t>{0, 4}));
}

TEST(Rle, CompressedStringsMatchHandComputation) {
    // counts 1,1,1,2,1: the 4th and 5th are stored as 2-1 = 1 and 1-1 = 0 -> "11110".
    EXPECT_EQ(rle_to_string(rle_encode(kMask, 3, 2)), "11110");
    // 0,5,3,1: the 4th is 1-5 = -4 = 0b...11100: one group 28 with the sign bit -> 'L'.
    Rle r{3, 3, {0, 5, 3, 1}};
    EXPECT_EQ(rle_to_string(r), "053L");
    // 100 = 3*32 + 4: groups 4 (+0x20 continuation = 36 -> 'T') then 3 -> "T3".
    Rle big{10, 10, {100}};
    EXPECT_EQ(rle_to_string(big), "T3");
    EXPECT_EQ(rle_from_string("053L", 3, 3).counts, r.counts);
    EXPECT_EQ(rle_from_string("T3", 10, 10).counts, big.counts);
}

TEST(Rle, RoundTripsRandomMasks) {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 50; ++trial) {
        const int64_t h = 1 + rng() % 40, w = 1 + rng() % 40;
        std::vector<uint8_t> mask(static_cast<size_t>(h * w));
        const int density = rng() % 100;
        for (auto& v : mask) v = (rng() % 100) < static_cast<unsigned>(density);
        Rle rle = rle_encode(mask.data(), h, w);
        EXPECT_EQ(rle_decode(rle), mask);
        Rle back = rle_from_string(rle_to_string(rle), h, w);
        EXPECT_EQ(back.counts, rle.counts);
        int64_t area = 0;
        for (auto v : mask) area += v;
        EXPECT_EQ(rle.area(), area);
    }
}

TEST(Rle, IouAndMerge) {
    Rle a                 = rle_encode(kMask, 3, 2);
    const uint8_t ones[6] = {1, 1, 1, 1, 1, 1};
    Rle full              = rle_encode(ones, 3, 2);
    EXPECT_DOUBLE_EQ(rle_iou(a, full), 3.0 / 6.0);
    EXPECT_DOUBLE_EQ(rle_iou(a, full, /*crowd=*/true), 3.0 / 3.0);
    const uint8_t other[6] = {1, 0, 0, 0, 0, 1}; // disjoint from kMask
    Rle b                  = rle_encode(other, 3, 2);
    EXPECT_DOUBLE_EQ(rle_iou(a, b), 0.0);
    EXPECT_EQ(rle_decode(rle_merge({a, b}, false)), (std::vector<uint8_t>{1, 1, 1, 1, 0, 1}));
    EXPECT_EQ(rle_merge({a, full}, true).counts, a.counts);
}

TEST(Rle, RejectsMalformedStrings) {
    EXPECT_THROW(rle_from_string("11", 3, 3), Error);    // 2 pixels for a 9-pixel mask
    EXPECT_THROW(rle_from_string("1\x7f", 3, 3), Error); // invalid character
    EXPECT_THROW(rle_from_string("T", 10, 10), Error);   // ends inside a count
}

// rleFrPoly worked by hand. Square (0,0)-(2,2) in a 4x4 image, vertices x5: (0,0) (10,0) (10,10)
// (0,10). Along the top edge u runs 0..10: a pixel-centre column is crossed where
// (u-1 + .5)/5 - .5 is an integer, i.e. u = 3 (x = 0) and u = 8 (x = 1), with y = ceil(max(0,
// (0+.5)/5-.5)) = 0. Along the bottom edge (walked back, u = 10..0) the crossings are u = 7
// (x = 1) and u = 2 (x = 0), y = ceil((10+.5)/5-.5) = ceil(1.6) = 2. Positions x*h+y: 0, 4, 6,
// 2 and the end 16 -> sorted 0 2 4 6 16 -> runs 0 2 2 2 10: pixels y 0..1 of columns 0 and 1.
TEST(Rle, PolygonSquareByHand) {
    Rle r = rle_from_polygon({0, 0, 2, 0, 2, 2, 0, 2}, 4, 4);
    EXPECT_EQ(r.counts, (std::vector<uint32_t>{0, 2, 2, 2, 10}));
    EXPECT_EQ(r.area(), 4);
    EXPECT_EQ(r.bbox(), (std::vector<double>{0, 0, 2, 2}));
}

// Triangle (0,0) (3,0) (0,3) in 4x4, vertices x5: (0,0) (15,0) (0,15). Top edge: crossings at
// u = 3, 8, 13 -> (0,0) (1,0) (2,0). Hypotenuse: dx = dy = 15 and xs > xe, so it is walked from
// (0,15) with slope -1, emitted in reverse: u = 15..0, v = 15 - u. Crossings (u decreasing, xd =
// u) at u = 12, 7, 2 with y from min(v) = v[j-1] = 2, 7, 12 -> ceil((v+.5)/5-.5) = 0, 1, 2:
// (2,0) (1,1) (0,2). Left edge: u constant. Positions 0 4 8 8 5 2 and 16 -> sorted 0 2 4 5 8 8
// 16 -> differences 0 2 2 1 3 0 8; the zero run folds 8 into the run before it: 0 2 2 1 11.
// Column 2 is crossed twice at y 0 and stays empty. String: 0 2 2, then 1-2 = -1 -> 31+48 'O',
// then 11-2 = 9 -> '9'.
TEST(Rle, PolygonTriangleByHand) {
    Rle r = rle_from_polygon({0, 0, 3, 0, 0, 3}, 4, 4);
    EXPECT_EQ(r.counts, (std::vector<uint32_t>{0, 2, 2, 1, 11}));
    EXPECT_EQ(r.area(), 3);
    EXPECT_EQ(rle_to_string(r), "022O9");
    // Several polygons are united (annToRLE): the square and the triangle overlap in 3 pixels.
    Rle u = rle_from_polygons({{0, 0, 2, 0, 2, 2, 0, 2}, {0, 0, 3, 0, 0, 3}}, 4, 4);
    EXPECT_EQ(u.area(), 4);
    EXPECT_THROW(rle_from_polygon({0, 0, 1}, 4, 4), Error);
}
