// `glamm eval score gcg` end to end on a hand-made GranD-f-style set (tests/data/eval): two
// images, 1x10 masks, one official infer.py prediction file and one result.json folder.
#include "eval/bert.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>

namespace {
std::string eval_command(const std::string& args) {
    return glamm::test::bin_path("glamm") + " eval score " + args;
}
} // namespace

// GT img1: g1 [0,4) "A dog", g2 [6,10) "a cat"; img2: g3 [2,6) "A red car".
// Predictions img1: p1 [0,4) "a dog", p2 [4,9) "the bird"; img2 (result.json): [2,6) "a blue car".
// AP: at IoU .5 every detection is a hit (p2 vs g2: I 3, U 6 = .5) -> AP50 = 1 (to np.spacing).
//   Above .5, p2 misses: order d1 d2 d3 (equal scores, image order) -> tp 1 1 2, fp 0 1 1,
//   rc 1/3 1/3 2/3, pr 1 .5 .667 -> envelope 1 .667 .667: recall points 0..33 -> 1 (34),
//   34..66 -> 2/3 (33) -> 56/101 per threshold; AP = (1 + 9 * 56/101) / 10 = 605/1010.
// mIoU: img1 pairs 1 and .5 -> .75; img2 1 -> mean .875.
// Recall: img1 (g1,p1) IoU 1, "a dog"/"a dog" 1 -> TP; (g2,p2) IoU .5 but "a cat"/"the bird" 0
//   -> stop. img2 IoU 1, "a red car"/"a blue car" 2/3 -> TP. 2 of 3 GT phrases.
// Captions (PTB): "a dog next to a cat" = reference; "a blue car" vs "a red car".
//   n-gram hits 1: 6+2 of 9, 2: 5+0 of 7, 3: 4 of 5, 4: 3 of 3; lengths 9 = 9 (no penalty).
//   ROUGE-L: 1 and LCS 2 of 3 (F = 2/3) -> 5/6.
TEST(CliEval, ScoresHandMadeGcgSet) {
    const std::string data = glamm::test::data_path("eval");
    auto r                 = glamm::test::run_command(
                        eval_command("gcg --gt " + data + "/gcg_gt.json --pred " + data + "/gcg_pred --json"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_NEAR(j.at("AP50").get<double>(), 1.0, 1e-12);
    EXPECT_NEAR(j.at("AP").get<double>(), 605.0 / 1010.0, 1e-12);
    EXPECT_NEAR(j.at("mIoU").get<double>(), 0.875, 1e-15);
    EXPECT_NEAR(j.at("recall").get<double>(), 2.0 / 3.0, 1e-15);
    EXPECT_EQ(j.at("text_similarity"), "lexical");
    EXPECT_NEAR(j.at("BLEU1").get<double>(), 8.0 / 9.0, 1e-9);
    EXPECT_NEAR(j.at("BLEU2").get<double>(), std::sqrt(40.0 / 63.0), 1e-9);
    EXPECT_NEAR(j.at("BLEU3").get<double>(), std::cbrt(32.0 / 63.0), 1e-9);
    EXPECT_NEAR(j.at("BLEU4").get<double>(), std::pow(32.0 / 63.0, 0.25), 1e-9);
    EXPECT_NEAR(j.at("ROUGE_L").get<double>(), 5.0 / 6.0, 1e-12);
    EXPECT_GT(j.at("CIDEr").get<double>(), 0.0);
    EXPECT_TRUE(j.at("METEOR").is_null());
    EXPECT_EQ(j.at("missing_predictions"), 0);

    // The readable table names every metric; a bad task is a usage error (exit 2).
    auto table = glamm::test::run_command(
        eval_command("gcg --gt " + data + "/gcg_gt.json --pred " + data + "/gcg_pred"));
    EXPECT_EQ(table.exit_code, 0) << table.err;
    EXPECT_NE(table.out.find("AP50"), std::string::npos);
    EXPECT_NE(table.out.find("CIDEr"), std::string::npos);
    EXPECT_EQ(glamm::test::run_command(eval_command("nope --gt x --pred y")).exit_code, 2);
}

// The same set with --text-model: recall uses evaluate.py's BERT phrase similarity (the tiny
// random-weight BERT of tests/data/bert-tiny). The greedy walk is the one worked out above: img1
// (g1,p1) "A dog"/"a dog" is a hit (same uncased tokens: similarity 1); then (g2,p2) with IoU .5
// counts iff sim("a cat", "the bird") >= .5, else the image stops; img2 (g3,p3) counts iff
// sim("A red car", "a blue car") >= .5. The similarities come from the engine's BERT (checked
// against its Python reference by golden_bert), so this checks the CLI's wiring and the walk.
TEST(CliEval, TextModelUsesBertSimilarity) {
    const std::string data = glamm::test::data_path("eval");
    const std::string bert = glamm::test::data_path("bert-tiny");
    auto r = glamm::test::run_command(eval_command("gcg --gt " + data + "/gcg_gt.json --pred " +
                                                   data + "/gcg_pred --json --text-model " + bert));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("text_similarity"), "bert (" + bert + ")");

    auto similarity = glamm::eval::BertTextSimilarity::load(bert);
    EXPECT_NEAR(similarity->similarity("A dog", "a dog"), 1.0, 1e-6);
    const double cat_bird = similarity->similarity("a cat", "the bird");
    const double red_blue = similarity->similarity("A red car", "a blue car");
    std::printf("bert-tiny similarities: cat/bird %.4f, red car/blue car %.4f\n", cat_bird,
                red_blue);
    const double expected = (1.0 + (cat_bird >= 0.5) + (red_blue >= 0.5)) / 3.0;
    EXPECT_NEAR(j.at("recall").get<double>(), expected, 1e-15);
    // Masks and captions do not depend on the phrase similarity.
    EXPECT_NEAR(j.at("mIoU").get<double>(), 0.875, 1e-15);
    EXPECT_NEAR(j.at("AP50").get<double>(), 1.0, 1e-12);

    // A folder that is not a BERT model is an error that says what is expected.
    auto bad = glamm::test::run_command(eval_command("gcg --gt " + data + "/gcg_gt.json --pred " +
                                                     data + "/gcg_pred --text-model " + data));
    EXPECT_EQ(bad.exit_code, 1);
    EXPECT_NE(bad.err.find("bert-base-uncased"), std::string::npos) << bad.err;
}
