// `glamm inspect`: strict loading of the tiny release and its vision tower (also with an int8
// language model), and the errors a user sees for folders that are not a release.
#include "core/atomic_file.h"
#include "support/test_support.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace glamm;
namespace fs = std::filesystem;

TEST(CliInspect, LoadsTheTinyReleaseStrictly) {
    const auto r = test::run_command(test::bin_path("glamm") + " inspect " + test::tiny_model_dir() +
                                     " --vision-tower " + test::tiny_clip_dir());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Widths read from config.json (tests/data/golden/tiny/glamm/config.json).
    EXPECT_NE(r.out.find("llama          hidden 160, layers 2, heads 5 (kv 5), mlp 320, vocab 519"),
              std::string::npos) << r.out;
    EXPECT_NE(r.out.find("-> 576 image tokens"), std::string::npos) << r.out;
    for (const char* component : {"clip_vision", "mm_projector", "region_encoder", "llama",
                                  "text_projection", "sam_image_encoder", "sam_prompt_encoder",
                                  "sam_mask_decoder"})
        EXPECT_NE(r.out.find(component), std::string::npos) << component;
    // The GLaMM weights are stored bf16 (as releases are), the CLIP folder f32.
    EXPECT_NE(r.out.find("BF16"), std::string::npos);
    EXPECT_NE(r.out.find("F32"), std::string::npos);
    // Special ids come from the tokenizer files.
    EXPECT_NE(r.out.find("bos 1, eos 2"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("[SEG]=516"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("<bbox>=514"), std::string::npos) << r.out;
}

TEST(CliInspect, ParameterCountsAddUpToTheCheckpoint) {
    // Every tensor in the checkpoint is a parameter of exactly one component, so the total equals
    // the element count of both checkpoints (what strict accounting guarantees).
    int64_t total = 0;
    for (const char* shard : {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                              "model-00003-of-00003.safetensors"})
        for (const auto& [name, t] : test::load_tensors(test::tiny_model_dir() + "/" + shard))
            total += t.numel();
    for (const auto& [name, t] : test::load_tensors(test::tiny_clip_dir() + "/model.safetensors"))
        total += t.numel();
    const auto r = test::run_command(test::bin_path("glamm") + " inspect " + test::tiny_model_dir());
    ASSERT_EQ(r.exit_code, 0) << r.err; // mm_vision_tower "../clip" resolves relative to the folder
    EXPECT_NE(r.out.find("total                " + std::to_string(total)), std::string::npos)
        << "expected total " << total << " in\n" << r.out;
}

TEST(CliInspect, SaysWhenTheLanguageModelIsInt8AndRefusesOtherQuantizations) {
    const std::string inspect = test::bin_path("glamm") + " inspect " + test::tiny_model_dir();
    auto r                    = test::run_command(inspect + " --quantize int8");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("device, dtype  cpu, f32 (language model linears int8)"),
              std::string::npos)
        << r.out;
    const std::string int8_out = r.out;
    r                          = test::run_command(inspect);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.find("int8"), std::string::npos) << r.out;
    // The release's parameter counts either way (the int8 load empties the float weights).
    auto table = [](const std::string& out) {
        return out.substr(out.find("component"),
                          out.find("special tokens") - out.find("component"));
    };
    EXPECT_EQ(table(int8_out), table(r.out));
    r = test::run_command(inspect + " --quantize int4");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("--quantize: unknown quantization \"int4\" (int8 or none)"),
              std::string::npos)
        << r.err;
}

// A load that does not fit is a clear error (exit 1) before anything is built; the override of
// the memory figure is what makes the tiny model "not fit" here.
TEST(CliInspect, RefusesAModelTheMemoryCannotHold) {
    const std::string inspect = test::bin_path("glamm") + " inspect " + test::tiny_model_dir();
    auto r                    = test::run_command("GLAMM_MEMORY_LIMIT_MB=1 " + inspect);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("in f32 the weights need"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("GLAMM_MEMORY_LIMIT_MB=0 skips this check"), std::string::npos) << r.err;
    r = test::run_command("GLAMM_MEMORY_LIMIT_MB=0 " + inspect);
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(CliInspect, ExplainsWhatIsWrongWithAFolder) {
    const std::string dir = test::make_temp_dir("inspect");
    auto r = test::run_command(test::bin_path("glamm") + " inspect " + dir);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("config.json is missing"), std::string::npos) << r.err;

    // A release whose vision tower cannot be found says what to download.
    fs::copy(test::tiny_model_dir(), dir + "/m");
    r = test::run_command(test::bin_path("glamm") + " inspect " + dir + "/m");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("openai/clip-vit-large-patch14-336"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--vision-tower"), std::string::npos) << r.err;

    // A missing shard is named.
    fs::remove(dir + "/m/model-00002-of-00003.safetensors");
    r = test::run_command(test::bin_path("glamm") + " inspect " + dir + "/m --vision-tower " +
                          test::tiny_clip_dir());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("model-00002-of-00003.safetensors"), std::string::npos) << r.err;

    // A missing tokenizer file is named.
    fs::copy(test::tiny_model_dir() + "/model-00002-of-00003.safetensors", dir + "/m/");
    fs::remove(dir + "/m/tokenizer.model");
    r = test::run_command(test::bin_path("glamm") + " inspect " + dir + "/m --vision-tower " +
                          test::tiny_clip_dir());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("tokenizer.model"), std::string::npos) << r.err;

    // Without a folder: the default model (here the tiny release, through GLAMM_DEFAULT_MODEL).
    r = test::run_command("GLAMM_DEFAULT_MODEL=" + test::tiny_model_dir() + " " +
                          test::bin_path("glamm") + " inspect --vision-tower " +
                          test::tiny_clip_dir());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("hidden 160, layers 2"), std::string::npos) << r.out;
    // Bad command lines exit with 2.
    r = test::run_command(test::bin_path("glamm") + " inspect a b");
    EXPECT_EQ(r.exit_code, 2);
    r = test::run_command(test::bin_path("glamm") + " inspect " + test::tiny_model_dir() + " --bogus 1");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("unknown option --bogus"), std::string::npos) << r.err;
}
