// llava_v1 conversation rendering and GLaMM's task instructions.
#include "text/conversation.h"

#include "core/error.h"
#include "text/tokenizer.h"

namespace glamm {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    size_t pos = 0;
    while ((pos = s.find(from, pos)) != std::string::npos) {
        s.replace(pos, from.size(), to);
        pos += to.size();
    }
    return s;
}

std::string ascii_lower(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

std::string region_ref(size_t k) {
    return cat("region", k, " ", kBboxToken);
}

} // namespace

Conversation::Conversation(bool mm_use_im_start_end) : mm_use_im_start_end_(mm_use_im_start_end) {}

void Conversation::add_user(const std::string& text) {
    messages_.push_back({Role::User, text});
}

void Conversation::add_assistant(const std::string& text) {
    std::string answer = text;
    while (ends_with(answer, kLlavaV1Sep2))
        answer.resize(answer.size() - std::string(kLlavaV1Sep2).size());
    messages_.push_back({Role::Assistant, answer});
}

std::string Conversation::image_placeholder() const {
    return mm_use_im_start_end_ ? cat(kImStartToken, kImagePlaceholder, kImEndToken)
                                : std::string(kImagePlaceholder);
}

// ref: model/llava/conversation.py Conversation.get_prompt, SeparatorStyle.TWO
std::string Conversation::prompt() const {
    std::vector<ChatMessage> all = messages_;
    if (all.empty() || all.back().role == Role::User) all.push_back({Role::Assistant, ""});
    std::string out = system + kLlavaV1Sep;
    bool first_user = true;
    for (size_t i = 0; i < all.size(); ++i) {
        const auto& m    = all[i];
        const char* role = m.role == Role::User ? kUserRole : kAssistantRole;
        std::string text = m.text;
        if (m.role == Role::User && first_user) {
            text       = cat(kImageIntroBefore, image_placeholder(), kImageIntroAfter, text);
            first_user = false;
        }
        if (text.empty()) {
            out += cat(role, ":");
        } else {
            out += cat(role, ": ", text, (i % 2 == 0) ? kLlavaV1Sep : kLlavaV1Sep2);
        }
    }
    return out;
}

size_t count_occurrences(const std::string& text, const std::string& needle) {
    if (needle.empty()) return 0;
    size_t n = 0;
    for (size_t pos = text.find(needle); pos != std::string::npos;
         pos        = text.find(needle, pos + needle.size()))
        ++n;
    return n;
}

std::string build_instruction(TaskPreset preset, const std::string& user_text, size_t num_boxes,
                              bool gcg_eval_wording) {
    std::string text;
    switch (preset) {
    case TaskPreset::GroundedCaption:
        text = !user_text.empty() ? user_text
               : gcg_eval_wording ? kGcgInstructionEval
                                  : kGcgInstructionTraining;
        break;
    case TaskPreset::ReferringSegmentation: {
        const std::string expression = python_strip(user_text);
        if (expression.empty()) fail("referring segmentation needs an expression to segment");
        text = replace_all(kReferringSegTemplate, "{}", ascii_lower(expression));
        break;
    }
    case TaskPreset::RegionCaption:
        text = user_text.empty() ? std::string(kRegionCaptionInstruction) : user_text;
        break;
    case TaskPreset::ImageCaption:
        text = user_text.empty() ? std::string(kImageCaptionInstruction) : user_text;
        break;
    case TaskPreset::Chat:
        text = user_text;
        break;
    }
    if (num_boxes == 0) return text;

    // "<region>" -> "region{k} <bbox>", numbered left to right.
    std::string numbered;
    size_t k = 0, pos = 0;
    const std::string placeholder = kRegionPlaceholder;
    for (size_t at; (at = text.find(placeholder, pos)) != std::string::npos;
         pos = at + placeholder.size()) {
        numbered += text.substr(pos, at - pos) + region_ref(++k);
    }
    numbered += text.substr(pos);

    const size_t have = count_occurrences(numbered, kBboxToken);
    if (have > num_boxes)
        fail("the instruction has ", have, " ", kBboxToken, " tokens but only ", num_boxes,
             " box(es) were given");
    for (size_t b = have; b < num_boxes; ++b)
        numbered += cat(b == have ? " " : ", ", region_ref(b + 1));
    return numbered;
}

} // namespace glamm
