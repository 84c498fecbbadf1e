// CLIP ViT vision tower (HF transformers CLIPVisionModel: pre-LN, quick_gelu) as GLaMM's global
// image encoder; returns the hidden states GLaMM consumes (image tokens and region levels).
// Legend: B batch (1), T tokens (1 CLS + N patches), N patches (grid²), C hidden, S image side.
#pragma once

#include "core/config.h"
#include "core/error.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

namespace glamm {

class Checkpoint;

// Which hidden states GLaMM reads, as indices into HF's `hidden_states` tuple (0 = after
// pre_layrnorm, k = after encoder layer k-1).
struct ClipFeatureSelection {
    int64_t image_layer = 0;            // mm_vision_select_layer resolved (-2 -> L-1)
    std::vector<int64_t> region_layers; // region encoder levels, shallowest first (may be empty)
    bool drop_cls = true;               // mm_vision_select_feature "patch" (vs "cls_patch")

    // Hidden states up to this index are needed: encoder layers [0, deepest()) are run.
    int64_t deepest() const;
};

// Resolves GLaMM's choice from the config (ref: groundingLMM model/llava/llava_with_region_arch.py
// prepare_inputs_labels_for_multimodal): image tokens = hidden_states[select_layer]; region levels
// = hidden_states[select_layer::-3] reversed, the last `num_region_levels` (for 24 layers and -2:
// 14, 17, 20, 23; for 12 layers: 2, 5, 8, 11). `num_region_levels` 0 selects no levels.
// `select_feature` is "patch" or "cls_patch". Throws Error if an index falls outside the tower or
// there are fewer hidden states than levels.
ClipFeatureSelection clip_feature_selection(const ClipVisionConfig& config,
                                            int64_t mm_vision_select_layer,
                                            int64_t num_region_levels,
                                            const std::string& select_feature = "patch");

// What the pipeline reads from the tower, in the module's dtype.
struct ClipVisionFeatures {
    at::Tensor image_features;             // [B, N, C] hidden_states[image_layer] (CLS dropped
                                           // unless drop_cls is false: [B, T, C])
    std::vector<at::Tensor> region_levels; // each [B, N, C], shallowest first (CLS always dropped)
};

// embeddings.{class_embedding, patch_embedding, position_embedding}
struct ClipVisionEmbeddingsImpl : torch::nn::Module {
    explicit ClipVisionEmbeddingsImpl(const ClipVisionConfig& config);
    // [B, 3, S, S] -> [B, T, C]: patch conv, CLS prepended, learned positions added.
    at::Tensor forward(const at::Tensor& pixel_values);

    ClipVisionConfig config;
    at::Tensor class_embedding; // [C]
    torch::nn::Conv2d patch_embedding{nullptr};
    torch::nn::Embedding position_embedding{nullptr};
};
TORCH_MODULE(ClipVisionEmbeddings);

// encoder.layers.i.self_attn.{q,k,v,out}_proj (biased; q scaled by head_dim^-0.5).
struct ClipAttentionImpl : torch::nn::Module {
    explicit ClipAttentionImpl(const ClipVisionConfig& config);
    at::Tensor forward(const at::Tensor& hidden); // [B, T, C] -> [B, T, C]

    int64_t num_heads, head_dim;
    torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(ClipAttention);

// encoder.layers.i.mlp.{fc1, fc2} with the config's activation (quick_gelu or gelu).
struct ClipMlpImpl : torch::nn::Module {
    explicit ClipMlpImpl(const ClipVisionConfig& config);
    at::Tensor forward(const at::Tensor& hidden); // [B, T, C] -> [B, T, C]

    std::string hidden_act;
    torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(ClipMlp);

// encoder.layers.i: pre-LN residual block.
struct ClipEncoderLayerImpl : torch::nn::Module {
    explicit ClipEncoderLayerImpl(const ClipVisionConfig& config);
    at::Tensor forward(const at::Tensor& residual); // [B, T, C] -> [B, T, C]

    ClipAttention self_attn{nullptr};
    torch::nn::LayerNorm layer_norm1{nullptr};
    ClipMlp mlp{nullptr};
    torch::nn::LayerNorm layer_norm2{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

// encoder.layers.{0 .. L-1}
struct ClipEncoderImpl : torch::nn::Module {
    explicit ClipEncoderImpl(const ClipVisionConfig& config);

    torch::nn::ModuleList layers{nullptr}; // of ClipEncoderLayer
};
TORCH_MODULE(ClipEncoder);

// The vision transformer. named_parameters() equal the checkpoint keys under the prefix that
// clip_vision_prefix() finds ("vision_model." in a CLIPModel/CLIPVisionModel checkpoint).
// `post_layernorm` is registered so that strict loading consumes its keys, but never applied:
// GLaMM reads pre-final-norm hidden states.
struct ClipVisionModelImpl : torch::nn::Module {
    explicit ClipVisionModelImpl(const ClipVisionConfig& config);

    // pixel_values [B, 3, S, S] (any float dtype; cast to the module's) -> hidden_states[0 ..
    // last_index] with CLS, each [B, T, C]. Runs only the layers that index needs; asks
    // `should_abort` before each (a stop throws Cancelled).
    std::vector<at::Tensor> hidden_states(const at::Tensor& pixel_values, int64_t last_index,
                                          const ShouldAbort& should_abort = {});
    // pixel_values [B, 3, S, S] -> the selected features; runs encoder layers [0,
    // selection.deepest()) only.
    ClipVisionFeatures forward(const at::Tensor& pixel_values,
                               const ClipFeatureSelection& selection,
                               const ShouldAbort& should_abort = {});

    ClipVisionConfig config;
    ClipVisionEmbeddings embeddings{nullptr};
    torch::nn::LayerNorm pre_layrnorm{nullptr}; // (sic) HF's spelling
    ClipEncoder encoder{nullptr};
    torch::nn::LayerNorm post_layernorm{nullptr};
};
TORCH_MODULE(ClipVisionModel);

// The key prefix of the vision tower in a checkpoint: "vision_model." when the file holds
// `vision_model.embeddings.class_embedding` (HF CLIPModel / CLIPVisionModel saves), "" when the
// keys start at `embeddings.` (a bare vision transformer). Throws Error if neither is present.
std::string clip_vision_prefix(const Checkpoint& checkpoint);

} // namespace glamm
