// GCG mIoU and mask recall (eval/gcg/evaluate.py semantics), worked by hand.
#include "core/error.h"
#include "eval/gcg_metrics.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace glamm;
using namespace glamm::eval;

namespace {
// A 1x10 mask covering [a, b).
Rle span(int a, int b) {
    std::vector<uint8_t> m(10, 0);
    for (int i = a; i < b; ++i) m[size_t(i)] = 1;
    return rle_encode(m.data(), 1, 10);
}
double exact(const std::string& a, const std::string& b) {
    return a == b ? 1.0 : 0.0;
}
} // namespace

// pred A = [0,4) vs GT [0,4): IoU 1; pred B = [5,9) vs GT [6,10): I = 3 (6,7,8), U = 5 -> .6;
// cross pairs 0. Greedy: 1.0, then .6 -> mean .8. An extra disjoint prediction is unpaired and
// not penalised.
TEST(GcgMetrics, MiouGreedyPairs) {
    EXPECT_DOUBLE_EQ(image_miou({span(0, 4), span(5, 9)}, {span(0, 4), span(6, 10)}), 0.8);
    EXPECT_DOUBLE_EQ(image_miou({span(5, 9), span(0, 4), span(4, 5)}, {span(0, 4), span(6, 10)}),
                     0.8);
    // Greedy, not optimal: P1=[0,6) G1=[0,5) IoU 5/6, P1-G2=[3,9) IoU 3/9, P2=[3,8)-G1 2/8,
    // P2-G2 5/6 -> ties at 5/6: the first in row-major order (P1,G1), then (P2,G2) 5/6.
    EXPECT_DOUBLE_EQ(image_miou({span(0, 6), span(3, 8)}, {span(0, 5), span(3, 9)}), 5.0 / 6.0);
    // No overlap at all, or no prediction: 0.
    EXPECT_EQ(image_miou({span(0, 2)}, {span(5, 7)}), 0.0);
    EXPECT_EQ(image_miou({}, {span(5, 7)}), 0.0);
    // Two empty masks give 0/0 = NaN, np.max is then NaN and nothing is paired.
    EXPECT_EQ(image_miou({span(0, 4), span(0, 0)}, {span(0, 4), span(0, 0)}), 0.0);
    EXPECT_TRUE(std::isnan(mask_iou(span(0, 0), span(0, 0))));
}

// GT [g1 "a dog", g2 "a cat"], predictions [p1 "a bird" = g1's mask, p2 "a cat" ~ g2 (IoU .6)].
// The max-IoU pair (g1, p1) has IoU 1 but similarity 0 -> stop: 0 matches, although (g2, p2)
// would pass. With p1 renamed "a dog", both count: 2.
TEST(GcgMetrics, RecallStopsAtFirstFailingPair) {
    const std::vector<Rle> gt = {span(0, 4), span(6, 10)}, pred = {span(0, 4), span(5, 9)};
    EXPECT_EQ(image_recall_matches(gt, {"a dog", "a cat"}, pred, {"a bird", "a cat"}, exact), 0);
    EXPECT_EQ(image_recall_matches(gt, {"a dog", "a cat"}, pred, {"a dog", "a cat"}, exact), 2);
    // IoU below .5 stops as well: after (g1, p1), the best left is p2 = [8,10) vs g2 = [4,10),
    // IoU 2/6 < .5 -> 1 match.
    EXPECT_EQ(image_recall_matches({span(0, 4), span(4, 10)}, {"a dog", "a cat"},
                                   {span(0, 4), span(8, 10)}, {"a dog", "a cat"}, exact),
              1);
}

// More masks than phrases: the reference indexes text_sims out of range, raises, and the image
// counts 0 matches (the caller catches).
TEST(GcgMetrics, RecallThrowsWhenPhrasesAreMissing) {
    EXPECT_THROW(image_recall_matches({span(0, 4)}, {}, {span(0, 4)}, {"x"}, exact), Error);
    // ... but only when that pair's IoU passes (`or` short-circuits): GT [g1 "a dog", g2 (no
    // phrase)], predictions [p1 "a dog" = g1, p2 "x"]; after (g1, p1) the best pair left is
    // (g2, p2) at IoU 2/6 < .5: the loop stops with 1 match before reading g2's missing phrase.
    EXPECT_EQ(image_recall_matches({span(0, 4), span(4, 10)}, {"a dog"}, {span(0, 4), span(8, 10)},
                                   {"a dog", "x"}, exact),
              1);
}

// Bag-of-words cosine after PTB tokenisation: "a dog" vs "the dog": dot 1, norms sqrt2 sqrt2
// -> .5; case and punctuation do not matter; no word -> 0.
TEST(GcgMetrics, LexicalSimilarity) {
    EXPECT_DOUBLE_EQ(lexical_similarity("a dog", "the dog"), 0.5);
    EXPECT_DOUBLE_EQ(lexical_similarity("A Dog.", "a dog"), 1.0);
    // "dog dog" = (2) vs "dog cat" = (1, 1): 2 / (2 * sqrt 2).
    EXPECT_DOUBLE_EQ(lexical_similarity("dog dog", "dog cat"), 2.0 / (2.0 * std::sqrt(2.0)));
    EXPECT_EQ(lexical_similarity("...", "dog"), 0.0);
}
