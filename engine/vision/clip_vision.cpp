// CLIP ViT vision tower forward (HF transformers CLIPVisionModel at GLaMM's pinned 4.28).
// Legend: B batch (1), T tokens (1 CLS + N patches), N patches (grid²), C hidden, S image side,
// h heads, d head dim.
#include "vision/clip_vision.h"
#include "core/activations.h"
#include "core/attention.h"

#include "core/checkpoint.h"
#include "core/error.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace glamm {

namespace {

// GLaMM takes every third hidden state below the selected one as a region level
// (hidden_states[select_layer::-3] in llava_with_region_arch.py).
constexpr int64_t kRegionLevelStride = 3;
// HF ACT2FN["quick_gelu"]: x * sigmoid(1.702 x).
constexpr double kQuickGeluScale = 1.702;

} // namespace

int64_t ClipFeatureSelection::deepest() const {
    int64_t deepest = image_layer;
    for (int64_t layer : region_layers) deepest = std::max(deepest, layer);
    return deepest;
}

ClipFeatureSelection clip_feature_selection(const ClipVisionConfig& config,
                                            int64_t mm_vision_select_layer,
                                            int64_t num_region_levels,
                                            const std::string& select_feature) {
    // hidden_states has one entry per layer plus the embeddings (after pre_layrnorm).
    const int64_t num_states = config.num_hidden_layers + 1;
    ClipFeatureSelection selection;
    // ref: groundingLMM model/llava/model/multimodal_encoder/clip_encoder.py feature_select
    selection.image_layer =
        mm_vision_select_layer < 0 ? num_states + mm_vision_select_layer : mm_vision_select_layer;
    if (selection.image_layer < 0 || selection.image_layer >= num_states)
        fail("mm_vision_select_layer ", mm_vision_select_layer, " is outside the ", num_states,
             " hidden states of a ", config.num_hidden_layers, "-layer CLIP tower");
    if (select_feature == "patch")
        selection.drop_cls = true;
    else if (select_feature == "cls_patch")
        selection.drop_cls = false;
    else
        fail("unsupported mm_vision_select_feature \"", select_feature,
             "\" (expected \"patch\" or \"cls_patch\")");

    // ref: groundingLMM model/llava/llava_with_region_arch.py prepare_inputs_labels_for_multimodal
    if (num_region_levels < 0) fail("negative number of region levels: ", num_region_levels);
    std::vector<int64_t> every_third; // deepest first
    for (int64_t k = selection.image_layer; k >= 0; k -= kRegionLevelStride)
        every_third.push_back(k);
    if (static_cast<int64_t>(every_third.size()) < num_region_levels)
        fail("the region encoder wants ", num_region_levels, " CLIP levels but a ",
             config.num_hidden_layers, "-layer tower read from hidden state ",
             selection.image_layer, " in steps of ", kRegionLevelStride, " has only ",
             every_third.size());
    every_third.resize(static_cast<size_t>(num_region_levels));
    selection.region_layers.assign(every_third.rbegin(), every_third.rend());
    return selection;
}

// ---------------------------------------------------------------------------------------------
// ref: transformers models/clip/modeling_clip.py CLIPVisionEmbeddings

ClipVisionEmbeddingsImpl::ClipVisionEmbeddingsImpl(const ClipVisionConfig& config_)
    : config(config_) {
    class_embedding = register_parameter("class_embedding", torch::zeros({config.hidden_size}));
    patch_embedding = register_module(
        "patch_embedding",
        torch::nn::Conv2d(
            torch::nn::Conv2dOptions(config.num_channels, config.hidden_size, config.patch_size)
                .stride(config.patch_size)
                .bias(false)));
    position_embedding = register_module(
        "position_embedding", torch::nn::Embedding(config.num_positions(), config.hidden_size));
}

at::Tensor ClipVisionEmbeddingsImpl::forward(const at::Tensor& pixel_values) {
    if (pixel_values.dim() != 4 || pixel_values.size(1) != config.num_channels ||
        pixel_values.size(2) != config.image_size || pixel_values.size(3) != config.image_size)
        fail("CLIP expects pixel values [B, ", config.num_channels, ", ", config.image_size, ", ",
             config.image_size, "], got ", pixel_values.sizes());
    const at::Tensor pixels =
        pixel_values.to(class_embedding.device(), class_embedding.scalar_type());
    const int64_t batch = pixels.size(0);
    // [B, C, g, g] -> [B, N, C], patches in row-major order
    const at::Tensor patches = patch_embedding(pixels).flatten(2).transpose(1, 2);
    const at::Tensor cls     = class_embedding.view({1, 1, -1}).expand({batch, 1, -1});
    return torch::cat({cls, patches}, 1) + position_embedding->weight.unsqueeze(0); // [B, T, C]
}

// ---------------------------------------------------------------------------------------------
// ref: transformers models/clip/modeling_clip.py CLIPAttention

ClipAttentionImpl::ClipAttentionImpl(const ClipVisionConfig& config)
    : num_heads(config.num_attention_heads), head_dim(config.head_dim()) {
    if (head_dim * num_heads != config.hidden_size)
        fail("CLIP hidden_size ", config.hidden_size, " is not divisible by ", num_heads, " heads");
    auto linear = [&](const char* name) {
        return register_module(name, torch::nn::Linear(config.hidden_size, config.hidden_size));
    };
    k_proj   = linear("k_proj");
    v_proj   = linear("v_proj");
    q_proj   = linear("q_proj");
    out_proj = linear("out_proj");
}

