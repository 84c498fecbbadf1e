// glamm bench on the tiny golden model: every stage timed, JSON complete, and GLaMM's cache-less
// algorithm gives the same greedy ids as the KV-cache path (fp32). Asserts structure and
// equality, never speed.
#include "core/error.h"
#include "io/image_file.h"
#include "model/bench.h"
#include "model/glamm_model.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <utility>

using namespace glamm;
using namespace glamm::test;

TEST(Bench, TinyModelEveryStageAndReferenceIdsAgree) {
    ModelOptions model_options;
    model_options.model_dir        = tiny_model_dir();
    model_options.vision_tower_dir = tiny_clip_dir();
    model_options.threads          = 1;
    auto model                     = GlammModel::load(model_options);
    BenchOptions options;
    options.tokens      = 4;
    options.repeat      = 1;
    options.warmup      = 0;
    options.reference   = true;
    options.matmul_size = 64;
    options.copy_mib    = 4;
    const BenchResult r = run_bench(*model, load_image(tiny_case_path("gcg.png")), options);

    const auto json = nlohmann::json::parse(r.to_json());
    for (const char* stage : {"preprocess", "clip", "region", "region_again", "prefill", "decode",
                              "sam_encoder", "mask_decoder", "postprocess", "reference_generate"}) {
        ASSERT_TRUE(json["stages"].contains(stage)) << stage;
        EXPECT_GT(json["stages"][stage]["median_ms"].get<double>(), 0.0) << stage;
        EXPECT_EQ(json["stages"][stage]["runs_ms"].size(), 1u) << stage;
    }
    for (const char* stage : {"prefill", "decode", "clip", "sam_encoder"})
        EXPECT_GT(json["stages"][stage]["bound_ms"].get<double>(), 0.0) << stage;
    EXPECT_GT(json["machine"]["bf16_matmul_gflops"].get<double>(), 0.0);
    EXPECT_GT(json["machine"]["f32_matmul_gflops"].get<double>(), 0.0);
    EXPECT_GT(json["machine"]["copy_gbps_read_plus_write"].get<double>(), 0.0);
    EXPECT_GT(json["peak_rss_mib"].get<double>(), 0.0);
    EXPECT_EQ(json["decode_tokens"].get<int64_t>(), 3);
    // 4 tokens forced (EOS ignored), and the cache-less algorithm picks the same ones.
    ASSERT_EQ(r.greedy_ids.size(), 4u);
    EXPECT_EQ(r.reference_ids, r.greedy_ids);
    EXPECT_TRUE(json["reference"]["same_ids"].get<bool>());
    // On the CPU the steps run eagerly, so there is no second, eager decode to compare.
    EXPECT_EQ(json["decode_mode"].get<std::string>(), "eager");
    EXPECT_FALSE(json.contains("decode_eager"));
    EXPECT_TRUE(json["peak_gpu_mib"].is_null());
    // The caption totals hold the encoders and the generation (one repeat: sums of the stages).
    const auto stage_ms = [&](const char* name) {
        return json["stages"][name]["median_ms"].get<double>();
    };
    const double around = stage_ms("preprocess") + stage_ms("clip") + stage_ms("sam_encoder") +
                          stage_ms("mask_decoder") + stage_ms("postprocess");
    // Generation is timed once and split at the first token: prefill + decode to rounding.
    const double generated = stage_ms("prefill") + stage_ms("decode");
    EXPECT_NEAR(json["caption_ms"].get<double>(), around + generated, 1e-6 * (around + generated));
    EXPECT_NEAR(json["reference"]["caption_ms"].get<double>(),
                around + stage_ms("reference_generate"), 1e-6 * around);
    EXPECT_DOUBLE_EQ(json["reference"]["speedup"].get<double>(),
                     json["reference"]["caption_ms"].get<double>() /
                         json["caption_ms"].get<double>());
    // A Stop waits at most one layer, block, convolution or step: less than its whole stage
    // (every stage asks more than once: 2 layers, the CLIP layers and SAM blocks, the fuse's
    // convolutions, 3 decoding steps).
    const double encode_ms = stage_ms("preprocess") + stage_ms("clip") + stage_ms("sam_encoder");
    for (const auto& [stage, total] : {std::pair<const char*, double>{"encode", encode_ms},
                                       {"region", stage_ms("region")},
                                       {"prefill", stage_ms("prefill")},
                                       {"decode", stage_ms("decode")}}) {
        ASSERT_TRUE(json["stop_wait_ms"].contains(stage)) << stage;
        const double wait = json["stop_wait_ms"][stage].get<double>();
        EXPECT_GT(wait, 0.0) << stage;
        EXPECT_LT(wait, total) << stage;
    }
    // The prompt is the GCG prompt: 576 image positions + the text.
    EXPECT_GT(r.prompt_positions, model->num_image_tokens());
    // The golden case's greedy decoding from this prompt starts with these ids (cases/gcg).
    const auto golden           = load_tensors(tiny_case_path("gcg.safetensors"));
    const at::Tensor golden_ids = golden.at("greedy_ids");
    for (int64_t i = 0; i < std::min<int64_t>(4, golden_ids.numel()); ++i)
        EXPECT_EQ(r.greedy_ids[i], golden_ids[i].item<int64_t>()) << "token " << i;
    std::printf("%s", r.table().c_str());
}

