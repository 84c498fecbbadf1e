// write_result: the files of a result, and nothing left of an earlier, larger result written to
// the same folder (its extra masks, its labelme.json) that would contradict the new result.json.
#include "core/atomic_file.h"
#include "io/image_file.h"
#include "io/result_writer.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

using namespace glamm;
namespace fs = std::filesystem;

namespace {

// A 6 x 4 grey image and an answer with `k` masks, mask i covering column i.
Image grey_image() {
    Image image;
    image.width  = 6;
    image.height = 4;
    image.rgb.assign(6 * 4 * 3, 100);
    return image;
}

GroundedAnswer answer_with_masks(size_t k) {
    GroundedAnswer answer;
    answer.text = answer.raw_text = "shapes";
    for (size_t i = 0; i < k; ++i) {
        Mask m;
        m.height = 4;
        m.width  = 6;
        m.data.assign(24, 0);
        for (int64_t y = 0; y < 4; ++y) m.data[y * 6 + i] = 1;
        answer.masks.push_back(m);
    }
    return answer;
}

} // namespace

TEST(ResultWriter, MaskFileNames) {
    EXPECT_EQ(mask_file_name(0), "mask_000.png");
    EXPECT_EQ(mask_file_name(42), "mask_042.png");
    EXPECT_EQ(mask_file_name(1234), "mask_1234.png");
}

TEST(ResultWriter, ASmallerResultRemovesTheLargerOnesLeftovers) {
    const std::string dir = test::make_temp_dir("result_writer");
    write_result(dir, grey_image(), answer_with_masks(3), "m", "x.png", /*labelme=*/true);
    for (const char* f : {"result.json", "overlay.png", "mask_000.png", "mask_001.png",
                          "mask_002.png", "labelme.json"})
        EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
    // Files this writer does not make stay, whatever they look like.
    for (const char* f : {"mask_7.png", "mask_0005.png", "mask_notes.png", "notes.txt"})
        write_file_atomic(dir + "/" + f, "user's");

    write_result(dir, grey_image(), answer_with_masks(1), "m", "x.png", /*labelme=*/false);
    EXPECT_TRUE(fs::exists(dir + "/mask_000.png"));
    EXPECT_FALSE(fs::exists(dir + "/mask_001.png"));
    EXPECT_FALSE(fs::exists(dir + "/mask_002.png"));
    EXPECT_FALSE(fs::exists(dir + "/labelme.json"));
    for (const char* f : {"mask_7.png", "mask_0005.png", "mask_notes.png", "notes.txt"})
        EXPECT_EQ(read_file(dir + "/" + f), "user's") << f;
    const auto result = nlohmann::json::parse(read_file(dir + "/result.json"));
    EXPECT_EQ(result["masks"].size(), 1u);
    // The mask file is the new answer's: column 0 only.
    const Image mask = load_image(dir + "/mask_000.png");
    EXPECT_EQ(mask.pixel(0, 2)[0], 255);
    EXPECT_EQ(mask.pixel(1, 2)[0], 0);
}
