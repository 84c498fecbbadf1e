// GlammModel: the immutable, loaded GLaMM (every component, the tokenizer, the configs) and the
// pipeline stages that connect them. The only file that knows the whole pipeline.
// Legend: P image patches (CLIP grid²), C CLIP width, H LLaMA width, D SAM prompt width,
// K [SEG] tokens, N boxes, S expanded sequence, H0×W0 original image.
#pragma once

#include "core/config.h"
#include "grounding/mask_postprocess.h"
#include "grounding/sam_image_encoder.h"
#include "grounding/sam_mask_decoder.h"
#include "grounding/sam_prompt_encoder.h"
#include "grounding/text_projection.h"
#include "language/llama.h"
#include "session.h"
#include "text/tokenizer.h"
#include "vision/clip_vision.h"
#include "vision/image.h"
#include "vision/image_preprocess.h"
#include "vision/mm_projector.h"
#include "vision/region_encoder.h"

#include <c10/core/Device.h>
#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace glamm {

// What `glamm inspect` prints per component.
struct ComponentInfo {
    std::string name;                             // "llama", "sam_image_encoder", ...
    std::string prefix;                           // checkpoint key prefix
    int64_t parameters = 0;                       // elements of parameters and stored buffers
    std::map<std::string, int64_t> stored_dtypes; // dtype on disk -> tensors
};

// Where mm_vision_tower points: `override_dir` when given, else `mm_vision_tower` as a path
// (absolute, or relative to the model folder). Throws Error saying what to download and where
// to put it when neither is a CLIP folder.
std::string resolve_vision_tower(const std::string& model_dir, const std::string& mm_vision_tower,
                                 const std::string& override_dir);

// The CLIP hidden states GLaMM reads for `config` (its select layer and feature, and the region
// encoder's levels when with_region).
ClipFeatureSelection clip_selection_for(const GlammConfig& config, const ClipVisionConfig& clip);

// One image, encoded once: what every question about it needs.
struct EncodedImage {
    int64_t height = 0, width = 0;   // original size H0, W0
    at::Tensor clip_pixel_values;    // [1, 3, S, S] f32
    ClipVisionFeatures clip;         // image features [1, P, C], region levels L × [1, P, C]
    at::Tensor image_embeddings;     // [P, H] projected (mm_projector), model dtype
    SamPreprocessed sam_input;       // pixel values, resized image and h', w'
    at::Tensor sam_image_embeddings; // [1, D, G, G]
    double preprocess_ms = 0, clip_ms = 0, sam_encoder_ms = 0;
    double cache_load_ms = 0; // read from the embedding cache instead (encoder timings are 0)
    // The region encoder's box-independent maps (RegionEncoderImpl::fuse), made by the first
    // encode_regions() on this image and reused by every later box: L × [1, C, h_l, w_l] in the
    // model dtype (~100 MB at GLaMM's size in bf16). Not written to the embedding cache.
    mutable std::vector<at::Tensor> region_maps;
};

// Masks decoded for K [SEG] embeddings.
struct DecodedMasks {
    at::Tensor low_res_masks;   // [K, 1, 4G, 4G]
    at::Tensor iou_predictions; // [K, 1]
    at::Tensor logits;          // [K, H0, W0] f32
    double decoder_ms = 0, postprocess_ms = 0;
};

// One component as the checkpoints store it.
struct ComponentRef {
    std::string name;          // "llama", "sam_image_encoder", ...
    std::string prefix;        // key prefix in its checkpoint
    torch::nn::Module* module; // owned by the GlammModel
    bool in_vision_tower;      // stored in the CLIP folder, not the GLaMM checkpoint
};

// Key prefix of the vision tower's tensors when we write a CLIP folder (HF CLIPVisionModel).
inline constexpr char kClipVisionWritePrefix[] = "vision_model.";

class GlammModel {
public:
    // Loads configs, tokenizer and every component strictly (see session.h ModelOptions).
    static std::unique_ptr<GlammModel> load(const ModelOptions& options);

