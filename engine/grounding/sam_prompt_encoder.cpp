// SAM prompt encoder, GLaMM's text-prompt path, and the dense positional encoding.
// Legend: N prompts, D prompt_embed_dim, G grid.
#include "grounding/sam_prompt_encoder.h"

#include "core/error.h"
#include "grounding/sam_image_encoder.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>

#include <cmath>

namespace glamm {

namespace {
// PromptEncoder.num_point_embeddings: positive/negative point + two box corners (fixed in SAM).
constexpr int64_t kNumPointEmbeddings = 4;
// mask_downscaling's first conv has mask_in_chans / 4 outputs (fixed in SAM).
constexpr int64_t kMaskChannelDivisor = 4;
} // namespace

SamPositionEmbeddingRandomImpl::SamPositionEmbeddingRandomImpl(int64_t num_pos_feats) {
    positional_encoding_gaussian_matrix =
        register_buffer("positional_encoding_gaussian_matrix", at::zeros({2, num_pos_feats}));
}

at::Tensor SamPositionEmbeddingRandomImpl::forward(int64_t grid_h, int64_t grid_w) {
    // ref: prompt_encoder.py PositionEmbeddingRandom.forward / _pe_encoding
    const at::Tensor& gaussian = positional_encoding_gaussian_matrix; // [2, F]
    auto options               = gaussian.options();
    at::Tensor grid            = at::ones({grid_h, grid_w}, options);
    at::Tensor y_embed         = (grid.cumsum(0) - 0.5) / static_cast<double>(grid_h);
    at::Tensor x_embed         = (grid.cumsum(1) - 0.5) / static_cast<double>(grid_w);
    at::Tensor coords          = at::stack({x_embed, y_embed}, -1); // [G, G, 2]
    coords                     = 2 * coords - 1;
    coords                     = at::matmul(coords, gaussian); // [G, G, F]
    coords                     = coords * (2.0 * M_PI);
    at::Tensor pe              = at::cat({at::sin(coords), at::cos(coords)}, -1); // [G, G, 2F]
    return pe.permute({2, 0, 1});                                                 // [2F, G, G]
}

SamPromptEncoderImpl::SamPromptEncoderImpl(const SamConfig& c) : config(c) {
    const int64_t D = c.prompt_embed_dim;
    if (D % 2 != 0) fail("SAM prompt encoder: prompt_embed_dim ", D, " must be even");
    if (c.mask_in_chans % kMaskChannelDivisor != 0)
        fail("SAM prompt encoder: mask_in_chans ", c.mask_in_chans, " must be divisible by ",
             kMaskChannelDivisor);
    pe_layer = register_module("pe_layer", SamPositionEmbeddingRandom(D / 2));

    point_embeddings = register_module("point_embeddings", torch::nn::ModuleList());
    for (int64_t i = 0; i < kNumPointEmbeddings; ++i)
        point_embeddings->push_back(torch::nn::Embedding(1, D));
    not_a_point_embed = register_module("not_a_point_embed", torch::nn::Embedding(1, D));

    // ref: PromptEncoder.mask_downscaling (conv, LayerNorm2d, GELU, conv, LayerNorm2d, GELU, conv)
    const int64_t m = c.mask_in_chans, m4 = m / kMaskChannelDivisor;
    const double eps = c.encoder_layer_norm_eps;
    mask_downscaling = register_module(
        "mask_downscaling",
        torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, m4, 2).stride(2)),
                              SamLayerNorm2d(m4, eps), torch::nn::GELU(),
                              torch::nn::Conv2d(torch::nn::Conv2dOptions(m4, m, 2).stride(2)),
                              SamLayerNorm2d(m, eps), torch::nn::GELU(),
                              torch::nn::Conv2d(torch::nn::Conv2dOptions(m, D, 1))));
    no_mask_embed = register_module("no_mask_embed", torch::nn::Embedding(1, D));
}

SamPromptEmbeddings SamPromptEncoderImpl::forward(const at::Tensor& text_embeds) {
    const int64_t D = config.prompt_embed_dim, G = config.grid_size();
    at::Tensor sparse = text_embeds;
    if (sparse.dim() == 2) sparse = sparse.unsqueeze(1);
    if (sparse.dim() != 3 || sparse.size(1) != 1 || sparse.size(2) != D)
        fail("SAM prompt encoder: expected text embeddings [N, ", D, "] or [N, 1, ", D, "], got ",
             text_embeds.sizes());
    const at::Tensor& table = no_mask_embed->weight; // [1, D]
    const int64_t n         = sparse.size(0);
    // ref: PromptEncoder.forward — text_embeds appended to an empty sparse set; no masks given
    SamPromptEmbeddings out;
    out.sparse = sparse.to(table.scalar_type());                    // [N, 1, D]
    out.dense  = table.reshape({1, -1, 1, 1}).expand({n, D, G, G}); // [N, D, G, G]
    return out;
}

at::Tensor SamPromptEncoderImpl::get_dense_pe() {
    const int64_t G = config.grid_size();
    return pe_layer(G, G).unsqueeze(0); // [1, D, G, G]
}

} // namespace glamm
