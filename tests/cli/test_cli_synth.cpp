// `glamm synth` end to end: the dataset it writes is GCG / refseg ground truth that `glamm eval
// score` reads, and a prediction made from that ground truth scores perfectly.
#include "core/atomic_file.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

namespace {
std::string glamm_cmd(const std::string& args) {
    return glamm::test::bin_path("glamm") + " " + args;
}
} // namespace

TEST(CliSynth, GroundTruthScoredAgainstItselfIsPerfect) {
    const std::string dir = glamm::test::make_temp_dir("cli_synth");
    auto r = glamm::test::run_command(glamm_cmd("synth --seed 7 --count 5 --min-size 128 "
                                                "--max-size 256 --quiet --out " +
                                                dir + "/data"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("wrote 5 images"), std::string::npos) << r.out;

    // Prediction = the ground truth itself, in eval/gcg/infer.py's format.
    const auto gt = nlohmann::json::parse(glamm::read_file(dir + "/data/annotations.json"));
    std::map<std::string, nlohmann::json> pred;
    for (const auto& e : gt.at("annotations")) {
        auto& p       = pred[e.at("image_id").get<std::string>()];
        p["image_id"] = e.at("image_id");
        if (e.contains("segmentation")) p["pred_masks"].push_back(e.at("segmentation"));
        if (e.contains("caption")) {
            p["caption"] = e.at("caption");
            p["phrases"] = e.at("labels");
        }
    }
    nlohmann::json preds = nlohmann::json::array();
    for (const auto& [id, p] : pred) preds.push_back(p);
    ASSERT_EQ(preds.size(), 5u);
    glamm::write_file_atomic(dir + "/pred.json", preds.dump());

    r = glamm::test::run_command(glamm_cmd("eval score gcg --json --gt " + dir +
                                           "/data/annotations.json --pred " + dir + "/pred.json"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto s = nlohmann::json::parse(r.out);
    EXPECT_EQ(s.at("images"), 5);
    EXPECT_EQ(s.at("missing_predictions"), 0);
    EXPECT_DOUBLE_EQ(s.at("mIoU").get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(s.at("AP50").get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(s.at("recall").get<double>(), 1.0);
    EXPECT_NEAR(s.at("BLEU4").get<double>(), 1.0, 1e-6);

    // Referring segmentation: every expression answered with its own mask -> cIoU 1.
    const auto ref          = nlohmann::json::parse(glamm::read_file(dir + "/data/refseg.json"));
    nlohmann::json ref_pred = nlohmann::json::array();
    for (const auto& e : ref.at("annotations"))
        ref_pred.push_back({{"id", e.at("id")}, {"segmentation", e.at("segmentation")}});
    glamm::write_file_atomic(dir + "/ref_pred.json", ref_pred.dump());
    r = glamm::test::run_command(glamm_cmd("eval score refseg --json --gt " + dir +
                                           "/data/refseg.json --pred " + dir + "/ref_pred.json"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto rs = nlohmann::json::parse(r.out);
    EXPECT_DOUBLE_EQ(rs.at("cIoU").get<double>(), 1.0);
    EXPECT_EQ(rs.at("missing_predictions"), 0);

    // Region captions read as COCO caption ground truth.
    const auto reg          = nlohmann::json::parse(glamm::read_file(dir + "/data/regcap.json"));
    nlohmann::json reg_pred = nlohmann::json::array();
    for (const auto& e : reg.at("annotations"))
        reg_pred.push_back({{"image_id", e.at("image_id")}, {"caption", e.at("caption")}});
    glamm::write_file_atomic(dir + "/reg_pred.json", reg_pred.dump());
    r = glamm::test::run_command(glamm_cmd("eval score regcap --json --gt " + dir +
                                           "/data/regcap.json --pred " + dir + "/reg_pred.json"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NEAR(nlohmann::json::parse(r.out).at("BLEU1").get<double>(), 1.0, 1e-6);
}

TEST(CliSynth, SameSeedSameFilesAndBadArguments) {
    const std::string dir = glamm::test::make_temp_dir("cli_synth_det");
    for (const char* sub : {"/a", "/b"}) {
        auto r = glamm::test::run_command(glamm_cmd(
            "synth --seed 3 --count 3 --min-size 96 --max-size 160 --quiet --out " + dir + sub));
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    for (const char* f : {"/annotations.json", "/refseg.json", "/regcap.json", "/manifest.json"})
        EXPECT_EQ(glamm::read_file(dir + "/a" + f), glamm::read_file(dir + "/b" + f)) << f;
    EXPECT_EQ(glamm::test::run_command(glamm_cmd("synth --count 2 --out " + dir + "/c")).exit_code,
              2); // no --seed
    EXPECT_EQ(glamm::test::run_command(glamm_cmd("synth --seed x --out " + dir + "/c")).exit_code,
              2);
    EXPECT_EQ(glamm::test::run_command(
                  glamm_cmd("synth --seed 1 --min-size 300 --max-size 200 --out " + dir + "/c"))
                  .exit_code,
              2);
}

TEST(CliSynth, MinObjectsCrowdsTheScenesAndIsRecorded) {
    // Scene i draws uniform in [min-objects, 6] objects: with --min-objects 6 every scene draws
    // six (occlusion may hide some), by default 3.5 on average; the manifest records the option
    // only when it is set, so that earlier datasets keep their bytes.
    const std::string dir = glamm::test::make_temp_dir("cli_synth_min_objects");
    auto objects          = [&](const std::string& sub, const std::string& extra) {
        const auto r = glamm::test::run_command(glamm_cmd("synth --seed 11 --count 8 --min-size 96 "
                                                                            "--max-size 160 --quiet --out " +
                                                                   dir + sub + " " + extra));
        EXPECT_EQ(r.exit_code, 0) << r.err;
        const auto gt = nlohmann::json::parse(glamm::read_file(dir + sub + "/annotations.json"));
        size_t n      = 0;
        for (const auto& scene : gt.at("scenes")) n += scene.at("objects").size();
        return n;
    };
    const size_t sparse  = objects("/default", "");
    const size_t crowded = objects("/crowded", "--min-objects 6");
    EXPECT_GT(crowded, sparse + 8) << "crowded " << crowded << ", default " << sparse;
    EXPECT_GE(crowded, 8u * 4u); // at most two of six hidden in a scene, on average
    const auto manifest = [&](const std::string& sub) {
        return nlohmann::json::parse(glamm::read_file(dir + sub + "/manifest.json"));
    };
    EXPECT_EQ(manifest("/crowded").at("min_objects"), 6);
    EXPECT_FALSE(manifest("/default").contains("min_objects"));

    for (const char* bad : {"0", "7", "x"}) {
        const auto r = glamm::test::run_command(
            glamm_cmd(std::string("synth --seed 1 --count 1 --min-objects ") + bad + " --out " +
                      dir + "/bad"));
        EXPECT_EQ(r.exit_code, 2) << bad;
        EXPECT_NE(r.err.find("min-objects"), std::string::npos) << bad << ": " << r.err;
    }

    // --min-objects-share: crowded scenes as a share of the usual stream, each scene the
    // crowded or the default dataset's of the same index, recorded only when set; a share
    // outside [0, 1] is a usage error.
    objects("/mixed", "--min-objects 6 --min-objects-share 0.5");
    const auto captions = [&](const std::string& sub) {
        const auto gt = nlohmann::json::parse(glamm::read_file(dir + sub + "/annotations.json"));
        std::vector<std::string> c;
        for (const auto& scene : gt.at("scenes"))
            c.push_back(scene.at("dense_caption").at("gcg").get<std::string>());
        return c;
    };
    const auto as_mixed = captions("/mixed"), as_default = captions("/default"),
               as_crowded = captions("/crowded");
    ASSERT_EQ(as_mixed.size(), as_default.size());
    for (size_t i = 0; i < as_mixed.size(); ++i)
        EXPECT_TRUE(as_mixed[i] == as_default[i] || as_mixed[i] == as_crowded[i]) << i;
    EXPECT_EQ(manifest("/mixed").at("min_objects_share"), 0.5);
    EXPECT_FALSE(manifest("/crowded").contains("min_objects_share"));
    for (const char* bad : {"-0.5", "1.5", "x"}) {
        const auto r = glamm::test::run_command(
            glamm_cmd(std::string("synth --seed 1 --count 1 --min-objects-share ") + bad +
                      " --out " + dir + "/bad"));
        EXPECT_EQ(r.exit_code, 2) << bad;
        EXPECT_NE(r.err.find("min-objects-share"), std::string::npos) << bad << ": " << r.err;
    }
}
