// The SAM grounding decoder against the tiny golden release (gcg case): image encoder, prompt
// encoder + mask decoder on the golden [SEG] embeddings, post-processing to the original size,
// and strict accounting of every model.grounding_encoder.* key.
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "grounding/mask_postprocess.h"
#include "grounding/sam_image_encoder.h"
#include "grounding/sam_mask_decoder.h"
#include "grounding/sam_prompt_encoder.h"
#include "support/test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>

using namespace glamm;
using glamm::test::close_to_reference;

namespace {

constexpr char kSamPrefix[] = "model.grounding_encoder.";
// Relative tolerance for a bf16 run against the fp32 reference.
constexpr double kBf16Tolerance = 3e-2;

// The SAM input the preprocessing produces: [h', w', 3] u8 -> (x - mean) / std, zero-padded
// bottom/right to the square canvas -> [1, 3, img_size, img_size] fp32.
at::Tensor sam_input(const at::Tensor& resized, const SamConfig& c) {
    at::Tensor x    = resized.to(at::kFloat).permute({2, 0, 1});
    at::Tensor mean = at::tensor(c.pixel_mean, at::kDouble).to(at::kFloat).view({3, 1, 1});
    at::Tensor std  = at::tensor(c.pixel_std, at::kDouble).to(at::kFloat).view({3, 1, 1});
    x               = (x - mean) / std;
    return at::constant_pad_nd(x, {0, c.img_size - x.size(2), 0, c.img_size - x.size(1)})
        .unsqueeze(0);
}

struct SamModules {
    GlammConfig config;
    SamImageEncoder image_encoder{nullptr};
    SamPromptEncoder prompt_encoder{nullptr};
    SamMaskDecoder mask_decoder{nullptr};
    std::set<std::string> sam_keys;      // every checkpoint key under kSamPrefix
    std::set<std::string> consumed_keys; // those the three modules loaded
};

// Loaded once for the whole suite.
SamModules& modules() {
    static const std::unique_ptr<SamModules> loaded = [] {
        auto m             = std::make_unique<SamModules>();
        m->config          = load_glamm_config(test::tiny_model_dir());
        const SamConfig& c = m->config.grounding_encoder;
        m->image_encoder   = SamImageEncoder(c);
        m->prompt_encoder  = SamPromptEncoder(c);
        m->mask_decoder    = SamMaskDecoder(c);
        Checkpoint ckpt    = Checkpoint::open(test::tiny_model_dir());
        LoadReport report(ckpt);
        report.load_module(*m->image_encoder, kSamImageEncoderPrefix);
        report.load_module(*m->prompt_encoder, kSamPromptEncoderPrefix);
        report.load_module(*m->mask_decoder, kSamMaskDecoderPrefix);
        for (const auto& name : ckpt.names()) {
            if (name.rfind(kSamPrefix, 0) == 0) {
                m->sam_keys.insert(name);
                if (report.consumed().count(name)) m->consumed_keys.insert(name);
            } else {
                report.ignore(name); // other components' weights are not this test's business
            }
        }
        report.finish("SAM grounding encoder"); // throws on missing / mis-shaped / unconsumed keys
        m->image_encoder->eval();
        m->prompt_encoder->eval();
        m->mask_decoder->eval();
        return m;
    }();
    return *loaded;
}

const std::map<std::string, at::Tensor>& gcg() {
    static const auto tensors = test::load_tensors(test::tiny_case_path("gcg.safetensors"));
    return tensors;
}

MaskGeometry gcg_geometry(const SamConfig& c) {
    std::ifstream in(test::tiny_case_path("meta.json"));
    const auto meta = nlohmann::json::parse(in)["cases"]["gcg"];
    return MaskGeometry{c.img_size, meta["resized_hw"][0].get<int64_t>(),
                        meta["resized_hw"][1].get<int64_t>(), meta["image_hw"][0].get<int64_t>(),
                        meta["image_hw"][1].get<int64_t>()};
}

// Prompt encoder + mask decoder for the golden [SEG] embeddings against given image embeddings.
SamMaskDecoderOutput decode(const at::Tensor& image_embeddings,
                            SamMaskDecoderTrace* trace = nullptr) {
    SamModules& m              = modules();
    SamPromptEmbeddings prompt = m.prompt_encoder->forward(gcg().at("seg_embeddings"));
    return m.mask_decoder->forward(image_embeddings, m.prompt_encoder->get_dense_pe(),
                                   prompt.sparse, prompt.dense, trace);
}

double mask_agreement(const at::Tensor& got, const at::Tensor& ref) {
    return (got.to(at::kBool) == ref.to(at::kBool)).to(at::kDouble).mean().item<double>();
}

} // namespace

