// The benchmark runs (engine/model/eval_run) stop when asked inside an image encode too: the run
// ends cancelled with the samples done so far, and no error (a stop is not a failure of the
// sample it interrupts).
#include "model/eval_run.h"

#include "support/test_support.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace fs = std::filesystem;
using namespace glamm;

TEST(EvalRun, AStopWhileEncodingTheNextImageEndsTheRunCancelled) {
    ModelOptions options;
    options.model_dir        = test::tiny_model_dir();
    options.vision_tower_dir = test::tiny_clip_dir();
    const auto model         = Model::load(options);

    eval::RefsegDataset data;
    data.samples = {{"g", test::tiny_case_path("gcg.png"), "the red circle", 1},
                    {"r", test::tiny_case_path("region.png"), "the blue square", 2}};
    EvalRunOptions o;
    o.out_dir = test::make_temp_dir("evalrun-stop");
    // Armed once the first sample is done: poll 0 after that is the check before the second
    // sample, poll 1 comes before the first CLIP layer of its image.
    bool armed            = false;
    int polls             = 0;
    o.on_sample           = [&](size_t, size_t, const std::string&, double) { armed = true; };
    o.should_abort        = [&] { return armed && polls++ >= 1; };
    const EvalRunResult r = run_refseg_eval(model, data, o);
    EXPECT_TRUE(r.cancelled);
    EXPECT_EQ(polls, 2);
    ASSERT_EQ(r.predictions.size(), 1u);
    EXPECT_EQ(r.predictions[0].image_id, "1");
    ASSERT_EQ(r.files.size(), 1u);
    EXPECT_EQ(fs::path(r.files[0]).filename(), "g.json");
    EXPECT_FALSE(fs::exists(fs::path(o.out_dir) / "r.json"));
}