at::Tensor ClipAttentionImpl::forward(const at::Tensor& hidden) {
    const int64_t batch = hidden.size(0), tokens = hidden.size(1);
    auto heads = [&](const at::Tensor& x) { // [B, T, C] -> [B, h, T, d]
        return x.view({batch, tokens, num_heads, head_dim}).transpose(1, 2);
    };
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
    if (fused_attention_enabled(hidden)) // the kernel scales by 1/sqrt(d) itself
        return out_proj(fused_attention(heads(q_proj(hidden)), heads(k_proj(hidden)),
                                        heads(v_proj(hidden)), {}, false)
                            .transpose(1, 2)
                            .reshape({batch, tokens, num_heads * head_dim}));
    const at::Tensor query   = heads(q_proj(hidden) * scale);
    const at::Tensor key     = heads(k_proj(hidden));
    const at::Tensor value   = heads(v_proj(hidden));
    const at::Tensor weights = torch::softmax(torch::matmul(query, key.transpose(-1, -2)), -1);
    const at::Tensor context = torch::matmul(weights, value) // [B, h, T, d]
                                   .transpose(1, 2)
                                   .reshape({batch, tokens, num_heads * head_dim}); // [B, T, C]
    return out_proj(context);
}

// ---------------------------------------------------------------------------------------------
// ref: transformers models/clip/modeling_clip.py CLIPMLP

ClipMlpImpl::ClipMlpImpl(const ClipVisionConfig& config) : hidden_act(config.hidden_act) {
    if (hidden_act != "quick_gelu" && hidden_act != "gelu")
        fail("unsupported CLIP hidden_act \"", hidden_act, "\" (expected quick_gelu or gelu)");
    fc1 = register_module("fc1", torch::nn::Linear(config.hidden_size, config.intermediate_size));
    fc2 = register_module("fc2", torch::nn::Linear(config.intermediate_size, config.hidden_size));
}

at::Tensor ClipMlpImpl::forward(const at::Tensor& hidden) {
    at::Tensor x = fc1(hidden); // [B, T, intermediate]
    x = hidden_act == "quick_gelu" ? x * torch::sigmoid(kQuickGeluScale * x) : glamm::gelu(x);
    return fc2(x);
}

// ---------------------------------------------------------------------------------------------
// ref: transformers models/clip/modeling_clip.py CLIPEncoderLayer

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const ClipVisionConfig& config) {
    auto norm = [&] {
        return torch::nn::LayerNorm(
            torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps));
    };
    self_attn   = register_module("self_attn", ClipAttention(config));
    layer_norm1 = register_module("layer_norm1", norm());
    mlp         = register_module("mlp", ClipMlp(config));
    layer_norm2 = register_module("layer_norm2", norm());
}

at::Tensor ClipEncoderLayerImpl::forward(const at::Tensor& residual) {
    at::Tensor hidden = residual + self_attn(layer_norm1(residual));
    return hidden + mlp(layer_norm2(hidden));
}

ClipEncoderImpl::ClipEncoderImpl(const ClipVisionConfig& config) {
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < config.num_hidden_layers; ++i)
        layers->push_back(ClipEncoderLayer(config));
}

// ---------------------------------------------------------------------------------------------
// ref: transformers models/clip/modeling_clip.py CLIPVisionTransformer

ClipVisionModelImpl::ClipVisionModelImpl(const ClipVisionConfig& config_) : config(config_) {
    auto norm = [&] {
        return torch::nn::LayerNorm(
            torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps));
    };
    embeddings     = register_module("embeddings", ClipVisionEmbeddings(config));
    pre_layrnorm   = register_module("pre_layrnorm", norm());
    encoder        = register_module("encoder", ClipEncoder(config));
    post_layernorm = register_module("post_layernorm", norm()); // loaded, never applied
}

std::vector<at::Tensor> ClipVisionModelImpl::hidden_states(const at::Tensor& pixel_values,
                                                           int64_t last_index,
                                                           const ShouldAbort& should_abort) {
    if (last_index < 0 || last_index > config.num_hidden_layers)
        fail("CLIP hidden state ", last_index, " requested from a ", config.num_hidden_layers,
             "-layer tower");
    std::vector<at::Tensor> states;
    states.reserve(static_cast<size_t>(last_index + 1));
    at::Tensor residual = pre_layrnorm(embeddings(pixel_values)); // [B, T, C]
    states.push_back(residual);
    for (int64_t i = 0; i < last_index; ++i) {
        stop_if_asked(should_abort, "the CLIP vision tower");
        residual =
            encoder->layers->at<ClipEncoderLayerImpl>(static_cast<size_t>(i)).forward(residual);
        states.push_back(residual);
    }
    return states;
}

ClipVisionFeatures ClipVisionModelImpl::forward(const at::Tensor& pixel_values,
                                                const ClipFeatureSelection& selection,
                                                const ShouldAbort& should_abort) {
    const std::vector<at::Tensor> states =
        hidden_states(pixel_values, selection.deepest(), should_abort);
    auto pick = [&](int64_t index, int64_t first_token) { // [B, T, C] -> [B, T - first, C]
        return states[static_cast<size_t>(index)].slice(1, first_token).contiguous();
    };
    ClipVisionFeatures features;
    features.image_features = pick(selection.image_layer, selection.drop_cls ? 1 : 0);
    // Region levels always drop CLS (item[:, 1:] in the reference), whatever select_feature says.
    for (int64_t layer : selection.region_layers) features.region_levels.push_back(pick(layer, 1));
    return features;
}

std::string clip_vision_prefix(const Checkpoint& checkpoint) {
    const std::string probe = "embeddings.class_embedding";
    if (checkpoint.contains("vision_model." + probe)) return "vision_model.";
    if (checkpoint.contains(probe)) return "";
    fail("no CLIP vision tower in the checkpoint (neither vision_model.", probe, " nor ", probe,
         ")");
}

} // namespace glamm
