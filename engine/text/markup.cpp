// GLaMM answer markup parsing and the reference's text post-processing.
#include "text/markup.h"

#include "text/conversation.h"
#include "text/tokenizer.h"

#include <array>
#include <string_view>

namespace glamm {

namespace {

bool ascii_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool starts_at(const std::string& s, size_t i, std::string_view what) {
    return s.compare(i, what.size(), what) == 0;
}

// Tags that carry no meaning in an answer's text and are dropped.
constexpr std::array<std::string_view, 8> kDroppedTags = {
    "<s>", "</s>", "<unk>", kImStartToken, kImEndToken, kBboxToken, kPointToken, kImagePlaceholder};

class MarkupParser {
public:
    ParsedAnswer run(const std::string& text) {
        const std::string_view open = kPhraseOpen, close = kPhraseClose, seg = kSegToken;
        for (size_t i = 0; i < text.size();) {
            if (starts_at(text, i, open)) {
                if (active_) close_phrase();
                active_ = true;
                begin_  = std::string::npos;
                i += open.size();
            } else if (starts_at(text, i, close)) {
                if (active_) close_phrase();
                i += close.size();
            } else if (starts_at(text, i, seg)) {
                on_seg();
                i += seg.size();
            } else if (size_t n = dropped_tag(text, i)) {
                i += n;
            } else {
                emit(text[i]);
                ++i;
            }
        }
        if (active_) close_phrase();
        return std::move(result_);
    }

private:
    static size_t dropped_tag(const std::string& text, size_t i) {
        for (auto tag : kDroppedTags)
            if (starts_at(text, i, tag)) return tag.size();
        return 0;
    }

    void emit(char c) {
        std::string& out = result_.text;
        if (ascii_space(c)) {
            pending_space_ = !out.empty();
            return;
        }
        if (pending_space_) out += ' ';
        pending_space_ = false;
        if (active_ && begin_ == std::string::npos) begin_ = out.size();
        out += c;
        if (active_) last_end_ = out.size();
    }

    void close_phrase() {
        GroundedPhrase p;
        if (begin_ == std::string::npos) {
            p.begin = p.end = result_.text.size();
        } else {
            p.begin = begin_;
            p.end   = last_end_;
            p.text  = result_.text.substr(p.begin, p.end - p.begin);
        }
        claimable_.push_back(result_.phrases.size());
        result_.phrases.push_back(std::move(p));
        active_ = false;
    }

    void on_seg() {
        if (active_) close_phrase();
        const int mask = result_.num_masks++;
        if (claimable_.empty()) {
            result_.unlabelled_masks.push_back(mask);
        } else {
            result_.phrases[claimable_.back()].mask_index = mask;
        }
        claimable_.clear();
    }

    ParsedAnswer result_;
    bool active_        = false;
    bool pending_space_ = false;
    size_t begin_       = std::string::npos;
    size_t last_end_    = 0;
    std::vector<size_t> claimable_; // phrases closed since the last [SEG]
};

} // namespace

ParsedAnswer parse_markup(const std::string& text) {
    return MarkupParser().run(text);
}

// ref: groundingLMM app.py / eval/gcg/infer.py post-processing
std::string clean_generated_text(const std::string& decoded) {
    std::string no_newlines;
    for (char c : decoded)
        if (c != '\n') no_newlines += c;
    std::string out; // str.replace("  ", " "): one left-to-right pass, non-overlapping
    for (size_t i = 0; i < no_newlines.size();) {
        if (no_newlines[i] == ' ' && i + 1 < no_newlines.size() && no_newlines[i + 1] == ' ') {
            out += ' ';
            i += 2;
        } else {
            out += no_newlines[i++];
        }
    }
    const std::string marker = std::string(kAssistantRole) + ": ";
    const size_t at          = out.rfind(marker);
    return at == std::string::npos ? out : out.substr(at + marker.size());
}

std::string gcg_caption(const std::string& text) {
    // re.sub(r'<.*?>', '', text): '.' matches anything but '\n'.
    std::string no_tags;
    for (size_t i = 0; i < text.size();) {
        if (text[i] == '<') {
            size_t j = i + 1;
            while (j < text.size() && text[j] != '>' && text[j] != '\n') ++j;
            if (j < text.size() && text[j] == '>') {
                i = j + 1;
                continue;
            }
        }
        no_tags += text[i++];
    }
    std::string no_seg;
    const std::string seg = kSegToken;
    for (size_t i = 0; i < no_tags.size();) {
        if (starts_at(no_tags, i, seg)) {
            i += seg.size();
        } else {
            no_seg += no_tags[i++];
        }
    }
    std::string joined;
    for (const auto& word : python_split(no_seg)) joined += (joined.empty() ? "" : " ") + word;
    size_t b = 0, e = joined.size();
    while (b < e && joined[b] == '\'') ++b;
    while (e > b && joined[e - 1] == '\'') --e;
    return python_strip(joined.substr(b, e - b));
}

std::vector<std::string> gcg_phrases(const std::string& text) {
    std::vector<std::string> phrases;
    const std::string open = kPhraseOpen, close = kPhraseClose;
    for (size_t i = 0; i < text.size();) {
        if (starts_at(text, i, open)) {
            const size_t j  = text.find(close, i + open.size());
            const size_t nl = text.find('\n', i + open.size());
            if (j != std::string::npos && (nl == std::string::npos || nl > j)) {
                phrases.push_back(python_strip(text.substr(i + open.size(), j - i - open.size())));
                i = j + close.size();
                continue;
            }
        }
        ++i;
    }
    return phrases;
}

} // namespace glamm
