// Markup parsing and the reference's text clean-up, on hand-worked examples.
#include "text/markup.h"

#include <gtest/gtest.h>

using glamm::parse_markup;

namespace {
// Every phrase's range must cut its text out of the clean text.
void expect_ranges_consistent(const glamm::ParsedAnswer& a) {
    for (const auto& p : a.phrases) {
        ASSERT_LE(p.begin, p.end);
        ASSERT_LE(p.end, a.text.size());
        EXPECT_EQ(a.text.substr(p.begin, p.end - p.begin), p.text);
    }
}
} // namespace

TEST(Markup, WellFormedGcgAnswer) {
    const auto a = parse_markup("<p> A man </p> [SEG] riding <p> a horse </p> [SEG] .");
    EXPECT_EQ(a.text, "A man riding a horse .");
    ASSERT_EQ(a.phrases.size(), 2u);
    EXPECT_EQ(a.phrases[0].text, "A man");
    EXPECT_EQ(a.phrases[0].begin, 0u);
    EXPECT_EQ(a.phrases[0].end, 5u);
    EXPECT_EQ(a.phrases[0].mask_index, 0);
    EXPECT_EQ(a.phrases[1].text, "a horse");
    EXPECT_EQ(a.phrases[1].begin, 13u);
    EXPECT_EQ(a.phrases[1].end, 20u);
    EXPECT_EQ(a.phrases[1].mask_index, 1);
    EXPECT_EQ(a.num_masks, 2);
    EXPECT_TRUE(a.unlabelled_masks.empty());
    expect_ranges_consistent(a);
}

TEST(Markup, UnicodeOffsetsAreBytes) {
    const auto a = parse_markup("Un <p>café</p>[SEG] ici</s>");
    EXPECT_EQ(a.text, "Un café ici");
    ASSERT_EQ(a.phrases.size(), 1u);
    EXPECT_EQ(a.phrases[0].begin, 3u);
    EXPECT_EQ(a.phrases[0].end, 8u); // "café" is 5 bytes
    EXPECT_EQ(a.phrases[0].mask_index, 0);
    expect_ranges_consistent(a);
}

TEST(Markup, SegWithoutPhrase) {
    const auto a = parse_markup("Sure, it is [SEG] .");
    EXPECT_EQ(a.text, "Sure, it is .");
    EXPECT_TRUE(a.phrases.empty());
    EXPECT_EQ(a.num_masks, 1);
    EXPECT_EQ(a.unlabelled_masks, std::vector<int>{0});
}

TEST(Markup, PhraseWithoutSeg) {
    const auto a = parse_markup("<p> a cat </p> and <p> a dog </p> [SEG]");
    EXPECT_EQ(a.text, "a cat and a dog");
    ASSERT_EQ(a.phrases.size(), 2u);
    EXPECT_EQ(a.phrases[0].mask_index, -1); // the [SEG] belongs to the nearer phrase
    EXPECT_EQ(a.phrases[1].mask_index, 0);
    expect_ranges_consistent(a);
}

TEST(Markup, UnbalancedTags) {
    // Stray </p>, nested <p>, unclosed phrase at the end, empty phrase.
    const auto a = parse_markup("x </p> <p> one <p> two </p> [SEG] <p></p> [SEG] <p> three");
    EXPECT_EQ(a.text, "x one two three");
    ASSERT_EQ(a.phrases.size(), 4u);
    EXPECT_EQ(a.phrases[0].text, "one");
    EXPECT_EQ(a.phrases[0].mask_index, -1);
    EXPECT_EQ(a.phrases[1].text, "two");
    EXPECT_EQ(a.phrases[1].mask_index, 0);
    EXPECT_EQ(a.phrases[2].text, "");
    EXPECT_EQ(a.phrases[2].mask_index, 1);
    EXPECT_EQ(a.phrases[3].text, "three");
    EXPECT_EQ(a.phrases[3].mask_index, -1);
    EXPECT_EQ(a.num_masks, 2);
    expect_ranges_consistent(a);
    // A [SEG] inside an open phrase closes it.
    const auto b = parse_markup("<p> a red [SEG] ball");
    ASSERT_EQ(b.phrases.size(), 1u);
    EXPECT_EQ(b.phrases[0].text, "a red");
    EXPECT_EQ(b.phrases[0].mask_index, 0);
    EXPECT_EQ(b.text, "a red ball");
    // Only tags / empty.
    EXPECT_EQ(parse_markup("").text, "");
    EXPECT_EQ(parse_markup("<p></p>[SEG][SEG]").num_masks, 2);
    EXPECT_EQ(parse_markup("<p></p>[SEG][SEG]").unlabelled_masks, std::vector<int>{1});
    EXPECT_EQ(parse_markup("<p").text, "<p");
}

TEST(Markup, CleanGeneratedText) {
    EXPECT_EQ(
        glamm::clean_generated_text("USER: hi ASSISTANT: <p> A   man </p> [SEG]\n rides.</s>"),
        "<p> A  man </p> [SEG] rides.</s>"); // "   " -> "  ": one pass, like str.replace
    EXPECT_EQ(glamm::clean_generated_text("no marker\nhere"), "no markerhere");
    EXPECT_EQ(glamm::clean_generated_text("ASSISTANT: a ASSISTANT: b"), "b");
}

TEST(Markup, GcgCaptionAndPhrases) {
    const std::string t = "<p> A man </p> [SEG] riding <p> a horse </p> [SEG] .</s>";
    EXPECT_EQ(glamm::gcg_caption(t), "A man riding a horse .");
    EXPECT_EQ(glamm::gcg_phrases(t), (std::vector<std::string>{"A man", "a horse"}));
    EXPECT_EQ(glamm::gcg_caption("'quoted <x> text'  "), "quoted text");
    EXPECT_EQ(glamm::gcg_caption("a < b\n> c"), "a < b > c"); // no match across a newline
    // Non-greedy findall: the first <p> runs to the first </p>.
    EXPECT_EQ(glamm::gcg_phrases("<p> a <p> b </p> c </p>"), (std::vector<std::string>{"a <p> b"}));
}
