// `glamm make-weights`: random weights in the layout and sizes of a release (GLaMM-7B, Vicuna-7B,
// SAM ViT-H, CLIP ViT-L/14-336, or the tiny golden model's widths), so that real-size benchmarks
// need no download. The key lists are derived from the configs by functions that mirror the
// engine's module constructors (a unit test checks them against named_parameters()/buffers()),
// and tensors are written one at a time (never the whole model in memory).
#pragma once

#include "core/config.h"
#include "core/safetensors.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace glamm {

// How a tensor is filled.
enum class WeightInit {
    kNormal, // normal(0, kMakeWeightsStd)
    kOnes,   // norm scales (LayerNorm, RMSNorm, GroupNorm, LayerNorm2d weights)
    kZeros,  // norm shifts
};

// One tensor of a component, named as the component's module registers it (no prefix).
struct WeightSpec {
    std::string name;
    std::vector<int64_t> shape;
    WeightInit init = WeightInit::kNormal;
};

// Key lists of each component, mirroring the module constructors (parameters and stored buffers).
std::vector<WeightSpec> llama_weight_specs(const LlamaConfig& config); // vocab_size resolved
std::vector<WeightSpec> clip_vision_weight_specs(const ClipVisionConfig& config);
std::vector<WeightSpec> mm_projector_weight_specs(const GlammConfig& config);
std::vector<WeightSpec> region_encoder_weight_specs(const RegionEncoderConfig& config,
                                                    int64_t channels, int64_t out_dims);
std::vector<WeightSpec> text_projection_weight_specs(int64_t hidden_size, int64_t out_dim);
std::vector<WeightSpec> sam_image_encoder_weight_specs(const SamConfig& config);
std::vector<WeightSpec> sam_prompt_encoder_weight_specs(const SamConfig& config);
std::vector<WeightSpec> sam_mask_decoder_weight_specs(const SamConfig& config);

// The release shapes `--like` names: "glamm-7b", "vicuna-7b", "sam-vit-h", "clip-vit-l-336",
// "tiny" (the widths of tests/data/golden/tiny).
const std::vector<std::string>& make_weights_presets();
// GLaMM config of a preset (vocab resolved; region pos_embed_dim as the release stores it).
GlammConfig preset_glamm_config(const std::string& like);
ClipVisionConfig preset_clip_config(const std::string& like);

struct MakeWeightsOptions {
    std::string like;          // one of make_weights_presets()
    std::string out_dir;       // created; must not hold weights yet
    std::string tokenizer_dir; // tokenizer files to copy (glamm-7b, vicuna-7b, tiny)
    // Storage dtype of the parts a release stores in reduced precision (kBFloat16 or kFloat);
    // SAM (grounding_encoder) and text_hidden_fcs are always f32, as in the real releases.
    bool bf16                = true;
    uint64_t seed            = 0;
    uint64_t max_shard_bytes = 4ull << 30;
    // Called after each shard: (file, bytes written so far, total bytes).
    std::function<void(const std::string&, uint64_t, uint64_t)> progress;
};

// What make_weights wrote.
struct MakeWeightsResult {
    std::vector<std::string> folders; // the model folder, then the CLIP folder for glamm presets
    uint64_t tensors = 0, bytes = 0;
};

// Writes the folder(s). glamm-7b / tiny write OUT (config.json, tokenizer, sharded safetensors +
// index) and a sibling OUT-clip (CLIPVisionModel config + vision_model.* weights) that
// mm_vision_tower points to. Throws Error on an unknown preset or an unusable output folder.
MakeWeightsResult make_weights(const MakeWeightsOptions& options);

} // namespace glamm
