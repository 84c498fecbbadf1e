// make-weights: the mirrored key lists equal the engine modules' parameters and buffers (names and
// shapes), the streaming safetensors writer, and a tiny release that loads strictly.
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "language/llama.h"
#include "model/glamm_model.h"
#include "model/make_weights.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>

namespace fs = std::filesystem;
using namespace glamm;
using namespace glamm::test;

namespace {

using ShapeMap = std::map<std::string, std::vector<int64_t>>;

ShapeMap module_shapes(torch::nn::Module& module) {
    ShapeMap out;
    for (const auto& p : module.named_parameters()) out[p.key()] = p.value().sizes().vec();
    for (const auto& b : module.named_buffers()) out[b.key()] = b.value().sizes().vec();
    return out;
}

ShapeMap spec_shapes(const std::vector<WeightSpec>& specs) {
    ShapeMap out;
    for (const auto& s : specs) EXPECT_TRUE(out.emplace(s.name, s.shape).second) << s.name;
    return out;
}

// Equal maps, with the first differences named.
void expect_same(const char* what, const ShapeMap& module, const ShapeMap& specs) {
    EXPECT_EQ(module.size(), specs.size()) << what;
    for (const auto& [name, shape] : module) {
        auto it = specs.find(name);
        if (it == specs.end()) {
            ADD_FAILURE() << what << ": module key " << name << " missing from the specs";
            continue;
        }
        EXPECT_EQ(shape, it->second) << what << ": " << name;
    }
    for (const auto& [name, shape] : specs)
        EXPECT_TRUE(module.count(name)) << what << ": spec key " << name << " not in the module";
    std::printf("%s: %zu keys compared\n", what, module.size());
}

// Every component of `c` (with a CLIP of `clip`) against its mirrored spec list.
void check_all_components(const GlammConfig& c, const ClipVisionConfig& clip) {
    ClipVisionModel clip_model(clip);
    expect_same("clip_vision", module_shapes(*clip_model),
                spec_shapes(clip_vision_weight_specs(clip)));
    MmProjector projector(c);
    expect_same("mm_projector", module_shapes(*projector),
                spec_shapes(mm_projector_weight_specs(c)));
    RegionEncoder region(c.region_encoder, c.mm_hidden_size, c.llama.hidden_size, clip.patch_size);
    expect_same("region_encoder", module_shapes(*region),
                spec_shapes(region_encoder_weight_specs(c.region_encoder, c.mm_hidden_size,
                                                        c.llama.hidden_size)));
    LlamaForCausalLM llama(c.llama);
    expect_same("llama", module_shapes(*llama), spec_shapes(llama_weight_specs(c.llama)));
    TextProjection text(c.llama.hidden_size, c.out_dim);
    expect_same("text_projection", module_shapes(*text),
                spec_shapes(text_projection_weight_specs(c.llama.hidden_size, c.out_dim)));
    SamImageEncoder sam(c.grounding_encoder);
    expect_same("sam_image_encoder", module_shapes(*sam),
                spec_shapes(sam_image_encoder_weight_specs(c.grounding_encoder)));
    SamPromptEncoder prompt(c.grounding_encoder);
    expect_same("sam_prompt_encoder", module_shapes(*prompt),
                spec_shapes(sam_prompt_encoder_weight_specs(c.grounding_encoder)));
    SamMaskDecoder decoder(c.grounding_encoder);
    expect_same("sam_mask_decoder", module_shapes(*decoder),
                spec_shapes(sam_mask_decoder_weight_specs(c.grounding_encoder)));
}

} // namespace

TEST(MakeWeights, SpecsEqualModulesAtTheTinyGoldenConfig) {
    GlammConfig c         = load_glamm_config(tiny_model_dir());
    const Checkpoint ckpt = Checkpoint::open(tiny_model_dir());
    c.llama               = resolve_llama_config(c.llama, ckpt);
    c.region_encoder.pos_embed_dim =
        ckpt.stored("model.region_encoder.roi_align.pos_embedd.0.weight").shape.at(0);
    check_all_components(c, load_clip_vision_config(tiny_clip_dir()));
}

TEST(MakeWeights, SpecsEqualModulesWithGqaTiedEmbeddingsAndLinearProjector) {
    GlammConfig c                           = preset_glamm_config("tiny");
    c.llama.num_key_value_heads             = 1;
    c.llama.tie_word_embeddings             = true;
    c.mm_projector_type                     = "linear";
    c.grounding_encoder.depth               = 3;
    c.grounding_encoder.global_attn_indexes = {0};
    check_all_components(c, preset_clip_config("tiny"));
}

TEST(MakeWeights, TinyPresetHasTheGoldenWidths) {
    // The preset's key lists equal those of the golden tiny release's own config (+ checkpoint).
    GlammConfig golden    = load_glamm_config(tiny_model_dir());
    const Checkpoint ckpt = Checkpoint::open(tiny_model_dir());
    golden.llama          = resolve_llama_config(golden.llama, ckpt);
    golden.region_encoder.pos_embed_dim =
        ckpt.stored("model.region_encoder.roi_align.pos_embedd.0.weight").shape.at(0);
    const GlammConfig preset = preset_glamm_config("tiny");
    EXPECT_EQ(spec_shapes(llama_weight_specs(golden.llama)),
              spec_shapes(llama_weight_specs(preset.llama)));
    EXPECT_EQ(spec_shapes(sam_image_encoder_weight_specs(golden.grounding_encoder)),
              spec_shapes(sam_image_encoder_weight_specs(preset.grounding_encoder)));
    EXPECT_EQ(spec_shapes(sam_mask_decoder_weight_specs(golden.grounding_encoder)),
              spec_shapes(sam_mask_decoder_weight_specs(preset.grounding_encoder)));
    EXPECT_EQ(spec_shapes(region_encoder_weight_specs(golden.region_encoder, golden.mm_hidden_size,
                                                      golden.llama.hidden_size)),
              spec_shapes(region_encoder_weight_specs(preset.region_encoder, preset.mm_hidden_size,
                                                      preset.llama.hidden_size)));
    EXPECT_EQ(golden.out_dim, preset.out_dim);
    const ClipVisionConfig clip = load_clip_vision_config(tiny_clip_dir());
    EXPECT_EQ(spec_shapes(clip_vision_weight_specs(clip)),
              spec_shapes(clip_vision_weight_specs(preset_clip_config("tiny"))));
}

