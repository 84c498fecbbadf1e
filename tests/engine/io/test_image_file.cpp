// Image files: what the reference reads (cv2.imread + BGR->RGB) and a clear error for everything
// that is not a readable image.
#include "core/atomic_file.h"
#include "core/error.h"
#include "io/image_file.h"
#include "support/test_support.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace glamm;

namespace {
std::string error_of(const std::string& path) {
    return test::error_of([&] { load_image(path); });
}
} // namespace

TEST(ImageFile, ReadsRgbAtOriginalSize) {
    const Image image = load_image(test::tiny_case_path("gcg.png"));
    EXPECT_EQ(image.width, 640);
    EXPECT_EQ(image.height, 480);
    // The red circle's centre (about x 190, y 190 in the picture) is red in RGB order.
    const uint8_t* p = image.pixel(190, 190);
    EXPECT_GT(p[0], 180);
    EXPECT_LT(p[2], 100);
}

TEST(ImageFile, WritesPngThatReadsBack) {
    const std::string path       = test::make_temp_dir("png") + "/x.png";
    const uint8_t rgb[2 * 3 * 3] = {255, 0,  0,  0,  255, 0,  0,  0,  255,
                                    10,  20, 30, 40, 50,  60, 70, 80, 90};
    save_png(path, rgb, 3, 2, 3);
    const Image back = load_image(path);
    ASSERT_EQ(back.width, 3);
    ASSERT_EQ(back.height, 2);
    EXPECT_EQ(std::vector<uint8_t>(rgb, rgb + sizeof rgb), back.rgb);
}

TEST(ImageFile, ExplainsUnreadableFiles) {
    const std::string dir = test::make_temp_dir("img");
    EXPECT_NE(error_of(dir + "/missing.png").find("no such file"), std::string::npos);
    EXPECT_NE(error_of(dir).find("it is a folder"), std::string::npos);
    test::write_bytes(dir + "/noise.png",
                      std::string("\x89PNG\r\n\x1a\n garbage that is no image", 32));
    EXPECT_NE(error_of(dir + "/noise.png").find("cannot decode image"), std::string::npos);
    test::write_bytes(dir + "/empty.jpg", "");
    EXPECT_NE(error_of(dir + "/empty.jpg").find("cannot decode image"), std::string::npos);
    // A truncated PNG (the first kilobyte of a real one).
    const std::string real = read_file(test::tiny_case_path("gcg.png"));
    test::write_bytes(dir + "/cut.png", real.substr(0, 1024));
    const std::string cut = error_of(dir + "/cut.png");
    EXPECT_FALSE(cut.empty()) << "a truncated PNG must not load";
}

// The PPM reader of builds without OpenCV: pixels worked out by hand, a comment in the header,
// PGM grey expanded to RGB, and the same pixels as OpenCV's reading of the same file.
TEST(ImageFile, ReadsBinaryPpmAndPgmWithoutOpenCv) {
    const std::string dir = test::make_temp_dir("ppm");
    const std::string rgb(
        "\x01\x02\x03\xfa\xfb\xfc\x00\x80\xff\x10\x20\x30\x40\x50\x60\x70\x80\x90", 18);
    test::write_bytes(dir + "/a.ppm", "P6\n# made by hand\n3 2\n255\n" + rgb);
    const Image a = read_ppm(dir + "/a.ppm");
    ASSERT_EQ(a.width, 3);
    ASSERT_EQ(a.height, 2);
    EXPECT_EQ(std::string(a.rgb.begin(), a.rgb.end()), rgb);
    EXPECT_EQ(load_image(dir + "/a.ppm").rgb, a.rgb); // OpenCV (or this reader) agrees

    test::write_bytes(dir + "/g.pgm", std::string("P5 2 1 255\n\x07\xf0", 13));
    const Image g = read_ppm(dir + "/g.pgm");
    EXPECT_EQ(g.rgb, (std::vector<uint8_t>{7, 7, 7, 240, 240, 240}));

    test::write_bytes(dir + "/cut.ppm", "P6 3 2 255\n" + rgb.substr(0, 7));
    EXPECT_THROW(read_ppm(dir + "/cut.ppm"), Error);
    test::write_bytes(dir + "/deep.ppm", std::string("P6 1 1 65535\n\x00\x01\x00\x02\x00\x03", 19));
    EXPECT_THROW(read_ppm(dir + "/deep.ppm"), Error);
    test::write_bytes(dir + "/ascii.ppm", "P3 1 1 255\n1 2 3\n");
    EXPECT_THROW(read_ppm(dir + "/ascii.ppm"), Error);
}
