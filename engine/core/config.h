// config.json -> one typed struct per component. Field names are the JSON keys; values a real
// GLaMM config leaves out default to the released model's (documented per field). This file and
// config.cpp are the only places that parse configuration JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace glamm {

// GLaMM's IMAGE_TOKEN_INDEX (tools/utils.py): the sentinel id tokenizer_image_token puts where a
// prompt says "<image>"; the model replaces that one id by all of the image's patch embeddings.
inline constexpr int64_t kImageTokenIndex = -200;

// HF LlamaConfig (Vicuna-7B v1.5 in GLaMM).
struct LlamaConfig {
    int64_t vocab_size              = 0; // 0: not in config.json; taken from embed_tokens' shape
    int64_t hidden_size             = 4096;
    int64_t intermediate_size       = 11008;
    int64_t num_hidden_layers       = 32;
    int64_t num_attention_heads     = 32;
    int64_t num_key_value_heads     = 0; // 0: equal to num_attention_heads (no GQA)
    double rms_norm_eps             = 1e-6;
    double rope_theta               = 10000.0;
    int64_t max_position_embeddings = 2048;
    std::string hidden_act          = "silu";
    int64_t bos_token_id            = 1;
    int64_t eos_token_id            = 2;
    int64_t pad_token_id            = 0;
    bool tie_word_embeddings        = false;

    int64_t head_dim() const { return hidden_size / num_attention_heads; }
    int64_t kv_heads() const {
        return num_key_value_heads > 0 ? num_key_value_heads : num_attention_heads;
    }
};

// HF CLIPVisionConfig (openai/clip-vit-large-patch14-336), read from the vision tower's folder;
// accepts a CLIPModel config (its "vision_config" object) as well.
struct ClipVisionConfig {
    int64_t hidden_size         = 1024;
    int64_t intermediate_size   = 4096;
    int64_t num_hidden_layers   = 24;
    int64_t num_attention_heads = 16;
    int64_t num_channels        = 3;
    int64_t image_size          = 336;
    int64_t patch_size          = 14;
    double layer_norm_eps       = 1e-5;
    std::string hidden_act      = "quick_gelu";

    int64_t grid_size() const { return image_size / patch_size; }     // 24
    int64_t num_patches() const { return grid_size() * grid_size(); } // 576
    int64_t num_positions() const { return num_patches() + 1; }       // 577 (CLS first)
    int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

// CLIPImageProcessor's normalisation, from preprocessor_config.json in the vision tower's folder;
// a missing file or key means OpenAI CLIP's constants (what openai/clip-vit-large-patch14-336
// ships). Applied to pixel / 255, per RGB channel.
struct ClipImageProcessorConfig {
    std::vector<double> image_mean = {0.48145466, 0.4578275, 0.40821073};
    std::vector<double> image_std  = {0.26862954, 0.26130258, 0.27577711};
};

// SAM ("grounding_encoder" in GLaMM's config.json; absent in real releases = ViT-H).
struct SamConfig {
    int64_t embed_dim                        = 1280;
    int64_t depth                            = 32;
    int64_t num_heads                        = 16;
    std::vector<int64_t> global_attn_indexes = {7, 15, 23, 31};
    int64_t prompt_embed_dim                 = 256;
    int64_t decoder_mlp_dim                  = 2048;
    int64_t decoder_num_heads                = 8;
    int64_t iou_head_hidden_dim              = 256;
    // Fixed by segment_anything/build_sam.py for every SAM size; overridable for completeness.
    int64_t img_size                  = 1024;
    int64_t patch_size                = 16;
    int64_t window_size               = 14;
    double mlp_ratio                  = 4.0;
    int64_t decoder_depth             = 2;
    int64_t attention_downsample_rate = 2;
    int64_t num_multimask_outputs     = 3;
    int64_t iou_head_depth            = 3;
    int64_t mask_in_chans             = 16;   // prompt encoder mask_downscaling width (unused path)
    double encoder_layer_norm_eps     = 1e-6; // image encoder blocks and LayerNorm2d
    double decoder_layer_norm_eps     = 1e-5; // two-way transformer nn.LayerNorm
    std::vector<double> pixel_mean    = {123.675, 116.28, 103.53};
    std::vector<double> pixel_std     = {58.395, 57.12, 57.375};

