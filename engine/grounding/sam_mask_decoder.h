// SAM mask decoder: two-way transformer between prompt tokens and the image embedding, output
// upscaling, hypernetwork MLPs and the IoU head (segment_anything modeling/mask_decoder.py,
// transformer.py, as shipped in groundingLMM model/SAM).
// Legend: N prompts, D prompt_embed_dim, G grid, M num_mask_tokens, T tokens (1 + M + prompts).
#pragma once

#include "core/config.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <utility>

namespace glamm {

// Checkpoint prefix of the mask decoder's weights.
inline constexpr char kSamMaskDecoderPrefix[] = "model.grounding_encoder.mask_decoder.";

// ref: mask_decoder.py MLP — `layers.<i>` Linear, ReLU between layers, no output activation.
struct SamMlpImpl : torch::nn::Module {
    SamMlpImpl(int64_t input_dim, int64_t hidden_dim, int64_t output_dim, int64_t num_layers);
    at::Tensor forward(const at::Tensor& x); // [..., input_dim] -> [..., output_dim]
    torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(SamMlp);

// ref: transformer.py Attention — q/k/v projections to `internal_dim` (D / downsample), heads,
// softmax(q kᵀ / sqrt(head_dim)) v, out_proj back to D.
struct SamDecoderAttentionImpl : torch::nn::Module {
    SamDecoderAttentionImpl(int64_t dim, int64_t num_heads, int64_t downsample_rate);
    // q [N, Tq, D], k [N, Tk, D], v [N, Tk, D] -> [N, Tq, D]
    at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

    int64_t num_heads;
    torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(SamDecoderAttention);

// ref: transformer.py TwoWayTransformer — `layers.<i>`, final_attn_token_to_image, norm_final_attn.
struct SamTwoWayTransformerImpl : torch::nn::Module {
    explicit SamTwoWayTransformerImpl(const SamConfig& config);
    // image [N, D, G, G], image_pe [N, D, G, G], tokens [N, T, D] ->
    // (queries [N, T, D], keys [N, G*G, D]).
    std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& image, const at::Tensor& image_pe,
                                              const at::Tensor& tokens);

    torch::nn::ModuleList layers{nullptr};
    SamDecoderAttention final_attn_token_to_image{nullptr};
    torch::nn::LayerNorm norm_final_attn{nullptr};
};
TORCH_MODULE(SamTwoWayTransformer);

// Output of one decoder call (multimask_output = false, as GLaMM calls it).
struct SamMaskDecoderOutput {
    at::Tensor low_res_masks;   // [N, 1, 4G, 4G] logits of mask token 0, module dtype
    at::Tensor iou_predictions; // [N, 1], module dtype (GLaMM does not use it)
};

// Intermediate tensors for bisecting against the reference dumps.
struct SamMaskDecoderTrace {
    at::Tensor tokens;   // [N, T, D] two-way transformer queries
    at::Tensor image;    // [N, G*G, D] two-way transformer keys
    at::Tensor upscaled; // [N, D/8, 4G, 4G] after output_upscaling
};

struct SamMaskDecoderImpl : torch::nn::Module {
    explicit SamMaskDecoderImpl(const SamConfig& config);

    // image_embeddings [1, D, G, G] (one image shared by all prompts, as GLaMM decodes) or
    // [N, D, G, G] (prompt i against image i: the trainer decodes a whole batch at once),
    // image_pe [1, D, G, G] (get_dense_pe), sparse [N, P, D], dense [N, D, G, G] (the prompt
    // encoder's output). N = 0 gives empty outputs.
    SamMaskDecoderOutput forward(const at::Tensor& image_embeddings, const at::Tensor& image_pe,
                                 const at::Tensor& sparse, const at::Tensor& dense,
                                 SamMaskDecoderTrace* trace = nullptr);

    SamConfig config;
    SamTwoWayTransformer transformer{nullptr};
    torch::nn::Embedding iou_token{nullptr};   // [1, D]
    torch::nn::Embedding mask_tokens{nullptr}; // [M, D]
    torch::nn::Sequential output_upscaling{nullptr};
    torch::nn::ModuleList output_hypernetworks_mlps{nullptr}; // M × SamMlp(D, D, D/8, 3)
    SamMlp iou_prediction_head{nullptr};
};
TORCH_MODULE(SamMaskDecoder);

} // namespace glamm
