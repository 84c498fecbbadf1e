// config.json parsing: the golden tiny configs read as written, and every impossible or ill-typed
// config is refused with a message naming the file and key.
#include "core/atomic_file.h"
#include "core/config.h"
#include "core/error.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <functional>

using namespace glamm;

namespace {

#define EXPECT_HAS(haystack, needle)                                                               \
    EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

nlohmann::json tiny_config() {
    return nlohmann::json::parse(read_file(test::tiny_model_dir() + "/config.json"));
}

// The error of parsing the tiny config after `edit`, or "(no error)".
std::string glamm_error(const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = tiny_config();
    edit(j);
    return test::error_of([&] { parse_glamm_config(j.dump(), "cfg.json"); });
}

std::string clip_error(const std::string& text) {
    return test::error_of([&] { parse_clip_vision_config(text, "clip.json"); });
}

} // namespace

TEST(Config, ReadsGoldenTinyConfigs) {
    const GlammConfig c = load_glamm_config(test::tiny_model_dir());
    EXPECT_EQ(c.llama.vocab_size, 519);
    EXPECT_EQ(c.llama.hidden_size, 160);
    EXPECT_EQ(c.llama.intermediate_size, 320);
    EXPECT_EQ(c.llama.num_hidden_layers, 2);
    EXPECT_EQ(c.llama.num_attention_heads, 5);
    EXPECT_EQ(c.llama.head_dim(), 32);
    EXPECT_EQ(c.llama.kv_heads(), 5);
    EXPECT_DOUBLE_EQ(c.llama.rms_norm_eps, 1e-5);
    EXPECT_EQ(c.mm_hidden_size, 128);
    EXPECT_EQ(c.out_dim, 32);
    EXPECT_EQ(c.grounding_encoder.embed_dim, 64);
    EXPECT_EQ(c.grounding_encoder.depth, 4);
    EXPECT_EQ(c.grounding_encoder.global_attn_indexes, (std::vector<int64_t>{1, 3}));
    EXPECT_EQ(c.grounding_encoder.prompt_embed_dim, 32);
    EXPECT_EQ(c.grounding_encoder.iou_head_hidden_dim, 48);
    EXPECT_EQ(c.grounding_encoder.img_size, 1024); // not in the file: SAM's fixed default
    EXPECT_EQ(c.region_encoder.box_scale, 224.0);  // not in the file: GLaMM's constant
    EXPECT_EQ(c.architectures, std::vector<std::string>{"GLaMMForCausalLM"});

    const ClipVisionConfig v = load_clip_vision_config(test::tiny_clip_dir());
    EXPECT_EQ(v.hidden_size, 128);
    EXPECT_EQ(v.num_hidden_layers, 12);
    EXPECT_EQ(v.num_attention_heads, 4);
    EXPECT_EQ(v.num_patches(), 576);
    EXPECT_EQ(v.hidden_act, "quick_gelu");
}

TEST(Config, MissingConfigJson) {
    const std::string dir = test::make_temp_dir("no-config");
    try {
        load_glamm_config(dir);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_HAS(e.what(), dir + " is not a GLaMM model folder: config.json is missing");
    }
    try {
        load_clip_vision_config(dir);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_HAS(e.what(), dir + " is not a CLIP vision tower folder: config.json is missing");
    }
}

TEST(Config, NotJsonOrNotAnObject) {
    const std::string dir = test::make_temp_dir("bad-config");
    write_file_atomic(dir + "/config.json", "{\"hidden_size\": 16,");
    try {
        load_glamm_config(dir);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_HAS(e.what(), dir + "/config.json: not valid JSON");
    }
    EXPECT_HAS(clip_error("[1, 2]"), "clip.json: not a JSON object");
}

TEST(Config, HiddenSizeNotDivisibleByHeads) {
    EXPECT_HAS(glamm_error([](auto& j) { j["num_attention_heads"] = 6; }),
               "cfg.json: \"hidden_size\" (160) must be divisible by \"num_attention_heads\" (6)");
    EXPECT_HAS(glamm_error([](auto& j) { j["num_key_value_heads"] = 2; }),
               "\"num_attention_heads\" (5) must be divisible by \"num_key_value_heads\" (2)");
    EXPECT_HAS(
        glamm_error([](auto& j) { j["grounding_encoder"]["num_heads"] = 3; }),
        "cfg.json grounding_encoder: \"embed_dim\" (64) must be divisible by \"num_heads\" (3)");
    EXPECT_HAS(
        clip_error(R"({"hidden_size": 100, "num_attention_heads": 16})"),
        "clip.json: \"hidden_size\" (100) must be divisible by \"num_attention_heads\" (16)");
    // Head dim 160 / 32 = 5 is odd: RoPE rotates pairs.
    EXPECT_HAS(glamm_error([](auto& j) {
                   j["num_attention_heads"] = 32;
                   j["num_key_value_heads"] = 32;
               }),
               "head dimension 5 must be even for RoPE");
}

