// llava_v1 prompt rendering (against the golden prompts) and task instructions.
#include "support/test_support.h"
#include "text/conversation.h"

#include "core/error.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

using glamm::Conversation;
using glamm::TaskPreset;

namespace {
nlohmann::json meta() {
    std::ifstream in(glamm::test::tiny_case_path("meta.json"));
    return nlohmann::json::parse(in);
}
} // namespace

TEST(Conversation, GoldenPromptsOfBothCases) {
    const auto m = meta();
    for (const std::string name : {"gcg", "region"}) {
        const auto& c = m.at("cases").at(name);
        Conversation conv;
        conv.add_user(c.at("instruction").get<std::string>());
        EXPECT_EQ(conv.prompt(), c.at("prompt").get<std::string>()) << name;
    }
}

TEST(Conversation, LlamaGoldenImagePrompts) {
    std::ifstream in(glamm::test::data_path("golden/llama-tokenizer/cases.json"));
    const auto cases                            = nlohmann::json::parse(in);
    const std::vector<std::string> instructions = {
        glamm::kGcgInstructionEval, "Can you please segment the yacht ?",
        glamm::kRegionCaptionInstruction, glamm::kImageCaptionInstruction};
    ASSERT_EQ(cases.at("image_prompts").size(), instructions.size());
    for (size_t i = 0; i < instructions.size(); ++i) {
        Conversation conv;
        conv.add_user(instructions[i]);
        EXPECT_EQ(conv.prompt(), cases.at("image_prompts")[i].at("prompt").get<std::string>());
    }
}

TEST(Conversation, HandWorkedRendering) {
    Conversation conv(/*mm_use_im_start_end=*/false);
    conv.system = "SYS";
    conv.add_user("Describe.");
    EXPECT_EQ(conv.prompt(),
              "SYS USER: The <image> provides an overview of the picture.\nDescribe. ASSISTANT:");
    // Multi-turn: one "</s>" after the answer even when the answer carries the decoded "</s>".
    conv.add_assistant("A cat.</s>");
    conv.add_user("What colour?");
    EXPECT_EQ(conv.prompt(), "SYS USER: The <image> provides an overview of the picture.\n"
                             "Describe. ASSISTANT: A cat.</s>USER: What colour? ASSISTANT:");
    conv.add_assistant("Black.");
    EXPECT_EQ(conv.prompt(), "SYS USER: The <image> provides an overview of the picture.\n"
                             "Describe. ASSISTANT: A cat.</s>USER: What colour? ASSISTANT: "
                             "Black.</s>");
    conv.clear();
    EXPECT_EQ(conv.prompt(), "SYS ASSISTANT:");
    EXPECT_EQ(Conversation(true).image_placeholder(), "<im_start><image><im_end>");
}

TEST(Conversation, GcgWordings) {
    const std::string eval     = glamm::kGcgInstructionEval;
    const std::string training = glamm::kGcgInstructionTraining;
    EXPECT_NE(eval.find("interleaved     segmentation"), std::string::npos);
    EXPECT_NE(training.find("interleaved segmentation"), std::string::npos);
    EXPECT_EQ(glamm::build_instruction(TaskPreset::GroundedCaption, ""), eval);
    EXPECT_EQ(glamm::build_instruction(TaskPreset::GroundedCaption, "", 0, false), training);
    EXPECT_EQ(training, meta().at("cases").at("gcg").at("instruction").get<std::string>());
    EXPECT_EQ(glamm::build_instruction(TaskPreset::GroundedCaption, "Tell me."), "Tell me.");
}

TEST(Conversation, PresetInstructions) {
    using glamm::build_instruction;
    EXPECT_EQ(build_instruction(TaskPreset::ReferringSegmentation, " The Yacht "),
              "Can you segment the the yacht in this image?");
    EXPECT_THROW(build_instruction(TaskPreset::ReferringSegmentation, "  "), glamm::Error);
    EXPECT_EQ(build_instruction(TaskPreset::ImageCaption, ""),
              "Could you please give me a detailed description of the image?");
    EXPECT_EQ(build_instruction(TaskPreset::Chat, "What is she doing?"), "What is she doing?");
    // Region: the eval sentence already holds one <bbox>.
    EXPECT_EQ(build_instruction(TaskPreset::RegionCaption, "", 1),
              meta().at("cases").at("region").at("instruction").get<std::string>());
    EXPECT_EQ(build_instruction(TaskPreset::RegionCaption, "", 0),
              glamm::kRegionCaptionInstruction);
}

TEST(Conversation, BoxInsertion) {
    using glamm::build_instruction;
    EXPECT_EQ(build_instruction(TaskPreset::Chat, "What is in <region> and <region>?", 2),
              "What is in region1 <bbox> and region2 <bbox>?");
    EXPECT_EQ(build_instruction(TaskPreset::Chat, "Describe these.", 2),
              "Describe these. region1 <bbox>, region2 <bbox>");
    EXPECT_EQ(build_instruction(TaskPreset::Chat, "Compare <bbox> with", 2),
              "Compare <bbox> with region2 <bbox>");
    EXPECT_EQ(build_instruction(TaskPreset::Chat, "No boxes <bbox>", 0), "No boxes <bbox>");
    EXPECT_THROW(build_instruction(TaskPreset::Chat, "<bbox> <bbox>", 1), glamm::Error);
    EXPECT_EQ(glamm::count_occurrences("<bbox><bbox> <bbox>", "<bbox>"), 3u);
}
