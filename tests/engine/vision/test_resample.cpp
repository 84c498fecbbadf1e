// resize_pillow against Pillow itself: the fixtures of tests/data/resample (written by
// tests/data/make_resample_cases.py with Pillow 9.4) must match byte for byte; plus hand-worked
// cases and argument checks. (Speed is measured by benchmarks, not by tests.)
#include "core/error.h"
#include "io/image_file.h"
#include "support/test_support.h"
#include "vision/resample.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace glamm {
namespace {

Image make_image(int64_t width, int64_t height, std::vector<uint8_t> rgb) {
    Image image;
    image.width  = width;
    image.height = height;
    image.rgb    = std::move(rgb);
    return image;
}

TEST(Resample, MatchesPillowOnEveryFixture) {
    const std::string dir = test::data_path("resample/");
    std::ifstream list(dir + "cases.txt");
    ASSERT_TRUE(list) << "missing " << dir << "cases.txt (run tests/data/make_resample_cases.py)";
    std::string line;
    int cases = 0;
    while (std::getline(list, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream fields(line);
        std::string input, filter_name, expected_file;
        int64_t width = 0, height = 0;
        ASSERT_TRUE(fields >> input >> width >> height >> filter_name >> expected_file) << line;
        ASSERT_TRUE(filter_name == "bilinear" || filter_name == "bicubic") << line;
        const ResampleFilter filter =
            filter_name == "bicubic" ? ResampleFilter::Bicubic : ResampleFilter::Bilinear;

        const Image src      = load_image(dir + input);
        const Image expected = load_image(dir + expected_file);
        const Image got      = resize_pillow(src, width, height, filter);
        ASSERT_EQ(got.width, expected.width) << line;
        ASSERT_EQ(got.height, expected.height) << line;
        ASSERT_EQ(got.rgb.size(), expected.rgb.size()) << line;
        int64_t mismatches = 0, off_by_more = 0;
        for (size_t i = 0; i < got.rgb.size(); ++i) {
            const int d = std::abs(int(got.rgb[i]) - int(expected.rgb[i]));
            mismatches += d != 0;
            off_by_more += d > 1;
        }
        std::cout << "[resample] " << input << " (" << src.width << "x" << src.height << ") -> "
                  << width << "x" << height << " " << filter_name << ": " << mismatches << " of "
                  << got.rgb.size() << " bytes differ (" << off_by_more << " by more than 1)\n";
        EXPECT_EQ(mismatches, 0) << line;
        ++cases;
    }
    EXPECT_GE(cases, 20);
}

// 2x1 -> 1x1 bilinear: the filter widens to support 2, both pixels weigh 1/2 (2^21 in fixed
// point), the accumulator starts at 2^21, so the result is floor((a + b + 1) / 2).
TEST(Resample, HandWorkedBilinearAverageRoundsHalfUp) {
    const auto one = [](uint8_t a, uint8_t b) {
        const Image src = make_image(2, 1, {a, a, a, b, b, b});
        return resize_pillow(src, 1, 1, ResampleFilter::Bilinear).rgb;
    };
    EXPECT_EQ(one(0, 255), std::vector<uint8_t>(3, 128));
    EXPECT_EQ(one(0, 254), std::vector<uint8_t>(3, 127));
    EXPECT_EQ(one(10, 13), std::vector<uint8_t>(3, 12));
    // The same along y (vertical pass only).
    const Image column = make_image(1, 2, {0, 100, 255, 255, 101, 0});
    EXPECT_EQ(resize_pillow(column, 1, 1, ResampleFilter::Bilinear).rgb,
              (std::vector<uint8_t>{128, 101, 128}));
}

// A constant image stays constant whatever the filter and scale (weights are normalised).
TEST(Resample, ConstantImageStaysConstant) {
    const Image flat = make_image(13, 7, std::vector<uint8_t>(13 * 7 * 3, 77));
    for (auto filter : {ResampleFilter::Bilinear, ResampleFilter::Bicubic})
        for (auto [w, h] : {std::pair<int64_t, int64_t>{5, 3}, {40, 21}, {13, 30}, {1, 1}}) {
            const Image out = resize_pillow(flat, w, h, filter);
            ASSERT_EQ(out.rgb.size(), size_t(w * h * 3));
            for (uint8_t v : out.rgb) ASSERT_EQ(v, 77);
        }
}

// Bicubic overshoots at a hard edge: the output must be clipped to 0..255, not wrap around.
TEST(Resample, BicubicOvershootIsClipped) {
    std::vector<uint8_t> rgb;
    for (int x = 0; x < 8; ++x)
        for (int c = 0; c < 3; ++c) rgb.push_back(x < 4 ? (c == 0 ? 0 : 255) : (c == 0 ? 255 : 0));
    const Image out = resize_pillow(make_image(8, 1, rgb), 29, 1, ResampleFilter::Bicubic);
    // Far from the edge the plateaus are reproduced exactly; next to it the cubic undershoots 0
    // and overshoots 255, which must come out as 0 and 255, never as wrapped-around values.
    EXPECT_EQ(out.rgb[0], 0);
    EXPECT_EQ(out.rgb[1], 255);
    EXPECT_EQ(out.rgb[28 * 3], 255);
    EXPECT_EQ(out.rgb[28 * 3 + 1], 0);
    for (int x = 1; x < 29; ++x) {
        EXPECT_GE(out.rgb[x * 3], out.rgb[(x - 1) * 3])
            << "red must not wrap near the edge, x=" << x;
        EXPECT_LE(out.rgb[x * 3 + 1], out.rgb[(x - 1) * 3 + 1]) << "x=" << x;
    }
}

TEST(Resample, SameSizeIsACopy) {
    const Image src =
        make_image(3, 2, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18});
    EXPECT_EQ(resize_pillow(src, 3, 2, ResampleFilter::Bicubic).rgb, src.rgb);
}

TEST(Resample, RejectsBadArguments) {
    const Image src = make_image(2, 2, std::vector<uint8_t>(12, 0));
    EXPECT_THROW(resize_pillow(src, 0, 5, ResampleFilter::Bilinear), Error);
    EXPECT_THROW(resize_pillow(src, 5, -1, ResampleFilter::Bilinear), Error);
    EXPECT_THROW(resize_pillow(Image{}, 5, 5, ResampleFilter::Bilinear), Error);
    EXPECT_THROW(resize_pillow(make_image(2, 2, std::vector<uint8_t>(11, 0)), 5, 5,
                               ResampleFilter::Bilinear),
                 Error);
}

} // namespace
} // namespace glamm
