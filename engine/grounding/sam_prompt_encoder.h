// SAM prompt encoder in GLaMM's variant: the [SEG] text embeddings are the sparse prompts, no mask
// input (dense = no_mask_embed), plus the dense random-Fourier positional encoding of the grid.
// Legend: N prompts ([SEG] tokens), D prompt_embed_dim, G grid (img_size / patch_size).
#pragma once

#include "core/config.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

namespace glamm {

// Checkpoint prefix of the prompt encoder's weights.
inline constexpr char kSamPromptEncoderPrefix[] = "model.grounding_encoder.prompt_encoder.";

// What the mask decoder takes as prompts.
struct SamPromptEmbeddings {
    at::Tensor sparse; // [N, 1, D] — the text embeddings as given
    at::Tensor dense;  // [N, D, G, G] — no_mask_embed broadcast (an expanded view, not copied)
};

// ref: groundingLMM model/SAM/modeling/prompt_encoder.py PositionEmbeddingRandom
struct SamPositionEmbeddingRandomImpl : torch::nn::Module {
    explicit SamPositionEmbeddingRandomImpl(int64_t num_pos_feats);
    // Encoding of the G×G grid cell centres: [D, G, G] with D = 2 * num_pos_feats (sin then cos).
    at::Tensor forward(int64_t grid_h, int64_t grid_w);

    at::Tensor positional_encoding_gaussian_matrix; // [2, D/2], a buffer loaded from the checkpoint
};
TORCH_MODULE(SamPositionEmbeddingRandom);

// Registers every key of the reference module (point_embeddings.0..3, not_a_point_embed,
// no_mask_embed, mask_downscaling.{0,1,3,4,6}, pe_layer.*) so strict loading consumes them; only
// no_mask_embed and pe_layer take part in GLaMM's forward.
struct SamPromptEncoderImpl : torch::nn::Module {
    explicit SamPromptEncoderImpl(const SamConfig& config);

    // text_embeds: [N, D] or [N, 1, D] (the projected [SEG] hidden states). Sparse = the text
    // embeddings cast to the module's dtype; dense = no_mask_embed broadcast to [N, D, G, G].
    // N may be 0.
    SamPromptEmbeddings forward(const at::Tensor& text_embeds);

    // get_dense_pe: [1, D, G, G], computed in the module's dtype. The reference (model.bfloat16())
    // computes it in bf16, rounding the sin/cos arguments (up to ~0.06 rad); a bf16 module repeats
    // those steps in the same order, an fp32 module (the golden tests) is more accurate.
    at::Tensor get_dense_pe();

    SamConfig config;
    SamPositionEmbeddingRandom pe_layer{nullptr};
    torch::nn::ModuleList point_embeddings{nullptr}; // 4 × Embedding(1, D), unused by GLaMM
    torch::nn::Embedding not_a_point_embed{nullptr}; // unused by GLaMM
    torch::nn::Sequential mask_downscaling{nullptr}; // unused by GLaMM
    torch::nn::Embedding no_mask_embed{nullptr};     // [1, D]
};
TORCH_MODULE(SamPromptEncoder);

} // namespace glamm
