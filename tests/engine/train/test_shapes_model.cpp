// The shipped GLaMM-Shapes model (resources/models/glamm-shapes) is the default model, loads
// strictly through the release path, and answers a scene it never saw (seed kHeldOutSeed of the
// generator; training used data seed 1000) with a well-formed grounded caption: phrases from the
// world's vocabulary, each with a mask of the image's size. How good the phrases and masks are is
// measured by scripts/eval-shapes.sh (the model card); the per-phrase IoUs are printed here.
#include "io/rle.h"
#include "session.h"
#include "support/test_support.h"
#include "train/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>

using namespace glamm;

namespace {

constexpr uint64_t kHeldOutSeed = 20261126;
// The recipe's scene sizes (resources/train/glamm-shapes.json "data").
constexpr int64_t kMinSide = 224, kMaxSide = 320;

std::string shipped_model_dir() {
    return std::string(GLAMM_SOURCE_DIR) + "/resources/models/glamm-shapes/glamm";
}

// Scene `index` of the generator at `seed`, at the recipe's sizes.
synth::GeneratedScene held_out_scene(uint64_t seed, int64_t index) {
    synth::SynthOptions options;
    options.seed     = seed;
    options.min_size = kMinSide;
    options.max_size = kMaxSide;
    return synth::generate_scene(options, index);
}

// The shipped model's grounded caption of a scene (printed beside the truth); `quantize` as
// ModelOptions::quantize.
GroundedAnswer grounded_caption(const synth::GeneratedScene& scene,
                                const std::string& quantize = "") {
    ModelOptions model_options;
    model_options.model_dir = shipped_model_dir();
    model_options.quantize  = quantize;
    Session session(Model::load(model_options));
    session.set_image(scene.image);
    Request request;
    request.task                = Task::GroundedCaption;
    const GroundedAnswer answer = session.ask(request);
    std::printf("truth:  %s\nanswer: %s\n", scene.annotation.gcg_caption.c_str(),
                answer.raw_text.c_str());
    return answer;
}

} // namespace

TEST(ShapesModel, IsTheDefaultModel) {
    unsetenv("GLAMM_DEFAULT_MODEL");
    EXPECT_TRUE(std::filesystem::equivalent(default_model_dir(), shipped_model_dir()))
        << default_model_dir();
}

TEST(ShapesModel, AnswersAHeldOutSceneWithWellFormedGroundedPhrases) {
    const synth::GeneratedScene scene = held_out_scene(kHeldOutSeed, 0);
    const synth::SceneAnnotation& ann = scene.annotation;
    const GroundedAnswer answer       = grounded_caption(scene);

    ASSERT_FALSE(answer.phrases.empty());
    EXPECT_FALSE(answer.cancelled);
    for (const Phrase& p : answer.phrases) {
        ASSERT_GE(p.mask, 0) << p.text;
        ASSERT_LT(static_cast<size_t>(p.mask), answer.masks.size()) << p.text;
        const Mask& m = answer.masks[static_cast<size_t>(p.mask)];
        EXPECT_EQ(m.height, scene.image.height);
        EXPECT_EQ(m.width, scene.image.width);
        // Every phrase names a shape of the world (closed vocabulary, singular or plural).
        bool names_shape = false;
        for (int s = 0; s < synth::kShapeCount; ++s) {
            const auto shape = static_cast<synth::Shape>(s);
            names_shape |= p.text.find(synth::shape_name(shape)) != std::string::npos;
        }
        EXPECT_TRUE(names_shape) << p.text;
        // The best IoU of this phrase's mask with any generated phrase's mask, for the log.
        const Rle rle = rle_encode(m.data.data(), m.height, m.width);
        double best   = 0;
        for (const auto& truth : ann.phrases) best = std::max(best, rle_iou(rle, truth.mask));
        std::printf("  %-32s best IoU with a true phrase mask %.3f\n", p.text.c_str(), best);
    }
}

// Issue 7's fixed-scene check: scene 466 of seed 20261127 (`glamm synth --seed 20261127 --count
// 1000 --min-size 224 --max-size 320`, never trained on; "a large striped orange circle is to the
// left of a medium white rectangle"), answered with every generated phrase word for word, in the
// caption's order, and each mask at IoU >= 0.8 with its phrase's true mask. It is one of the 137
// of those 1000 scenes the shipped model (stage 12x) answers whole (scripts/shapes-report.py, in
// any order), 27 of them with two objects; its lowest mask IoU is 0.961 in `glamm eval
// gcg`. A regression guard for the shipped weights, not a measure of quality (that is the model
// card's).
TEST(ShapesModel, AnswersAFixedHeldOutSceneWordForWordWithMasksAtIoU08) {
    constexpr uint64_t kSeed          = 20261127;
    constexpr int64_t kScene          = 466;
    constexpr double kMinimumIoU      = 0.8; // issue 7
    const synth::GeneratedScene scene = held_out_scene(kSeed, kScene);
    const synth::SceneAnnotation& ann = scene.annotation;
    const GroundedAnswer answer       = grounded_caption(scene);

    ASSERT_EQ(answer.phrases.size(), ann.phrases.size());
    for (size_t i = 0; i < ann.phrases.size(); ++i) {
        const Phrase& p = answer.phrases[i];
        EXPECT_EQ(p.text, ann.phrases[i].text);
        ASSERT_GE(p.mask, 0) << p.text;
        ASSERT_LT(static_cast<size_t>(p.mask), answer.masks.size()) << p.text;
        const Mask& m = answer.masks[static_cast<size_t>(p.mask)];
        const double iou =
            rle_iou(rle_encode(m.data.data(), m.height, m.width), ann.phrases[i].mask);
        std::printf("  %-32s IoU %.3f\n", p.text.c_str(), iou);
        EXPECT_GE(iou, kMinimumIoU) << p.text;
    }
}

// With its language model's linears as int8 rows (ModelOptions::quantize), the shipped model
// gives the fixed scene and the first held-out scene the same caption, token for token, and
// masks that differ from the full-precision ones in a few pixels at most (IoU >= 0.99): int8
// rows move each weight by at most half a step of 1/127 of its row's largest magnitude.
TEST(ShapesModel, Int8LanguageModelAnswersAsTheFullPrecisionModel) {
    constexpr double kMinimumIoU = 0.99;
    for (const auto& [seed, index] : {std::pair<uint64_t, int64_t>{20261127, 466},
                                      std::pair<uint64_t, int64_t>{kHeldOutSeed, 0}}) {
        const synth::GeneratedScene scene = held_out_scene(seed, index);
        const GroundedAnswer full         = grounded_caption(scene);
        const GroundedAnswer int8         = grounded_caption(scene, "int8");
        EXPECT_EQ(int8.raw_text, full.raw_text);
        ASSERT_EQ(int8.masks.size(), full.masks.size());
        for (size_t i = 0; i < full.masks.size(); ++i) {
            const Mask& a    = full.masks[i];
            const Mask& b    = int8.masks[i];
            const double iou = rle_iou(rle_encode(a.data.data(), a.height, a.width),
                                       rle_encode(b.data.data(), b.height, b.width));
            std::printf("  mask %zu: IoU %.4f with the full-precision mask\n", i, iou);
            EXPECT_GE(iou, kMinimumIoU);
        }
    }
}