TEST(Bench, PromptTokensLengthensThePrompt) {
    ModelOptions model_options;
    model_options.model_dir        = tiny_model_dir();
    model_options.vision_tower_dir = tiny_clip_dir();
    model_options.threads          = 1;
    auto model                     = GlammModel::load(model_options);
    BenchOptions options;
    options.tokens        = 1;
    options.repeat        = 1;
    options.warmup        = 0;
    options.prompt_tokens = 800;
    options.matmul_size   = 64;
    options.copy_mib      = 4;
    const BenchResult r   = run_bench(*model, Image(), options); // synthetic image
    EXPECT_LE(r.prompt_positions, 800);
    EXPECT_GT(r.prompt_positions, 780);
    EXPECT_EQ(r.stage("decode"), nullptr); // one token: no decode step
}

TEST(Bench, SamFlopsHandWorked) {
    // Tiny SAM: 64×64 grid, E = 64, 4 blocks (1 and 3 global), window 14 → padded 70, 25 windows.
    SamConfig c;
    c.embed_dim           = 64;
    c.depth               = 4;
    c.global_attn_indexes = {1, 3};
    c.prompt_embed_dim    = 32;
    const double T = 4096, E = 64, Tw = 196, W = 25, D = 32, mlp = 256;
    double expected = 2 * T * E * 768;
    expected += 2 * (2 * (W * Tw) * E * (4 * E + 2 * mlp) + W * 4 * Tw * Tw * E);
    expected += 2 * (2 * T * E * (4 * E + 2 * mlp) + 4 * T * T * E);
    expected += 2 * T * E * D + 2 * T * D * D * 9;
    EXPECT_DOUBLE_EQ(sam_encoder_flops(c), expected);
}

TEST(Bench, EncodersAloneFromAClipFolder) {
    BenchOptions options;
    options.repeat      = 2;
    options.warmup      = 0;
    options.matmul_size = 64;
    options.copy_mib    = 4;
    const BenchResult r = run_encoder_bench(tiny_clip_dir(), "", Image(), "cpu", "f32", 1, options);
    ASSERT_NE(r.stage("preprocess"), nullptr);
    ASSERT_NE(r.stage("clip"), nullptr);
    EXPECT_EQ(r.stage("sam_encoder"), nullptr);
    EXPECT_EQ(r.stage("clip")->ms.size(), 2u);
    EXPECT_GT(r.stage("clip")->bound_ms, 0.0);
    EXPECT_LE(r.stage("clip")->min_ms, r.stage("clip")->median_ms);
    EXPECT_THROW(run_encoder_bench("", "", Image(), "cpu", "f32", 1, options), Error);
}