    int64_t grid_size() const { return img_size / patch_size; }           // 64
    int64_t num_mask_tokens() const { return num_multimask_outputs + 1; } // 4
    int64_t mlp_dim() const { return static_cast<int64_t>(embed_dim * mlp_ratio); }
};

// GLaMM's region encoder (model/layers.py MLVLROIQueryModule); "region_encoder" in config.json.
struct RegionEncoderConfig {
    int64_t gn_groups       = 64; // GroupNorm groups of the fuse convs
    int64_t num_levels      = 4;  // config num_level_reg_features
    int64_t num_fuse        = 5;  // fuse rounds (MLVLFuseModule num_fuse)
    int64_t roi_output_size = 14; // RoIAlign output
    int64_t sampling_ratio  = 2;  // RoIAlign samples per bin side
    // Boxes are normalised to [0, 1] then multiplied by this before RoIAlign: a GPT4RoI constant
    // (224) GLaMM was trained with, although CLIP sees 336 px (so its boxes land on the top-left
    // two thirds of the grid). Not in GLaMM's config.json; "region_encoder": {"box_scale": N}
    // overrides it (GLaMM-Shapes: its tower's image_size, boxes over the whole grid).
    double box_scale = 224.0;
    double norm_eps  = 1e-5; // GroupNorm and LayerNorm eps
    // Hidden width of the box embedding MLP (roi_align.pos_embedd.0: Linear(4, pos_embed_dim)).
    // Not in config.json: GLaMM hard-codes 256; the loader sets it from the checkpoint's shape.
    int64_t pos_embed_dim = 256;
};

// HF BertConfig (bert-base-uncased: the GCG evaluation's phrase encoder, eval/bert.h). Defaults
// are bert-base-uncased's; only absolute position embeddings and the erf "gelu" are supported.
struct BertConfig {
    int64_t vocab_size                  = 30522;
    int64_t hidden_size                 = 768;
    int64_t num_hidden_layers           = 12;
    int64_t num_attention_heads         = 12;
    int64_t intermediate_size           = 3072;
    int64_t max_position_embeddings     = 512;
    int64_t type_vocab_size             = 2;
    double layer_norm_eps               = 1e-12;
    std::string hidden_act              = "gelu";
    std::string position_embedding_type = "absolute";

    int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

// Everything in a GLaMM release's config.json.
struct GlammConfig {
    LlamaConfig llama;           // the top-level LLaMA keys
    SamConfig grounding_encoder; // "grounding_encoder" or ViT-H defaults
    RegionEncoderConfig region_encoder;
    std::string mm_vision_tower          = "openai/clip-vit-large-patch14-336";
    int64_t mm_hidden_size               = 1024;
    int64_t mm_vision_select_layer       = -2;
    std::string mm_vision_select_feature = "patch";
    std::string mm_projector_type        = "mlp2x_gelu";
    bool mm_use_im_start_end             = true;
    int64_t out_dim                      = 256; // text_hidden_fcs output = SAM prompt_embed_dim
    bool with_region                     = true;
    std::string torch_dtype              = "bfloat16";
    std::vector<std::string> architectures;
};

// Reads `<dir>/config.json`. Throws Error naming the file and key on a missing file, bad JSON, a
// wrong type or an impossible value (zero or negative widths, hidden size not divisible by the
// head count, ...).
GlammConfig load_glamm_config(const std::string& model_dir);
ClipVisionConfig load_clip_vision_config(const std::string& clip_dir);
// `<clip_dir>/preprocessor_config.json` if it exists, else the defaults. Throws Error on bad JSON,
// a wrong type, a mean/std that is not 3 numbers, or a std <= 0.
ClipImageProcessorConfig load_clip_image_processor_config(const std::string& clip_dir);

// `<bert_dir>/config.json` (HF BertConfig). Throws Error naming the file on a missing file, bad
// JSON, a wrong type, an impossible width or an unsupported hidden_act / position type.
BertConfig load_bert_config(const std::string& bert_dir);

// Parses from JSON text (for tests); `where` names the source in messages.
GlammConfig parse_glamm_config(const std::string& json_text, const std::string& where);
ClipVisionConfig parse_clip_vision_config(const std::string& json_text, const std::string& where);
ClipImageProcessorConfig parse_clip_image_processor_config(const std::string& json_text,
                                                           const std::string& where);
BertConfig parse_bert_config(const std::string& json_text, const std::string& where);

} // namespace glamm
