// BERT uncased WordPiece tokenizer: hand-worked answers on a small vocabulary written here.
#include "eval/wordpiece.h"

#include "core/error.h"
#include "support/test_support.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace glamm::eval {
namespace {

using Pieces = std::vector<std::string>;

// ids: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, then the pieces in order.
const Pieces kVocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able",
                       "hello", "world", "!",     ",",     "'",      "t",  "don",   "a",
                       "##a",   "猫",    "cafe",  "naive", "##s",    "[",  "]",     "mask"};

WordpieceTokenizer tokenizer() {
    return WordpieceTokenizer::from_pieces(kVocab, "test vocab");
}

TEST(BertNormalize, LowerCasesAndStripsLatinAccents) {
    // NFD "He\u0301llo" then dropping the Mn U+0301 leaves "Hello"; lower-case -> "hello".
    EXPECT_EQ(bert_normalize("Héllo"), "hello");
    // Latin-1: À->A É->E Î->I Õ->O Ü->U ç->c à->a ñ->n; lower-case.
    EXPECT_EQ(bert_normalize("ÀÉÎÕÜ çà ñ"), "aeiou ca n");
    // Latin Extended-A / Additional: Č->C, ő->o, ł stays (no canonical decomposition),
    // Ệ (U+1EC6) = E + U+0323 + U+0302 -> E; then lower-case.
    EXPECT_EQ(bert_normalize("Čőł Ệ"), "coł e");
    // An already decomposed accent: e + U+0301 -> e.
    EXPECT_EQ(bert_normalize("cafe\u0301"), "cafe");
    // ß and æ have no decomposition and are already lower case; Æ -> æ.
    EXPECT_EQ(bert_normalize("ßÆ"), "ßæ");
    // İ (U+0130) = I + U+0307: accents go first, so I -> i (no stray dot, as tokenizers does).
    EXPECT_EQ(bert_normalize("İ"), "i");
}

TEST(BertNormalize, GreekCyrillicAndHangul) {
    // Ά (U+0386) -> Α (U+0391) -> α (U+03B1); Й (U+0419) -> И (U+0418) -> и (U+0438); Ж -> ж.
    EXPECT_EQ(bert_normalize("Ά Й Ж"), "α и ж");
    // 한 (U+D55C): index 0x295C = 10588 = (18 * 21 + 0) * 28 + 4 -> L 0x1100+18 = U+1112,
    // V 0x1161+0 = U+1161, T 0x11A7+4 = U+11AB.
    EXPECT_EQ(bert_normalize("한"), "\u1112\u1161\u11ab");
    // 가 (U+AC00): L U+1100, V U+1161, no trailing consonant.
    EXPECT_EQ(bert_normalize("가"), "\u1100\u1161");
}

TEST(BertNormalize, CleansControlsAndWhitespace) {
    // \x01 (Cc) and U+200B (Cf) are dropped; \t \n \r, NBSP and U+3000 become spaces.
    EXPECT_EQ(bert_normalize("a\x01"
                             "b\tc\nd\re\u00a0f\u3000g\u200bh"),
              "ab c d e f gh");
    // \x0b and \x0c are control characters first (dropped), not whitespace.
    EXPECT_EQ(bert_normalize("a\x0b"
                             "b\x0c"
                             "c"),
              "abc");
    // U+FFFD and invalid UTF-8 bytes (each becomes U+FFFD) are dropped.
    EXPECT_EQ(bert_normalize("he\xff"
                             "l\xc3"
                             "lo\ufffd"),
              "hello");
    EXPECT_EQ(bert_normalize(std::string("a\0b", 3)), "ab");
}

TEST(BertNormalize, SpacesAroundCjk) {
    // Each CJK ideograph gets a space on both sides; kana (U+3042) is not in BERT's blocks.
    EXPECT_EQ(bert_normalize("猫猫"), " 猫  猫 ");
    EXPECT_EQ(bert_normalize("あ猫"), "あ 猫 ");
}

TEST(BertPreTokenize, SplitsWhitespaceAndPunctuation) {
    EXPECT_EQ(bert_pre_tokenize("hello, world!"), (Pieces{"hello", ",", "world", "!"}));
    EXPECT_EQ(bert_pre_tokenize("don't"), (Pieces{"don", "'", "t"}));
    // ASCII symbols count as punctuation ($ + ^ ` ~ |): BERT's ASCII ranges.
    EXPECT_EQ(bert_pre_tokenize("$5+x^y`z~w|v"),
              (Pieces{"$", "5", "+", "x", "^", "y", "`", "z", "~", "w", "|", "v"}));
    // Unicode P*: em dash (Pd), guillemets (Pi/Pf), ¿ (Po), 。 (Po) split; × (Sm) and ° (So) do
    // not.
    EXPECT_EQ(bert_pre_tokenize("a—b«c»¿d。"),
              (Pieces{"a", "—", "b", "«", "c", "»", "¿", "d", "。"}));
    EXPECT_EQ(bert_pre_tokenize("3×4 5°"), (Pieces{"3×4", "5°"}));
    EXPECT_EQ(bert_pre_tokenize("  "), Pieces{});
}