    std::string model_dir, vision_tower_dir;
    GlammConfig config; // llama.vocab_size resolved from the checkpoint
    ClipVisionConfig clip_config;
    ClipImageProcessorConfig clip_processor;
    ClipFeatureSelection clip_selection;
    c10::Device device{c10::kCPU};
    c10::ScalarType dtype = c10::kFloat;
    std::optional<Tokenizer> tokenizer;
    std::vector<ComponentInfo> components;
    std::vector<std::string> ignored_keys; // known harmless checkpoint keys skipped by name

    // Components (holders are shared pointers; mutable because LibTorch's forward() is non-const
    // although inference never changes a weight).
    mutable ClipVisionModel clip{nullptr};
    mutable MmProjector mm_projector{nullptr};
    mutable RegionEncoder region_encoder{nullptr};
    mutable LlamaForCausalLM llama{nullptr};
    mutable TextProjection text_projection{nullptr};
    mutable SamImageEncoder sam_image_encoder{nullptr};
    mutable SamPromptEncoder sam_prompt_encoder{nullptr};
    mutable SamMaskDecoder sam_mask_decoder{nullptr};

    // Constructs every component from `config` and `clip_config` (clip_selection must be set),
    // with LibTorch's default initialisation and nothing loaded: the starting point of training.
    // `on_llama_layer` (load) is called as each decoder layer is built.
    void build_components(const LlamaLayerBuilt& on_llama_layer = {});
    // The components with their checkpoint prefixes, in load order (region encoder only when
    // config.with_region).
    std::vector<ComponentRef> component_refs() const;
    // The names component_refs() gives a model of `config`, without building it (a training
    // recipe's component lists are checked against them before anything is written).
    static std::vector<std::string> component_names(const GlammConfig& config);
    // Writes every parameter and stored buffer in the release layout, cast to `dtype`: the GLaMM
    // tensors to `glamm_file`, the vision tower's (prefix kClipVisionWritePrefix) to `clip_file`.
    // Both files are written atomically; GlammModel::load reads them back strictly.
    void save_weights(const std::string& glamm_file, const std::string& clip_file,
                      c10::ScalarType dtype) const;

    // Embeddings one image placeholder expands to (CLIP patches; 576 for ViT-L/14-336).
    int64_t num_image_tokens() const { return clip_config.num_patches(); }

    // CLIP (+ projector) and SAM image encoder on one image; `should_abort` is asked before
    // each encoder layer (a stop throws Cancelled).
    EncodedImage encode_image(const Image& image, const ShouldAbort& should_abort = {}) const;
    // Boxes in original-image pixels -> normalised [N, 4] as the reference feeds them: divided
    // by (W, H, W, H); in reduced precision rounded to fp16 then to the model dtype (spec §3.3).
    at::Tensor normalize_boxes(const std::vector<Box>& boxes, int64_t height, int64_t width) const;
    // Region encoder: [N, H] (N may be 0). The box-independent maps are made at the first call
    // on `image` and kept in it (EncodedImage::region_maps); `should_abort` is asked before each
    // of their convolutions (a stop throws Cancelled and keeps none).
    at::Tensor encode_regions(const EncodedImage& image, const at::Tensor& boxes_normalized,
                              const ShouldAbort& should_abort = {}) const;
    // Prompt (or prompt + answer) ids with one image slot -> inputs_embeds [1, S, H].
    at::Tensor assemble(const std::vector<int64_t>& ids, const EncodedImage& image,
                        const at::Tensor& region_features) const;
    // text_hidden_fcs + SAM prompt encoder + mask decoder + post-processing for K hidden states
    // [K, H] (the states before each [SEG]).
    DecodedMasks decode_masks(const EncodedImage& image, const at::Tensor& seg_hidden) const;
    // Where SAM's low-res masks map back to an image of height × width that preprocess_sam gave
    // `sam` for (ref: Sam.postprocess_masks).
    MaskGeometry mask_geometry(const SamPreprocessed& sam, int64_t height, int64_t width) const;
    // The llava_v1 first-turn prompt for an instruction.
    std::string first_turn_prompt(const std::string& instruction) const;

    // Parameter counts and dtypes, for `glamm inspect`.
    std::string describe() const;
};

} // namespace glamm
