// `glamm gcg --answer` (teacher-forced) on the golden gcg case: result.json names both phrases and
// its COCO RLE masks decode to the golden masks.
#include "core/atomic_file.h"
#include "io/rle.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>

using namespace glamm;

TEST(GoldenGcg, TeacherForcedAnswerGivesGoldenPhrasesAndMasks) {
    const auto meta        = nlohmann::json::parse(read_file(test::tiny_case_path("meta.json")));
    const auto& c          = meta["cases"]["gcg"];
    const std::string out  = test::make_temp_dir("gcg");
    const std::string cmd  = test::bin_path("glamm") + " gcg --model " + test::tiny_model_dir() +
                            " --vision-tower " + test::tiny_clip_dir() + " --image " +
                            test::tiny_case_path("gcg.png") + " --prompt '" +
                            c["instruction"].get<std::string>() + "' --answer '" +
                            c["answer"].get<std::string>() + "' --out " + out;
    const auto r = test::run_command(cmd);
    ASSERT_EQ(r.exit_code, 0) << r.err;

    const auto result = nlohmann::json::parse(read_file(out + "/result.json"));
    ASSERT_EQ(result["phrases"].size(), 2u);
    EXPECT_EQ(result["phrases"][0]["text"], "A red circle");
    EXPECT_EQ(result["phrases"][1]["text"], "a blue square");
    EXPECT_EQ(result["phrases"][0]["mask"], 0);
    EXPECT_EQ(result["phrases"][1]["mask"], 1);
    const std::string text = result["text"];
    for (const auto& p : result["phrases"])
        EXPECT_EQ(text.substr(p["begin"].get<size_t>(), p["end"].get<size_t>() - p["begin"].get<size_t>()),
                  p["text"].get<std::string>());

    const auto golden       = test::load_tensors(test::tiny_case_path("gcg.safetensors"));
    const at::Tensor& masks = golden.at("masks"); // [K, H, W] u8
    ASSERT_EQ(result["masks"].size(), static_cast<size_t>(masks.size(0)));
    for (int64_t k = 0; k < masks.size(0); ++k) {
        const auto& m = result["masks"][k];
        const int64_t h = m["size"][0], w = m["size"][1];
        ASSERT_EQ(h, masks.size(1));
        ASSERT_EQ(w, masks.size(2));
        const Rle rle                 = rle_from_string(m["counts"].get<std::string>(), h, w);
        const std::vector<uint8_t> ours = rle_decode(rle);
        const at::Tensor ref           = masks[k].contiguous();
        int64_t agree = 0;
        for (int64_t i = 0; i < h * w; ++i) agree += ours[i] == (ref.data_ptr<uint8_t>()[i] != 0);
        const double share = double(agree) / double(h * w);
        std::printf("  mask %lld: %.4f%% of pixels agree with the golden mask\n", (long long)k, 100 * share);
        EXPECT_GE(share, 0.995);
    }
    EXPECT_TRUE(std::filesystem::exists(out + "/overlay.png"));
    EXPECT_TRUE(std::filesystem::exists(out + "/mask_000.png"));
    EXPECT_TRUE(std::filesystem::exists(out + "/mask_001.png"));
}