TEST(WordpieceTokenizer, GreedyLongestMatchFirst) {
    const WordpieceTokenizer t = tokenizer();
    // "unaffable": "unaffable" .. "una" are absent, "un" matches; then "##affable" ..
    // "##affa" absent, "##aff" matches; then "##able".
    EXPECT_EQ(t.tokenize("unaffable"), (Pieces{"un", "##aff", "##able"}));
    // "Héllo, World!" -> "hello , world !"
    EXPECT_EQ(t.tokenize("Héllo, World!"), (Pieces{"hello", ",", "world", "!"}));
    // A word with an unmatched rest is one [UNK] as a whole ("unaffablex": "##x" absent).
    EXPECT_EQ(t.tokenize("unaffablex xyz"), (Pieces{"[UNK]", "[UNK]"}));
    // "Cafés" -> "cafes" -> "cafe" "##s"; "NAÏVE" -> "naive".
    EXPECT_EQ(t.tokenize("Cafés NAÏVE"), (Pieces{"cafe", "##s", "naive"}));
    EXPECT_EQ(t.tokenize("don't 猫猫"), (Pieces{"don", "'", "t", "猫", "猫"}));
    EXPECT_EQ(t.tokenize(""), Pieces{});
}

TEST(WordpieceTokenizer, LongWordsBecomeUnk) {
    const WordpieceTokenizer t = tokenizer();
    // 100 characters: "a" then 99 x "##a" (no longer piece exists); 101: over the limit.
    const Pieces hundred = t.tokenize(std::string(100, 'a'));
    ASSERT_EQ(hundred.size(), 100u);
    EXPECT_EQ(hundred.front(), "a");
    EXPECT_EQ(hundred.back(), "##a");
    EXPECT_EQ(t.tokenize(std::string(101, 'a')), Pieces{"[UNK]"});
    // The limit counts characters, not bytes: 60 x "é" is 120 bytes but 60 characters.
    std::string accented;
    for (int i = 0; i < 60; ++i) accented += "á";
    EXPECT_EQ(t.tokenize(accented).size(), 60u);
}

TEST(WordpieceTokenizer, SpecialTokensInTextStayWhole) {
    const WordpieceTokenizer t = tokenizer();
    EXPECT_EQ(t.tokenize("hello [MASK]world"), (Pieces{"hello", "[MASK]", "world"}));
    // Matching is exact and happens before lower-casing: "[mask]" is three ordinary words.
    EXPECT_EQ(t.tokenize("[mask]"), (Pieces{"[", "mask", "]"}));
    EXPECT_EQ(t.tokenize("[MASK][MASK]"), (Pieces{"[MASK]", "[MASK]"}));
}

TEST(WordpieceTokenizer, EncodeAddsClsSepAndTruncates) {
    const WordpieceTokenizer t = tokenizer();
    // [CLS]=2 hello=8 world=9 !=10 [SEP]=3
    EXPECT_EQ(t.encode("Hello world!"), (std::vector<int64_t>{2, 8, 9, 10, 3}));
    EXPECT_EQ(t.encode(""), (std::vector<int64_t>{2, 3}));
    // max_length counts [CLS] and [SEP]: 4 keeps two pieces.
    EXPECT_EQ(t.encode("hello world hello", 4), (std::vector<int64_t>{2, 8, 9, 3}));
    EXPECT_THROW(t.encode("hello", 1), Error);
    // evaluate.py's max_length=512 by default.
    std::string long_text;
    for (int i = 0; i < 600; ++i) long_text += "hello ";
    const std::vector<int64_t> ids = t.encode(long_text);
    ASSERT_EQ(static_cast<int64_t>(ids.size()), kBertEvalMaxLength);
    EXPECT_EQ(ids.front(), 2);
    EXPECT_EQ(ids[ids.size() - 2], 8);
    EXPECT_EQ(ids.back(), 3);
}

TEST(WordpieceTokenizer, LoadsVocabFiles) {
    const std::string dir = test::make_temp_dir("wordpiece");
    // CRLF line ends are accepted; id = line number; a repeated piece keeps its last line.
    test::write_bytes(dir + "/vocab.txt", "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhi\r\nhi\r\n");
    const WordpieceTokenizer t = WordpieceTokenizer::load(dir + "/vocab.txt");
    EXPECT_EQ(t.vocab_size(), 6);
    EXPECT_EQ(t.token_id("hi"), 5);
    EXPECT_EQ(t.token_id("[MASK]"), -1);
    EXPECT_EQ(t.encode("HI there"), (std::vector<int64_t>{2, 5, 1, 3}));

    test::expect_error([&] { WordpieceTokenizer::load(dir + "/absent.txt"); }, "absent.txt");
    test::write_bytes(dir + "/bad.txt", "[PAD]\n[UNK]\nhello\n");
    test::expect_error([&] { WordpieceTokenizer::load(dir + "/bad.txt"); }, {"bad.txt", "[CLS]"});
}

} // namespace
} // namespace glamm::eval
