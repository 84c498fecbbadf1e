// Golden parity of text_hidden_fcs on the tiny GLaMM: the golden final-norm hidden state just
// before each [SEG] projected to the SAM prompt width equals the reference seg_embeddings.
// Legend: K [SEG] tokens, S expanded sequence, H hidden size, D out_dim.
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "grounding/text_projection.h"
#include "support/test_support.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fstream>

namespace glamm {
namespace {

TEST(TextProjectionGolden, SegEmbeddingsMatch) {
    torch::NoGradGuard no_grad;
    const GlammConfig config    = load_glamm_config(test::tiny_model_dir());
    const Checkpoint checkpoint = Checkpoint::open(test::tiny_model_dir());
    TextProjection projection(config.llama.hidden_size, config.out_dim);
    LoadReport report(checkpoint);
    report.load_module(*projection, kTextProjectionPrefix);
    for (const char* other :
         {"model.embed_tokens.", "model.layers.", "model.norm.", "lm_head.", "model.mm_projector.",
          "model.region_encoder.", "model.grounding_encoder."})
        report.ignore(other);
    report.finish("tiny text_hidden_fcs"); // every key of the projection, nothing else left over
    projection->eval();

    std::ifstream meta_file(test::tiny_case_path("meta.json"));
    const auto meta         = nlohmann::json::parse(meta_file);
    auto golden             = test::load_tensors(test::tiny_case_path("gcg.safetensors"));
    const at::Tensor hidden = golden.at("last_hidden_state")[0]; // [S, H]
    // [SEG] at index t of input_ids (after the one image slot of P rows) sits at expanded
    // position t + P - 1; its producing state is the one before.
    const int64_t num_image = golden.at("projected_image_features").size(1);
    std::vector<int64_t> rows;
    for (const auto& t : meta.at("cases").at("gcg").at("seg_positions"))
        rows.push_back(t.get<int64_t>() + num_image - 2);
    ASSERT_FALSE(rows.empty());
    const at::Tensor selected   = hidden.index_select(0, at::tensor(rows, at::kLong)); // [K, H]
    const at::Tensor embeddings = projection(selected);                                // [K, D]
    EXPECT_EQ(embeddings.size(1), config.out_dim);
    EXPECT_TRUE(
        test::close_to_reference("seg_embeddings", embeddings, golden.at("seg_embeddings")));

    // No [SEG]: an empty batch stays empty.
    EXPECT_EQ(projection(selected.narrow(0, 0, 0)).sizes(), (at::IntArrayRef{0, config.out_dim}));
    // A wrong width is an Error, not a LibTorch crash.
    EXPECT_THROW(projection(at::zeros({1, config.llama.hidden_size + 1})), Error);
}

} // namespace
} // namespace glamm
