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
    try {
        load_image(path);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
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
    const std::string path = test::make_temp_dir("png") + "/x.png";
    const uint8_t rgb[2 * 3 * 3] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90};
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
    test::write_bytes(dir + "/noise.png", std::string("\x89PNG\r\n\x1a\n garbage that is no image", 32));
    EXPECT_NE(error_of(dir + "/noise.png").find("cannot decode image"), std::string::npos);
    test::write_bytes(dir + "/empty.jpg", "");
    EXPECT_NE(error_of(dir + "/empty.jpg").find("cannot decode image"), std::string::npos);
    // A truncated PNG (the first kilobyte of a real one).
    const std::string real = read_file(test::tiny_case_path("gcg.png"));
    test::write_bytes(dir + "/cut.png", real.substr(0, 1024));
    const std::string cut = error_of(dir + "/cut.png");
    EXPECT_FALSE(cut.empty()) << "a truncated PNG must not load";
}