TEST(MakeWeights, SevenBillionParametersAtGlammSevenB) {
    // Hand-worked: Vicuna-7B has 6,738,415,616 parameters at vocab 32000; GLaMM adds 7 rows to
    // embed_tokens and lm_head (7 × 4096 × 2 = 57,344).
    const GlammConfig c = preset_glamm_config("glamm-7b");
    int64_t n           = 0;
    for (const auto& s : llama_weight_specs(c.llama)) {
        int64_t e = 1;
        for (int64_t d : s.shape) e *= d;
        n += e;
    }
    EXPECT_EQ(n, 6738415616LL + 57344LL);
    // SAM ViT-H image encoder: 637,026,048 parameters (segment-anything's ViT-H).
    int64_t sam = 0;
    for (const auto& s : sam_image_encoder_weight_specs(c.grounding_encoder)) {
        int64_t e = 1;
        for (int64_t d : s.shape) e *= d;
        sam += e;
    }
    EXPECT_EQ(sam, 637026048LL);
}

TEST(SafetensorsWriter, StreamsPiecesAndRejectsShortOrLongWrites) {
    const std::string dir = make_temp_dir("st_writer");
    TensorInfo a;
    a.name  = "a";
    a.dtype = DType::F32;
    a.shape = {2, 3};
    TensorInfo b;
    b.name                 = "b";
    b.dtype                = DType::BF16;
    b.shape                = {3};
    const std::string path = dir + "/x.safetensors";
    {
        SafetensorsWriter w(path, {a, b});
        const float values[6] = {1, 2, 3, 4, 5, 6};
        w.write(values, 8);                              // a[0..1]
        w.write(values + 2, 16);                         // a[2..5]
        const uint16_t bf[3] = {0x3f80, 0x4000, 0x4040}; // 1, 2, 3
        w.write(bf, sizeof bf);
        EXPECT_THROW(w.write(bf, 1), Error);
        w.commit();
    }
    const auto tensors = load_tensors(path);
    EXPECT_TRUE(tensors.at("a").equal(torch::arange(1, 7, torch::kFloat).reshape({2, 3})));
    EXPECT_TRUE(tensors.at("b").to(torch::kFloat).equal(torch::tensor({1.f, 2.f, 3.f})));
    {
        SafetensorsWriter w(dir + "/short.safetensors", {a});
        EXPECT_THROW(w.commit(), Error);
    }
    EXPECT_FALSE(fs::exists(dir + "/short.safetensors"));
}

TEST(MakeWeights, TinyReleaseLoadsStrictly) {
    const std::string root = make_temp_dir("make_weights");
    MakeWeightsOptions options;
    options.like                   = "tiny";
    options.out_dir                = root + "/tiny";
    options.tokenizer_dir          = tiny_model_dir();
    options.seed                   = 7;
    options.max_shard_bytes        = 4 << 20; // force several shards + index
    const MakeWeightsResult result = make_weights(options);
    ASSERT_EQ(result.folders.size(), 2u);
    EXPECT_TRUE(fs::exists(root + "/tiny/model.safetensors.index.json"));
    EXPECT_TRUE(fs::exists(root + "/tiny-clip/model.safetensors"));

    ModelOptions model_options;
    model_options.model_dir = root + "/tiny";
    model_options.threads   = 1;
    auto model              = GlammModel::load(model_options); // strict: throws on any mismatch
    EXPECT_EQ(model->vision_tower_dir, fs::path(root + "/tiny-clip").lexically_normal().string());
    EXPECT_EQ(model->config.llama.vocab_size, 519);
    EXPECT_EQ(model->config.region_encoder.pos_embed_dim, 40);

    // Stored dtypes as the releases: bf16 except SAM and text_hidden_fcs (f32).
    const Checkpoint ckpt = Checkpoint::open(root + "/tiny");
    EXPECT_EQ(ckpt.stored("model.embed_tokens.weight").dtype, DType::BF16);
    EXPECT_EQ(ckpt.stored("model.text_hidden_fcs.0.0.weight").dtype, DType::F32);
    EXPECT_EQ(ckpt.stored("model.grounding_encoder.mask_decoder.iou_token.weight").dtype,
              DType::F32);
    // Norm scales are 1, random weights small and seeded.
    EXPECT_TRUE(ckpt.tensor("model.norm.weight").to(torch::kFloat).eq(1).all().item<bool>());
    const at::Tensor w = ckpt.tensor("model.layers.0.mlp.up_proj.weight").to(torch::kFloat);
    const double std   = w.std().item<double>();
    EXPECT_NEAR(std, 0.02, 0.002);

    // Same seed, same bytes.
    options.out_dir = root + "/again";
    make_weights(options);
    EXPECT_TRUE(Checkpoint::open(root + "/again")
                    .tensor("model.layers.0.mlp.up_proj.weight")
                    .equal(ckpt.tensor("model.layers.0.mlp.up_proj.weight")));
    // An existing release is not overwritten.
    options.out_dir = root + "/tiny";
    EXPECT_THROW(make_weights(options), Error);
}
