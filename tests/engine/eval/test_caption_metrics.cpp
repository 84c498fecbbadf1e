// coco-caption metrics on small corpora worked by hand.
#include "eval/caption_metrics.h"
#include "eval/refseg_metrics.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace glamm;
using namespace glamm::eval;

TEST(PtbTokenize, LowercasesSplitsCliticsDropsPunctuation) {
    EXPECT_EQ(ptb_tokenize("A man's dog, running."), "a man 's dog running");
    EXPECT_EQ(ptb_tokenize("Don't stop (now)!"), "do n't stop now");
    EXPECT_EQ(ptb_tokenize("A 3.5 m-long black-and-white \"cat\" -- 1,000 times..."),
              "a 3.5 m-long black-and-white cat 1,000 times");
    EXPECT_EQ(ptb_tokenize("  50% off; $5 "), "50 % off $ 5");
}

// Candidate "a b c d", reference "a b c e" (lengths 4 and 4, no brevity penalty).
// Matches: 1-grams 3/4, 2-grams (ab, bc) 2/3, 3-grams (abc) 1/2, 4-grams 0/1.
// BLEU-1 = 3/4; BLEU-2 = (3/4 * 2/3)^(1/2) = sqrt(.5); BLEU-3 = (.25)^(1/3);
// BLEU-4 = (.25 * 1e-15)^(1/4) (coco-caption's tiny = 1e-15 keeps a zero count positive).
TEST(CaptionMetrics, BleuByHand) {
    CaptionCorpus c{{"a b c d"}, {{"a b c e"}}};
    const auto b = bleu(c);
    EXPECT_NEAR(b[0], 0.75, 1e-9);
    EXPECT_NEAR(b[1], std::sqrt(0.5), 1e-9);
    EXPECT_NEAR(b[2], std::cbrt(0.25), 1e-9);
    EXPECT_NEAR(b[3], std::pow(0.25 * 1e-15, 0.25), 1e-9);
}

// Candidate "a b" (2 words), references of 4 and 3 words: "closest" picks 3 (|3-2| < |4-2|).
// All n-grams present match (1-grams 2/2, 2-gram 1/1); BP = exp(1 - 3/2) = exp(-.5).
TEST(CaptionMetrics, BleuBrevityPenaltyClosestReference) {
    CaptionCorpus c{{"a b"}, {{"a b c d", "a b c"}}};
    const auto b = bleu(c);
    EXPECT_NEAR(b[0], std::exp(-0.5), 1e-9);
    EXPECT_NEAR(b[1], std::exp(-0.5), 1e-9);
}

// Candidate "a b c d", reference "a c d e f": LCS "a c d" = 3; P = 3/4, R = 3/5;
// F = (1 + 1.44) P R / (R + 1.44 P) = 2.44 * .45 / 1.68.
// Two references: "a b" (P = 2/4, R = 1) and "a b c d e f g h" (P = 1, R = 1/2): coco-caption
// takes the best P and the best R separately (1 and 1) -> F = 1.
TEST(CaptionMetrics, RougeLByHand) {
    EXPECT_NEAR(rouge_l({{"a b c d"}, {{"a c d e f"}}}), 2.44 * 0.45 / 1.68, 1e-12);
    EXPECT_NEAR(rouge_l({{"a b c d"}, {{"a b", "a b c d e f g h"}}}), 1.0, 1e-12);
    // Mean over images: the two above.
    EXPECT_NEAR(rouge_l({{"a b c d", "a b c d"}, {{"a c d e f"}, {"a b", "a b c d e f g h"}}}),
                (2.44 * 0.45 / 1.68 + 1.0) / 2, 1e-12);
}

// Two images, so idf uses log(2) (= L) for n-grams seen in one image's references.
// Image 1: candidate "a b", reference "a b". Every n-gram weight is 1 * (L - log 1) = L.
// n=1: sum min(h, r) r = 2L², norms sqrt(2)L each -> 1; n=2: L² / (L L) = 1; n=3,4: empty -> 0.
// Equal bigram counts -> no length penalty. Score = 10 * (1 + 1 + 0 + 0) / 4 = 5.
// Image 2: candidate "c d" vs reference "e f": nothing shared -> 0. CIDEr-D = 2.5.
TEST(CaptionMetrics, CiderDByHand) {
    std::vector<double> per;
    EXPECT_NEAR(cider_d({{"a b", "c d"}, {{"a b"}, {"e f"}}}, &per), 2.5, 1e-12);
    ASSERT_EQ(per.size(), 2u);
    EXPECT_NEAR(per[0], 5.0, 1e-12);
    EXPECT_EQ(per[1], 0.0);
}

// Image 1: candidate "a b c" vs reference "a b" (image 2 as above keeps idf at log 2).
// n=1: candidate a, b, c (c unseen: df 0 -> log(max(1, 0)) = 0, weight L too); dot = 2L²,
// norms sqrt(3)L and sqrt(2)L -> 2/sqrt(6). n=2: candidate "a b", "b c" vs "a b": L² /
// (sqrt(2)L L) = 1/sqrt(2). n=3: the reference has no 3-gram -> 0. Lengths are bigram counts
// 2 and 1: penalty e^(-1/72). Score = 10/4 (2/sqrt6 + 1/sqrt2) e^(-1/72).
TEST(CaptionMetrics, CiderDClipsAndPenalisesLength) {
    std::vector<double> per;
    cider_d({{"a b c", "c d"}, {{"a b"}, {"e f"}}}, &per);
    EXPECT_NEAR(per[0], 2.5 * (2 / std::sqrt(6.0) + 1 / std::sqrt(2.0)) * std::exp(-1.0 / 72),
                1e-12);
    // Clipping: repeating a matched word does not raise its contribution above the reference's.
    // Candidate "a a" vs reference "a b" (idf L): n=1 dot = min(2L, L) L = L², norms 2L and
    // sqrt(2)L -> 1/(2 sqrt2); n=2 "a a" vs "a b" -> 0; bigram counts 1 and 1. 10/4 / (2 sqrt2).
    cider_d({{"a a", "c d"}, {{"a b"}, {"e f"}}}, &per);
    EXPECT_NEAR(per[0], 2.5 / (2 * std::sqrt(2.0)), 1e-12);
}

// cIoU = ΣI/ΣU, gIoU = mean IoU with an empty union counting 1.
// Pairs: identical 4-pixel masks (I 4, U 4, IoU 1); 2 pixels inside a 4-pixel GT (I 2, U 4, .5);
// two empty masks (I 0, U 0, IoU 1). cIoU = 6/8; gIoU = 2.5/3.
TEST(RefsegMetrics, CiouAndGiouByHand) {
    auto mask = [](int a, int b) {
        std::vector<uint8_t> m(8, 0);
        for (int i = a; i < b; ++i) m[size_t(i)] = 1;
        return rle_encode(m.data(), 2, 4);
    };
    RefsegAccumulator acc;
    acc.add(mask(0, 4), mask(0, 4));
    acc.add(mask(0, 2), mask(0, 4));
    acc.add(mask(0, 0), mask(0, 0));
    const auto s = acc.finish();
    EXPECT_EQ(s.pairs, 3);
    EXPECT_EQ(s.intersection, 6);
    EXPECT_EQ(s.union_, 8);
    EXPECT_DOUBLE_EQ(s.ciou, 0.75);
    EXPECT_NEAR(s.giou, 2.5 / 3, 1e-15);
}