TEST(GoldenSam, EverySamKeyIsConsumed) {
    SamModules& m = modules();
    EXPECT_FALSE(m.sam_keys.empty());
    std::vector<std::string> unconsumed;
    for (const auto& name : m.sam_keys)
        if (!m.consumed_keys.count(name)) unconsumed.push_back(name);
    EXPECT_TRUE(unconsumed.empty())
        << unconsumed.size() << " unconsumed, first: " << unconsumed.front();
    std::printf("  %zu SAM keys, all consumed\n", m.sam_keys.size());
}

TEST(GoldenSam, ImageEncoderMatches) {
    torch::NoGradGuard no_grad;
    SamModules& m     = modules();
    at::Tensor pixels = sam_input(gcg().at("sam_resized_image"), m.config.grounding_encoder);
    at::Tensor got    = m.image_encoder->forward(pixels);
    EXPECT_TRUE(close_to_reference("sam_image_embeddings", got, gcg().at("sam_image_embeddings")));
}

TEST(GoldenSam, MaskDecoderMatches) {
    torch::NoGradGuard no_grad;
    // From the reference image embeddings, so the decoder is checked on its own.
    SamMaskDecoderOutput out = decode(gcg().at("sam_image_embeddings"));
    EXPECT_TRUE(close_to_reference("low_res_masks", out.low_res_masks, gcg().at("low_res_masks")));
    EXPECT_TRUE(
        close_to_reference("iou_predictions", out.iou_predictions, gcg().at("iou_predictions")));
}

TEST(GoldenSam, PostprocessMatches) {
    torch::NoGradGuard no_grad;
    SamModules& m = modules();
    at::Tensor logits =
        postprocess_masks(gcg().at("low_res_masks"), gcg_geometry(m.config.grounding_encoder));
    // mask_logits are stored as f16: its rounding (2^-11 relative) sits well inside the tolerance.
    EXPECT_TRUE(close_to_reference("mask_logits", logits, gcg().at("mask_logits")));
    const double agree = mask_agreement(binarize_masks(logits), gcg().at("masks"));
    std::printf("  masks (from golden low-res)  agreement %.4f%%\n", 100.0 * agree);
    EXPECT_GE(agree, 0.995);
}

TEST(GoldenSam, EndToEndMatches) {
    torch::NoGradGuard no_grad;
    SamModules& m      = modules();
    const SamConfig& c = m.config.grounding_encoder;
    // One head per attention chunk here (the default budget holds all heads of the tiny model at
    // once), so the chunked path is checked against the reference too.
    const int64_t budget                   = m.image_encoder->attention_chunk_bytes;
    m.image_encoder->attention_chunk_bytes = 1;
    at::Tensor embeddings = m.image_encoder->forward(sam_input(gcg().at("sam_resized_image"), c));
    m.image_encoder->attention_chunk_bytes = budget;
    EXPECT_TRUE(close_to_reference("sam_image_embeddings (1 head/chunk)", embeddings,
                                   gcg().at("sam_image_embeddings")));
    SamMaskDecoderOutput out = decode(embeddings);
    EXPECT_TRUE(
        close_to_reference("low_res_masks (chain)", out.low_res_masks, gcg().at("low_res_masks")));
    at::Tensor logits = postprocess_masks(out.low_res_masks, gcg_geometry(c));
    EXPECT_TRUE(close_to_reference("mask_logits (chain)", logits, gcg().at("mask_logits")));
    const double agree = mask_agreement(binarize_masks(logits), gcg().at("masks"));
    std::printf("  masks (chain)                agreement %.4f%%\n", 100.0 * agree);
    EXPECT_GE(agree, 0.995);
}

