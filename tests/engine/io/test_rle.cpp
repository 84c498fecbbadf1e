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
    Rle a = rle_encode(kMask, 3, 2);
    const uint8_t ones[6] = {1, 1, 1, 1, 1, 1};
    Rle full = rle_encode(ones, 3, 2);
    EXPECT_DOUBLE_EQ(rle_iou(a, full), 3.0 / 6.0);
    EXPECT_DOUBLE_EQ(rle_iou(a, full, /*crowd=*/true), 3.0 / 3.0);
    const uint8_t other[6] = {1, 0, 0, 0, 0, 1}; // disjoint from kMask
    Rle b = rle_encode(other, 3, 2);
    EXPECT_DOUBLE_EQ(rle_iou(a, b), 0.0);
    EXPECT_EQ(rle_decode(rle_merge({a, b}, false)),
              (std::vector<uint8_t>{1, 1, 1, 1, 0, 1}));
    EXPECT_EQ(rle_merge({a, full}, true).counts, a.counts);
}

TEST(Rle, RejectsMalformedStrings) {
    EXPECT_THROW(rle_from_string("11", 3, 3), Error);     // 2 pixels for a 9-pixel mask
    EXPECT_THROW(rle_from_string("1\x7f", 3, 3), Error);  // invalid character
    EXPECT_THROW(rle_from_string("T", 10, 10), Error);    // ends inside a count
}
