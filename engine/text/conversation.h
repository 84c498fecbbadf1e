// GLaMM's prompt template (LLaVA `conv_llava_v1`, spec §3.1) and its task instructions (§3.2).
// Text only: the prompt goes to Tokenizer::encode_with_image.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace glamm {

// ref: groundingLMM model/llava/conversation.py conv_llava_v1 (note "human", not vicuna's "user").
inline constexpr const char* kLlavaV1System =
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the human's questions.";
inline constexpr const char* kUserRole      = "USER";
inline constexpr const char* kAssistantRole = "ASSISTANT";
inline constexpr const char* kLlavaV1Sep    = " ";    // after user turns
inline constexpr const char* kLlavaV1Sep2   = "</s>"; // after assistant turns
// The first user turn's prefix (app.py, eval/*/infer.py): "The <image> provides an overview...".
inline constexpr const char* kImageIntroBefore = "The ";
inline constexpr const char* kImageIntroAfter  = " provides an overview of the picture.\n";

enum class Role { User, Assistant };

struct ChatMessage {
    Role role;
    std::string text;
};

// A llava_v1 conversation about one image. prompt() renders
//   SYSTEM + " " + for each message i: ROLE ": " text sep_i    (sep_i = " " for even i, "</s>" odd)
// with an empty message rendered "ROLE:" and, when the last message is the user's, an empty
// assistant turn appended ("... ASSISTANT:"). The first user message gets the image intro
// "The <im_start><image><im_end> provides an overview of the picture.\n" (plain "<image>" when
// !mm_use_im_start_end).
// Multi-turn: earlier assistant answers are followed by exactly one "</s>". The reference demo
// keeps the decoded "</s>" in the answer and the template adds another ("</s></s>"); we do not
// reproduce that quirk: add_assistant() drops a trailing "</s>" from the answer.
class Conversation {
public:
    explicit Conversation(bool mm_use_im_start_end = true);

    void add_user(const std::string& text);
    void add_assistant(const std::string& text);
    void clear() { messages_.clear(); }

    std::string prompt() const;
    // "<im_start><image><im_end>" or "<image>".
    std::string image_placeholder() const;
    const std::vector<ChatMessage>& messages() const { return messages_; }
    bool mm_use_im_start_end() const { return mm_use_im_start_end_; }

    std::string system = kLlavaV1System;

private:
    bool mm_use_im_start_end_;
    std::vector<ChatMessage> messages_;
};

// Task presets of the reference scripts and demo (spec §3.2).
enum class TaskPreset { GroundedCaption, ReferringSegmentation, RegionCaption, ImageCaption, Chat };

// GCG, official eval string (eval/gcg/infer.py): FIVE spaces between "interleaved" and
// "segmentation" (a Python line-continuation artifact the published numbers were produced with).
inline constexpr const char* kGcgInstructionEval =
    "Could you please give me a detailed description of the image? Please respond with interleaved"
    "     segmentation masks for the corresponding parts of the answer.";
// GCG, training wording (dataset/utils/utils.py GCG_QUESTIONS[0]): single spaces.
inline constexpr const char* kGcgInstructionTraining =
    "Could you please give me a detailed description of the image? Please respond with interleaved "
    "segmentation masks for the corresponding parts of the answer.";
// Referring segmentation (SEG_QUESTIONS[0]); "{}" is the lower-cased expression.
inline constexpr const char* kReferringSegTemplate = "Can you segment the {} in this image?";
// Region captioning (eval/region_captioning/infer.py).
inline constexpr const char* kRegionCaptionInstruction =
    "Can you provide me with a detailed description of the region in the picture marked by <bbox>?";
// Image captioning (CAPTION_QUESTIONS[0]).
inline constexpr const char* kImageCaptionInstruction =
    "Could you please give me a detailed description of the image?";
// Training region questions say "<region>"; it becomes "region{i} <bbox>" (RefCOCO_VG_Region_ds).
inline constexpr const char* kRegionPlaceholder = "<region>";

// Builds the user instruction for a preset:
//   GroundedCaption: user_text, or (empty) kGcgInstructionEval / kGcgInstructionTraining;
//   ReferringSegmentation: user_text is the expression -> kReferringSegTemplate (ASCII
//     lower-cased, trimmed); throws glamm::Error when empty;
//   RegionCaption: user_text, or (empty) kRegionCaptionInstruction;
//   ImageCaption: user_text, or (empty) kImageCaptionInstruction;  Chat: user_text.
// Boxes (num_boxes > 0): every "<region>" becomes "region{k} <bbox>" (k = 1, 2, ...); if the text
// then has fewer "<bbox>" than boxes, the missing ones are appended as
// " region{k} <bbox>, region{k+1} <bbox>" (the i-th <bbox> gets the i-th box). More "<bbox>"
// than boxes throws glamm::Error (the reference crashes on it).
std::string build_instruction(TaskPreset preset, const std::string& user_text, size_t num_boxes = 0,
                              bool gcg_eval_wording = true);

// Number of non-overlapping occurrences of `needle` in `text`.
size_t count_occurrences(const std::string& text, const std::string& needle);

} // namespace glamm