// A stop is asked before each block and between two chunks of attention heads (a global block is
// the encoder's longest step at real size). With one head (row) per chunk: windowed blocks have
// (windows × heads) rows, global ones `heads`; a stop asked inside the first global block ends the
// forward there.
TEST(GoldenSam, AStopIsAskedBetweenTwoChunksOfHeads) {
    torch::NoGradGuard no_grad;
    SamModules& m                  = modules();
    const SamConfig& c             = m.config.grounding_encoder;
    const at::Tensor pixels        = sam_input(gcg().at("sam_resized_image"), c);
    const int64_t windows_per_side = (c.grid_size() + c.window_size - 1) / c.window_size;
    int64_t expected = 0, first_global_ask = -1;
    for (int64_t block = 0; block < c.depth; ++block) {
        const bool global = std::find(c.global_attn_indexes.begin(), c.global_attn_indexes.end(),
                                      block) != c.global_attn_indexes.end();
        if (global && first_global_ask < 0) first_global_ask = expected + 1; // after its own ask
        const int64_t rows =
            global ? c.num_heads : windows_per_side * windows_per_side * c.num_heads;
        expected += 1 + (rows - 1);
    }
    ASSERT_GE(first_global_ask, 0) << "the tiny SAM has no global block";

    const int64_t budget                   = m.image_encoder->attention_chunk_bytes;
    m.image_encoder->attention_chunk_bytes = 1;
    int64_t asks                           = 0;
    m.image_encoder->forward(pixels, nullptr, [&] { return ++asks, false; });
    EXPECT_EQ(asks, expected);

    asks = 0;
    EXPECT_THROW(
        m.image_encoder->forward(pixels, nullptr, [&] { return ++asks > first_global_ask; }),
        Cancelled);
    EXPECT_EQ(asks, first_global_ask + 1);
    m.image_encoder->attention_chunk_bytes = budget;
}

// The same modules in bfloat16 (the dtype of real releases): every step runs in bf16 and lands
// near the fp32 reference. Tolerances are bf16-sized (8-bit mantissa), not the fp32 ones.
TEST(GoldenSam, Bfloat16RunsCloseToReference) {
    torch::NoGradGuard no_grad;
    const GlammConfig config = load_glamm_config(test::tiny_model_dir());
    const SamConfig& c       = config.grounding_encoder;
    SamImageEncoder image_encoder(c);
    SamPromptEncoder prompt_encoder(c);
    SamMaskDecoder mask_decoder(c);
    image_encoder->to(at::kBFloat16);
    prompt_encoder->to(at::kBFloat16);
    mask_decoder->to(at::kBFloat16);
    Checkpoint ckpt = Checkpoint::open(test::tiny_model_dir());
    LoadReport report(ckpt);
    report.load_module(*image_encoder, kSamImageEncoderPrefix);
    report.load_module(*prompt_encoder, kSamPromptEncoderPrefix);
    report.load_module(*mask_decoder, kSamMaskDecoderPrefix);

    at::Tensor embeddings = image_encoder->forward(sam_input(gcg().at("sam_resized_image"), c));
    ASSERT_EQ(embeddings.scalar_type(), at::kBFloat16);
    EXPECT_TRUE(close_to_reference("bf16 sam_image_embeddings", embeddings,
                                   gcg().at("sam_image_embeddings"), kBf16Tolerance));
    SamPromptEmbeddings prompt = prompt_encoder->forward(gcg().at("seg_embeddings"));
    at::Tensor dense_pe        = prompt_encoder->get_dense_pe();
    ASSERT_EQ(dense_pe.scalar_type(), at::kBFloat16);
    SamMaskDecoderOutput out =
        mask_decoder->forward(embeddings, dense_pe, prompt.sparse, prompt.dense);
    ASSERT_EQ(out.low_res_masks.scalar_type(), at::kBFloat16);
    EXPECT_TRUE(close_to_reference("bf16 low_res_masks", out.low_res_masks,
                                   gcg().at("low_res_masks"), kBf16Tolerance));
    at::Tensor logits = postprocess_masks(out.low_res_masks, gcg_geometry(c));
    ASSERT_EQ(logits.scalar_type(), at::kFloat);
    EXPECT_TRUE(
        close_to_reference("bf16 mask_logits", logits, gcg().at("mask_logits"), kBf16Tolerance));
    const double agree = mask_agreement(binarize_masks(logits), gcg().at("masks"));
    std::printf("  masks (bf16 chain)           agreement %.4f%%\n", 100.0 * agree);
    EXPECT_GE(agree, 0.99);
}
