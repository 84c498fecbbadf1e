// BERT uncased WordPiece tokenization (HF tokenizers BertNormalizer + BertPreTokenizer + WordPiece
// + the [CLS] $A [SEP] template), on UTF-8 decoded to code points.
#include "eval/wordpiece.h"

#include "core/error.h"

#include <algorithm>
#include <fstream>
#include <iterator>

namespace glamm::eval {

namespace {

struct CodeRange {
    char32_t first, last;
};
struct LowercaseRun {
    char32_t first, last;
    int32_t delta, stride;
};
struct StripPair {
    char32_t from, to;
};

#include "eval/wordpiece_tables.inc"

// tokenizers' WordPiece default (max_input_chars_per_word): longer words become [UNK].
constexpr size_t kMaxInputCharsPerWord    = 100;
constexpr const char* kContinuationPrefix = "##";
// The special tokens of bert-base-uncased's tokenizer (added tokens matched in the raw text).
constexpr const char* kSpecialTokens[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
// Where the Latin accent tables start (kLatinStrip1: U+00C0.., kLatinStrip2: U+1E00..).
constexpr char32_t kLatinStrip1First = 0x00C0;
constexpr char32_t kLatinStrip2First = 0x1E00;
// Hangul syllable decomposition (Unicode ch. 3.12): S = SBase + (L * VCount + V) * TCount + T.
constexpr char32_t kHangulSBase = 0xAC00, kHangulLBase = 0x1100, kHangulVBase = 0x1161,
                   kHangulTBase  = 0x11A7;
constexpr char32_t kHangulVCount = 21, kHangulTCount = 28, kHangulSCount = 11172;
constexpr char32_t kReplacementChar = 0xFFFD;

bool in_ranges(char32_t c, const CodeRange* begin, const CodeRange* end) {
    const CodeRange* it =
        std::upper_bound(begin, end, c, [](char32_t v, const CodeRange& r) { return v < r.first; });
    return it != begin && c <= (it - 1)->last;
}
template <size_t N> bool in_ranges(char32_t c, const CodeRange (&table)[N]) {
    return in_ranges(c, table, table + N);
}

// Decodes UTF-8; an invalid or truncated sequence yields U+FFFD per bad byte (clean_text drops it).
std::u32string decode_utf8(const std::string& text) {
    std::u32string out;
    out.reserve(text.size());
    const auto* s  = reinterpret_cast<const unsigned char*>(text.data());
    const size_t n = text.size();
    for (size_t i = 0; i < n;) {
        const unsigned char b = s[i];
        size_t len            = 0;
        char32_t c            = 0;
        if (b < 0x80) {
            len = 1;
            c   = b;
        } else if ((b & 0xE0) == 0xC0) {
            len = 2;
            c   = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3;
            c   = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4;
            c   = b & 0x07;
        }
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; ++k) {
            if ((s[i + k] & 0xC0) != 0x80)
                ok = false;
            else
                c = (c << 6) | (s[i + k] & 0x3F);
        }
        // Overlong forms, surrogates and values past U+10FFFF are invalid too.
        static constexpr char32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
        if (ok && (c < kMinForLength[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)))
            ok = false;
        if (!ok) {
            out.push_back(kReplacementChar);
            ++i;
            continue;
        }
        out.push_back(c);
        i += len;
    }
    return out;
}

void append_utf8(char32_t c, std::string& out) {
    if (c < 0x80) {
        out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (c >> 6)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (c >> 12)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (c >> 18)));
        out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
}

std::string encode_utf8(const std::u32string& text) {
    std::string out;
    for (char32_t c : text) append_utf8(c, out);
    return out;
}

// tokenizers bert.rs is_whitespace: \t \n \r and Rust's char::is_whitespace (White_Space).
bool is_whitespace(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

// bert.rs is_control: "other" characters except \t \n \r. Supplementary-plane format and
// private-use characters are listed by hand; unassigned (Cn) code points are not covered.
bool is_control(char32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    if (c >= 0x10000)
        return c == 0x110BD || c == 0x110CD || (c >= 0x1BCA0 && c <= 0x1BCA3) ||
               (c >= 0x1D173 && c <= 0x1D17A) || c == 0xE0001 || (c >= 0xE0020 && c <= 0xE007F) ||
               (c >= 0xF0000 && c <= 0xFFFFD) || (c >= 0x100000 && c <= 0x10FFFD);
    return in_ranges(c, kControl);
}

// BERT's _is_chinese_char blocks.
bool is_cjk(char32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// BERT's _is_punctuation: the ASCII non-alphanumerics (some are symbols in Unicode) and P*.
bool is_punctuation(char32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return true;
    return c < 0x10000 && in_ranges(c, kPunctuation);
}

bool is_nonspacing_mark(char32_t c) {
    if (c >= 0x10000) return c >= 0xE0100 && c <= 0xE01EF; // variation selectors supplement
    return in_ranges(c, kNonspacingMarks);
}

// NFD of one character followed by dropping Mn, appended to `out` (see bert_normalize's limits).
void append_stripped(char32_t c, std::u32string& out) {
    if (is_nonspacing_mark(c)) return;
    if (c >= kHangulSBase && c < kHangulSBase + kHangulSCount) {
        const char32_t index = c - kHangulSBase;
        out.push_back(kHangulLBase + index / (kHangulVCount * kHangulTCount));
        out.push_back(kHangulVBase + (index % (kHangulVCount * kHangulTCount)) / kHangulTCount);
        if (index % kHangulTCount != 0) out.push_back(kHangulTBase + index % kHangulTCount);
        return;
    }
    auto from_table = [&](const char* table, size_t size, char32_t first) -> bool {
        if (c < first || c >= first + size) return false;
        const char letter = table[c - first];
        if (letter == '.') return false;
        if (letter != '*') {
            out.push_back(static_cast<char32_t>(letter));
            return true;
        }
        return false; // a non-ASCII base: kStripPairs has it
    };
    if (from_table(kLatinStrip1, sizeof(kLatinStrip1) - 1, kLatinStrip1First)) return;
    if (from_table(kLatinStrip2, sizeof(kLatinStrip2) - 1, kLatinStrip2First)) return;
    for (const StripPair& pair : kStripPairs) {
        if (pair.from == c) {
            out.push_back(pair.to);
            return;
        }
    }
    out.push_back(c);
}

char32_t to_lower(char32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
    if (c >= 0x10000) return c;
    const auto* end = std::end(kLowercase);
    const auto* it =
        std::upper_bound(std::begin(kLowercase), end, c,
                         [](char32_t v, const LowercaseRun& r) { return v < r.first; });
    if (it == std::begin(kLowercase)) return c;
    const LowercaseRun& run = *(it - 1);
    if (c > run.last || (c - run.first) % static_cast<char32_t>(run.stride) != 0) return c;
    return static_cast<char32_t>(static_cast<int32_t>(c) + run.delta);
}

} // namespace

std::string bert_normalize(const std::string& text) {
    // ref: tokenizers/src/normalizers/bert.rs BertNormalizer::normalize (clean, CJK, accents,
    // lower)
    std::u32string cleaned;
    for (char32_t c : decode_utf8(text)) {
        if (c == 0 || c == kReplacementChar || is_control(c)) continue;
        if (is_whitespace(c)) {
            cleaned.push_back(' ');
        } else if (is_cjk(c)) {
            cleaned.push_back(' ');
            cleaned.push_back(c);
            cleaned.push_back(' ');
        } else {
            cleaned.push_back(c);
        }
    }
    std::u32string stripped;
    for (char32_t c : cleaned) append_stripped(c, stripped);
    for (char32_t& c : stripped) c = to_lower(c);
    return encode_utf8(stripped);
}

std::vector<std::string> bert_pre_tokenize(const std::string& normalized) {
    // ref: tokenizers/src/pre_tokenizers/bert.rs (split on whitespace, isolate punctuation)
    std::vector<std::string> words;
    std::string current;
    auto flush = [&] {
        if (!current.empty()) words.push_back(std::move(current));
        current.clear();
    };
    for (char32_t c : decode_utf8(normalized)) {
        if (is_whitespace(c)) {
            flush();
        } else if (is_punctuation(c)) {
            flush();
            append_utf8(c, current);
            flush();
        } else {
            append_utf8(c, current);
        }
    }
    flush();
    return words;
}

WordpieceTokenizer WordpieceTokenizer::from_pieces(const std::vector<std::string>& pieces,
                                                   const std::string& where) {
    if (pieces.empty()) fail(where, ": the vocabulary is empty");
    WordpieceTokenizer t;
    t.pieces_ = pieces;
    for (size_t i = 0; i < pieces.size(); ++i) t.ids_[pieces[i]] = static_cast<int64_t>(i);
    t.unk_id_ = t.token_id("[UNK]");
    t.cls_id_ = t.token_id("[CLS]");
    t.sep_id_ = t.token_id("[SEP]");
    if (t.unk_id_ < 0 || t.cls_id_ < 0 || t.sep_id_ < 0)
        fail(where, ": the vocabulary lacks [UNK], [CLS] or [SEP] (not a BERT vocab.txt?)");
    for (const char* special : kSpecialTokens)
        if (t.token_id(special) >= 0) t.special_.push_back(special);
    std::stable_sort(
        t.special_.begin(), t.special_.end(),
        [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    return t;
}

WordpieceTokenizer WordpieceTokenizer::load(const std::string& vocab_path) {
    std::ifstream in(vocab_path, std::ios::binary);
    if (!in) fail("cannot open ", vocab_path);
    // ref: transformers models/bert/tokenization_bert.py load_vocab (line i -> id i)
    std::vector<std::string> pieces;
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        pieces.push_back(line);
    }
    return from_pieces(pieces, vocab_path);
}

int64_t WordpieceTokenizer::token_id(const std::string& piece) const {
    auto it = ids_.find(piece);
    return it == ids_.end() ? -1 : it->second;
}

void WordpieceTokenizer::split_word(const std::string& word, std::vector<std::string>& out) const {
    // ref: tokenizers/src/models/wordpiece/mod.rs WordPiece::tokenize (greedy longest match)
    const std::u32string chars = decode_utf8(word);
    if (chars.size() > kMaxInputCharsPerWord) {
        out.push_back(pieces_[static_cast<size_t>(unk_id_)]);
        return;
    }
    std::vector<std::string> pieces;
    size_t start = 0;
    while (start < chars.size()) {
        size_t end = chars.size();
        std::string match;
        bool found = false;
        while (start < end) {
            std::string candidate = start > 0 ? kContinuationPrefix : "";
            candidate += encode_utf8(chars.substr(start, end - start));
            if (ids_.count(candidate)) {
                match = std::move(candidate);
                found = true;
                break;
            }
            --end;
        }
        if (!found) {
            out.push_back(pieces_[static_cast<size_t>(unk_id_)]);
            return;
        }
        pieces.push_back(std::move(match));
        start = end;
    }
    out.insert(out.end(), std::make_move_iterator(pieces.begin()),
               std::make_move_iterator(pieces.end()));
}

std::vector<std::string> WordpieceTokenizer::tokenize(const std::string& text) const {
    std::vector<std::string> out;
    auto tokenize_span = [&](const std::string& span) {
        for (const std::string& word : bert_pre_tokenize(bert_normalize(span)))
            split_word(word, out);
    };
    // Special tokens written in the text are matched before normalization (tokenizers'
    // AddedVocabulary), leftmost first, the longest at a position.
    size_t pos = 0, span_start = 0;
    while (pos < text.size()) {
        const std::string* hit = nullptr;
        for (const std::string& special : special_)
            if (text.compare(pos, special.size(), special) == 0) {
                hit = &special;
                break;
            }
        if (!hit) {
            ++pos;
            continue;
        }
        tokenize_span(text.substr(span_start, pos - span_start));
        out.push_back(*hit);
        pos += hit->size();
        span_start = pos;
    }
    tokenize_span(text.substr(span_start));
    return out;
}

std::vector<int64_t> WordpieceTokenizer::encode(const std::string& text, int64_t max_length) const {
    constexpr int64_t kNumSpecial = 2; // [CLS] and [SEP]
    if (max_length < kNumSpecial)
        fail("encode: max_length ", max_length, " leaves no room for [CLS] and [SEP]");
    const std::vector<std::string> pieces = tokenize(text);
    // ref: HF tokenizer(text, max_length=512, truncation=True): truncate the pieces, then add
    // the template [CLS] $A [SEP].
    const size_t kept = std::min(pieces.size(), static_cast<size_t>(max_length - kNumSpecial));
    std::vector<int64_t> ids;
    ids.reserve(kept + kNumSpecial);
    ids.push_back(cls_id_);
    for (size_t i = 0; i < kept; ++i) ids.push_back(token_id(pieces[i]));
    ids.push_back(sep_id_);
    return ids;
}

} // namespace glamm::eval