TEST(Config, NegativeOrZeroSizes) {
    EXPECT_HAS(glamm_error([](auto& j) { j["hidden_size"] = -160; }),
               "cfg.json: \"hidden_size\" must be positive, got -160");
    EXPECT_HAS(glamm_error([](auto& j) { j["intermediate_size"] = 0; }),
               "\"intermediate_size\" must be positive, got 0");
    EXPECT_HAS(glamm_error([](auto& j) { j["num_hidden_layers"] = -1; }),
               "\"num_hidden_layers\" must be positive, got -1");
    EXPECT_HAS(glamm_error([](auto& j) { j["vocab_size"] = -5; }),
               "\"vocab_size\" must be positive, got -5");
    EXPECT_HAS(glamm_error([](auto& j) { j["grounding_encoder"]["depth"] = 0; }),
               "grounding_encoder: \"depth\" must be positive, got 0");
    EXPECT_HAS(glamm_error([](auto& j) {
                   j["grounding_encoder"]["global_attn_indexes"] = {1, 4};
               }),
               "global_attn_indexes entry 4 is outside 0..3");
    EXPECT_HAS(glamm_error([](auto& j) { j["out_dim"] = 16; }),
               "out_dim (16) must equal the SAM prompt_embed_dim (32)");
    EXPECT_HAS(glamm_error([](auto& j) { j["rms_norm_eps"] = 0.0; }),
               "\"rms_norm_eps\" must be positive");
    EXPECT_HAS(glamm_error([](auto& j) { j["region_encoder"]["box_scale"] = 0; }),
               "\"region_encoder.box_scale\" must be positive, got 0");
    EXPECT_HAS(clip_error(R"({"patch_size": 0})"),
               "clip.json: \"patch_size\" must be positive, got 0");
    EXPECT_HAS(clip_error(R"({"image_size": 100, "patch_size": 14})"),
               "\"image_size\" (100) must be divisible by \"patch_size\" (14)");
}

TEST(Config, WrongJsonTypes) {
    EXPECT_HAS(glamm_error([](auto& j) { j["hidden_size"] = "4096"; }),
               "cfg.json: key \"hidden_size\" has the wrong type (string)");
    EXPECT_HAS(glamm_error([](auto& j) { j["mm_use_im_start_end"] = 1; }),
               "key \"mm_use_im_start_end\" has the wrong type (number)");
    EXPECT_HAS(glamm_error([](auto& j) { j["architectures"] = "GLaMM"; }),
               "key \"architectures\" has the wrong type (string)");
    EXPECT_HAS(glamm_error([](auto& j) { j["grounding_encoder"] = 5; }),
               "cfg.json: \"grounding_encoder\" is not an object");
    EXPECT_HAS(
        glamm_error([](auto& j) { j["grounding_encoder"]["global_attn_indexes"] = {"a"}; }),
        "cfg.json grounding_encoder: key \"global_attn_indexes\" has the wrong type (array)");
    EXPECT_HAS(glamm_error([](auto& j) { j["region_encoder"] = {1}; }),
               "\"region_encoder\" is not an object");
    EXPECT_HAS(clip_error(R"({"hidden_act": 3})"),
               "clip.json: key \"hidden_act\" has the wrong type (number)");
}

TEST(Config, UnsupportedChoices) {
    EXPECT_HAS(glamm_error([](auto& j) {
                   j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
               }),
               "\"rope_scaling\" is set; GLaMM uses plain RoPE");
    EXPECT_HAS(glamm_error([](auto& j) { j["hidden_act"] = "gelu"; }),
               "hidden_act \"gelu\" is not supported");
    EXPECT_HAS(glamm_error([](auto& j) { j["mm_projector_type"] = "mlp3x_gelu"; }),
               "mm_projector_type \"mlp3x_gelu\" is not supported");
    EXPECT_HAS(clip_error(R"({"num_channels": 4})"), "num_channels must be 3, got 4");
    // A CLIPModel config is read through its vision_config.
    const ClipVisionConfig v = parse_clip_vision_config(
        R"({"vision_config": {"hidden_size": 64, "num_attention_heads": 2}})", "x");
    EXPECT_EQ(v.hidden_size, 64);
    EXPECT_EQ(v.head_dim(), 32);
    // `null` means "not set".
    EXPECT_EQ(glamm_error([](auto& j) {
                  j["rope_scaling"] = nullptr;
                  j["vocab_size"]   = nullptr;
              }),
              "(no error)");
}
