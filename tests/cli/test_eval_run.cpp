// `glamm eval gcg|refseg|regcap --model` end to end on the tiny golden model, with datasets made
// from the golden cases so that the metric values follow by hand.
#include "core/atomic_file.h"
#include "io/rle.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>

using namespace glamm;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json meta() {
    return json::parse(read_file(test::tiny_case_path("meta.json")));
}

std::string eval_cmd(const std::string& task, const std::string& data, const std::string& out,
                     const std::string& extra) {
    return test::bin_path("glamm") + " eval " + task + " --model " + test::tiny_model_dir() +
           " --vision-tower " + test::tiny_clip_dir() + " --data " + data + " --out " + out +
           " --json " + extra;
}

json rle_json(const Rle& r) {
    return {{"size", {r.height, r.width}}, {"counts", rle_to_string(r)}};
}

Rle parse_rle(const json& j) {
    return rle_from_string(j["counts"].get<std::string>(), j["size"][0].get<int64_t>(),
                           j["size"][1].get<int64_t>());
}

} // namespace

// GCG set = the golden gcg case: GT masks = the golden masks, labels = its two phrases, caption
// = the plain caption, gcg_caption = the golden teacher-forced answer. `--teacher-forced` makes
// the predicted phrases the GT phrases and the predicted masks the engine's masks for the golden
// answer (>= 99.5% of pixels equal to the golden ones: tests/cli/golden_gcg.cpp), so
//   AP50 = 1 and AP = 1 (every IoU is far above 0.95), mIoU and recall as the greedy rules give
//   them on the IoU matrix (below), BLEU-4 = 1 (the caption differs only by the " ." that PTB
//   tokenisation drops).
TEST(CliEvalRun, GcgTeacherForcedOnGoldenCase) {
    const json c       = meta()["cases"]["gcg"];
    const fs::path dir = test::make_temp_dir("evalrun-gcg");
    fs::create_directories(dir / "images");
    fs::copy_file(test::tiny_case_path("gcg.png"), dir / "images" / "gcg.png");
    const auto golden      = test::load_tensors(test::tiny_case_path("gcg.safetensors"));
    const at::Tensor masks = golden.at("masks").contiguous(); // [2, H, W] u8
    const int64_t h = masks.size(1), w = masks.size(2);
    std::vector<Rle> gt_rles;
    json anns = json::array();
    for (int64_t k = 0; k < masks.size(0); ++k) {
        gt_rles.push_back(rle_encode(masks[k].contiguous().data_ptr<uint8_t>(), h, w));
        anns.push_back({{"id", k + 1},
                        {"image_id", "gcg"},
                        {"category_id", 1},
                        {"iscrowd", 0},
                        {"segmentation", rle_json(gt_rles.back())}});
    }
    anns.push_back({{"image_id", "gcg"},
                    {"caption", "A red circle next to a blue square."},
                    {"labels", json::array({"A red circle", "a blue square"})},
                    {"gcg_caption", c["answer"]}});
    const json doc = {
        {"images",
         json::array(
             {{{"id", "gcg"}, {"file_name", "images/gcg.png"}, {"height", h}, {"width", w}}})},
        {"annotations", anns}};
    test::write_bytes((dir / "annotations.json").string(), doc.dump());

    const std::string out = (dir / "out").string();
    const auto r = test::run_command(eval_cmd("gcg", dir.string(), out, "--teacher-forced"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("[1/1] gcg"), std::string::npos) << r.err; // progress on stderr
    const json s = json::parse(r.out);

    // The prediction file is the official eval/gcg/infer.py format.
    const json p = json::parse(read_file(out + "/predictions/gcg.json"));
    EXPECT_EQ(p["image_id"], "gcg");
    EXPECT_EQ(p["caption"], "A red circle next to a blue square .");
    EXPECT_EQ(p["phrases"], json::array({"A red circle", "a blue square"}));
    ASSERT_EQ(p["pred_masks"].size(), 2u);
    // The two golden masks of the random-weight SAM are nearly the same region, so every
    // prediction overlaps both GT masks: the expected mIoU and recall follow the reference's
    // greedy rules on the IoU matrix, computed here with the same rle_iou.
    double iou[2][2]; // [pred][gt]
    for (size_t i = 0; i < 2; ++i)
        for (size_t j = 0; j < 2; ++j)
            iou[i][j] = rle_iou(parse_rle(p["pred_masks"][i]), gt_rles[j]);
    std::printf("  IoU pred x gt: [[%.6f %.6f] [%.6f %.6f]]\n", iou[0][0], iou[0][1], iou[1][0],
                iou[1][1]);
    for (auto& row : iou)
        for (double v : row) EXPECT_GT(v, 0.95);
    // mIoU (compute_miou): first maximum of the pred x gt matrix (row-major), then the other pair.
    size_t bi = 0, bj = 0;
    for (size_t i = 0; i < 2; ++i)
        for (size_t j = 0; j < 2; ++j)
            if (iou[i][j] > iou[bi][bj]) bi = i, bj = j;
    const double miou = (iou[bi][bj] + iou[1 - bi][1 - bj]) / 2;
    // recall: first maximum of the gt x pred matrix; GT phrase g against predicted phrase p is 1
    // when g == p and 1/3 otherwise ("a" shared, lexical cosine) -> a cross pair stops at once.
    size_t gi = 0, gj = 0; // [gt][pred]
    for (size_t g = 0; g < 2; ++g)
        for (size_t q = 0; q < 2; ++q)
            if (iou[q][g] > iou[gj][gi]) gi = g, gj = q;
    const int64_t tp = gi == gj ? 2 : 0;
    EXPECT_DOUBLE_EQ(s["AP50"].get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(s["AP"].get<double>(), 1.0);
    EXPECT_EQ(s["recall_true_positives"], tp);
    EXPECT_DOUBLE_EQ(s["recall"].get<double>(), double(tp) / 2);
    EXPECT_NEAR(s["mIoU"].get<double>(), miou, 1e-12);
    EXPECT_NEAR(s["BLEU4"].get<double>(), 1.0, 1e-9);
    EXPECT_NEAR(s["ROUGE_L"].get<double>(), 1.0, 1e-12);
    EXPECT_EQ(s["missing_predictions"], 0);
    EXPECT_TRUE(s["METEOR"].is_null());

    // The saved GT + predictions score the same through `glamm eval score`.
    const auto again =
        test::run_command(test::bin_path("glamm") + " eval score gcg --gt " + out +
                          "/ground_truth.json --pred " + out + "/predictions --json");
    ASSERT_EQ(again.exit_code, 0) << again.err;
    const json s2 = json::parse(again.out);
    EXPECT_EQ(s2["mIoU"], s["mIoU"]);
    EXPECT_EQ(s2["AP50"], s["AP50"]);
}

// Refseg on the gcg image, one expression "the red circle" (teacher-forced "Sure, it is [SEG].")
// answering two GT annotations: an empty mask (id 1) and the full image (id 2). With P the
// predicted mask's area and N = H * W: pair 1 has I = 0, U = P; pair 2 has I = P, U = N, so
// cIoU = P / (P + N) and gIoU = (0 + P / N) / 2 (P > 0).
TEST(CliEvalRun, RefsegTeacherForcedMatchesHandFormula) {
    const fs::path dir = test::make_temp_dir("evalrun-refseg");
    fs::copy_file(test::tiny_case_path("gcg.png"), dir / "gcg.png");
    const int64_t h = 480, w = 640, n = h * w;
    const Rle empty{h, w, {uint32_t(n)}};
    const Rle full{h, w, {0, uint32_t(n)}};
    const json doc = {
        {"images",
         json::array({{{"id", "g"}, {"file_name", "gcg.png"}, {"height", h}, {"width", w}}})},
        {"annotations", json::array({{{"id", 1},
                                      {"image_id", "g"},
                                      {"sentence", "the red circle"},
                                      {"segmentation", rle_json(empty)}},
                                     {{"id", 2},
                                      {"image_id", "g"},
                                      {"sentence", "The red circle"},
                                      {"segmentation", rle_json(full)}}})}};
    test::write_bytes((dir / "refseg.json").string(), doc.dump());
    const std::string out = (dir / "out").string();
    const auto r = test::run_command(eval_cmd("refseg", (dir / "refseg.json").string(), out, ""));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json s    = json::parse(r.out);
    const json pred = json::parse(read_file(out + "/predictions/g.json"));
    ASSERT_EQ(pred.size(), 2u);
    EXPECT_EQ(pred[0]["id"], 1);
    EXPECT_EQ(pred[1]["id"], 2);
    // Same expression once lower-cased (the instruction lower-cases it): the same mask twice.
    EXPECT_EQ(pred[0]["segmentation"], pred[1]["segmentation"]);
    const double p = double(parse_rle(pred[0]["segmentation"]).area());
    std::printf("  predicted mask area %.0f of %lld pixels\n", p, (long long)n);
    ASSERT_GT(p, 0.0);
    EXPECT_NEAR(s["cIoU"].get<double>(), p / (p + double(n)), 1e-12);
    EXPECT_NEAR(s["gIoU"].get<double>(), p / double(n) / 2, 1e-9);
    EXPECT_EQ(s["pairs"], 2);
    EXPECT_EQ(s["missing_predictions"], 0);
}

// Region captioning on the golden region case: one COCO region entry whose bbox [x, y, w, h] is
// the case's box (x1, y1, x2, y2) = (480, 600, 820, 940). With 12 new tokens the caption is the
// golden greedy decoding (meta.json greedy_text: no tags or spaces for the clean-up to touch);
// the GT caption is that same text, so BLEU-1 = ROUGE-L = 1 on whatever PTB makes of it.
TEST(CliEvalRun, RegcapGreedyGivesGoldenText) {
    const json c       = meta()["cases"]["region"];
    const fs::path dir = test::make_temp_dir("evalrun-regcap");
    fs::copy_file(test::tiny_case_path("region.png"), dir / "region.png");
    const std::string greedy = c["greedy_text"];
    const json doc           = {
                  {"images",
                   json::array({{{"id", 1}, {"file_name", "region.png"}, {"height", 1100}, {"width", 900}}})},
                  {"annotations",
                   json::array(
                       {{{"id", 1}, {"image_id", 1}, {"bbox", {480, 600, 340, 340}}, {"caption", greedy}}})}};
    test::write_bytes((dir / "regcap.json").string(), doc.dump());
    const std::string out = (dir / "out").string();
    const auto r = test::run_command(eval_cmd("regcap", dir.string(), out, "--max-new-tokens 12"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json pred = json::parse(read_file(out + "/predictions/1.json"));
    EXPECT_EQ(pred["image_id"], "1");
    EXPECT_EQ(pred["caption"], greedy);
    const json s = json::parse(r.out);
    EXPECT_EQ(s["captions_scored"], 1);
    EXPECT_NEAR(s["BLEU1"].get<double>(), 1.0, 1e-9);
    EXPECT_NEAR(s["ROUGE_L"].get<double>(), 1.0, 1e-12);
    EXPECT_TRUE(fs::exists(out + "/scores.json"));

    // Usage errors: --gt belongs to `eval score`; a bad task.
    EXPECT_EQ(test::run_command(eval_cmd("regcap", dir.string(), out, "--gt x")).exit_code, 2);
    EXPECT_EQ(test::run_command(eval_cmd("nope", dir.string(), out, "")).exit_code, 2);
}

// A region whose COCO box overruns the 900 x 1100 image by half a pixel (as VG / COCO boxes do
// now and then) is clamped to it and counted; one wholly outside is an error naming the region.
TEST(CliEvalRun, RegcapClampsBoxesThatOverrunTheImage) {
    const fs::path dir = test::make_temp_dir("evalrun-regcap-clamp");
    fs::copy_file(test::tiny_case_path("region.png"), dir / "region.png");
    auto write = [&](const json& bbox) {
        const json doc = {
            {"images", json::array({{{"id", 1}, {"file_name", "region.png"}}})},
            {"annotations",
             json::array({{{"id", 1}, {"image_id", 1}, {"bbox", bbox}, {"caption", "a box"}}})}};
        test::write_bytes((dir / "regcap.json").string(), doc.dump());
    };
    const std::string out = (dir / "out").string();
    write(json::array({480, 600, 420.5, 340})); // x2 = 900.5
    auto r = test::run_command(eval_cmd("regcap", dir.string(), out, "--max-new-tokens 4"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["clamped_boxes"], 1);
    EXPECT_NE(r.err.find("1 box(es) overran their image"), std::string::npos) << r.err;

    write(json::array({950, 600, 40, 40})); // x1 beyond the 900-pixel width
    r = test::run_command(eval_cmd("regcap", dir.string(), out, "--max-new-tokens 4"));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("region \"1\""), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("no area inside the 900x1100 image"), std::string::npos) << r.err;
}
