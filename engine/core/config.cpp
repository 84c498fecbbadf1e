#include "core/config.h"

#include "core/atomic_file.h"
#include "core/error.h"

#include <nlohmann/json.hpp>

#include <filesystem>

namespace glamm {

namespace {

using json = nlohmann::json;

// Reads an optional key into `field`, checking its JSON type.
template <class T> void get(const json& j, const char* key, T& field, const std::string& where) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return;
    try {
        field = it->get<T>();
    } catch (const json::exception&) {
        fail(where, ": key \"", key, "\" has the wrong type (", it->type_name(), ")");
    }
}

void require_positive(int64_t value, const char* key, const std::string& where) {
    if (value <= 0) fail(where, ": \"", key, "\" must be positive, got ", value);
}

void require_divisible(int64_t a, const char* ka, int64_t b, const char* kb,
                       const std::string& where) {
    if (b <= 0 || a % b != 0)
        fail(where, ": \"", ka, "\" (", a, ") must be divisible by \"", kb, "\" (", b, ")");
}

json parse(const std::string& text, const std::string& where) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        fail(where, ": not valid JSON: ", e.what());
    }
    if (!j.is_object()) fail(where, ": not a JSON object");
    return j;
}

} // namespace

GlammConfig parse_glamm_config(const std::string& text, const std::string& where) {
    const json j = parse(text, where);
    GlammConfig c;
    LlamaConfig& l = c.llama;
    get(j, "vocab_size", l.vocab_size, where);
    get(j, "hidden_size", l.hidden_size, where);
    get(j, "intermediate_size", l.intermediate_size, where);
    get(j, "num_hidden_layers", l.num_hidden_layers, where);
    get(j, "num_attention_heads", l.num_attention_heads, where);
    get(j, "num_key_value_heads", l.num_key_value_heads, where);
    get(j, "rms_norm_eps", l.rms_norm_eps, where);
    get(j, "rope_theta", l.rope_theta, where);
    get(j, "max_position_embeddings", l.max_position_embeddings, where);
    get(j, "hidden_act", l.hidden_act, where);
    get(j, "bos_token_id", l.bos_token_id, where);
    get(j, "eos_token_id", l.eos_token_id, where);
    get(j, "pad_token_id", l.pad_token_id, where);
    get(j, "tie_word_embeddings", l.tie_word_embeddings, where);
    if (auto rs = j.find("rope_scaling"); rs != j.end() && !rs->is_null())
        fail(where,
             ": \"rope_scaling\" is set; GLaMM uses plain RoPE and scaled RoPE is not supported");

    get(j, "mm_vision_tower", c.mm_vision_tower, where);
    get(j, "mm_hidden_size", c.mm_hidden_size, where);
    get(j, "mm_vision_select_layer", c.mm_vision_select_layer, where);
    get(j, "mm_vision_select_feature", c.mm_vision_select_feature, where);
    get(j, "mm_projector_type", c.mm_projector_type, where);
    get(j, "mm_use_im_start_end", c.mm_use_im_start_end, where);
    get(j, "out_dim", c.out_dim, where);
    get(j, "with_region", c.with_region, where);
    get(j, "torch_dtype", c.torch_dtype, where);
    get(j, "architectures", c.architectures, where);
    get(j, "num_level_reg_features", c.region_encoder.num_levels, where);

    if (auto g = j.find("grounding_encoder"); g != j.end() && !g->is_null()) {
        if (!g->is_object()) fail(where, ": \"grounding_encoder\" is not an object");
        const std::string w = where + " grounding_encoder";
        SamConfig& s        = c.grounding_encoder;
        get(*g, "embed_dim", s.embed_dim, w);
        get(*g, "depth", s.depth, w);
        get(*g, "num_heads", s.num_heads, w);
        get(*g, "global_attn_indexes", s.global_attn_indexes, w);
        get(*g, "prompt_embed_dim", s.prompt_embed_dim, w);
        get(*g, "decoder_mlp_dim", s.decoder_mlp_dim, w);
        get(*g, "decoder_num_heads", s.decoder_num_heads, w);
        get(*g, "iou_head_hidden_dim", s.iou_head_hidden_dim, w);
        get(*g, "img_size", s.img_size, w);
        get(*g, "patch_size", s.patch_size, w);
        get(*g, "window_size", s.window_size, w);
    }
    if (auto r = j.find("region_encoder"); r != j.end() && !r->is_null()) {
        if (!r->is_object()) fail(where, ": \"region_encoder\" is not an object");
        get(*r, "gn_groups", c.region_encoder.gn_groups, where + " region_encoder");
        get(*r, "box_scale", c.region_encoder.box_scale, where + " region_encoder");
        if (!(c.region_encoder.box_scale > 0))
            fail(where, ": \"region_encoder.box_scale\" must be positive, got ",
                 c.region_encoder.box_scale);
    }

    // Impossible widths are rejected here, before any tensor is allocated.
    require_positive(l.hidden_size, "hidden_size", where);
    require_positive(l.intermediate_size, "intermediate_size", where);
    require_positive(l.num_hidden_layers, "num_hidden_layers", where);
    require_positive(l.num_attention_heads, "num_attention_heads", where);
    if (l.vocab_size < 0) fail(where, ": \"vocab_size\" must be positive, got ", l.vocab_size);
    if (l.num_key_value_heads < 0) fail(where, ": \"num_key_value_heads\" must be positive");
    require_divisible(l.hidden_size, "hidden_size", l.num_attention_heads, "num_attention_heads",
                      where);
    require_divisible(l.num_attention_heads, "num_attention_heads", l.kv_heads(),
                      "num_key_value_heads", where);
    if (l.head_dim() % 2 != 0)
        fail(where, ": head dimension ", l.head_dim(), " must be even for RoPE");
    if (!(l.rms_norm_eps > 0)) fail(where, ": \"rms_norm_eps\" must be positive");
    if (!(l.rope_theta > 0)) fail(where, ": \"rope_theta\" must be positive");
    if (l.hidden_act != "silu")
        fail(where, ": hidden_act \"", l.hidden_act, "\" is not supported (GLaMM uses silu)");
    require_positive(c.mm_hidden_size, "mm_hidden_size", where);
    require_positive(c.out_dim, "out_dim", where);
    if (c.mm_projector_type != "mlp2x_gelu" && c.mm_projector_type != "linear")
        fail(where, ": mm_projector_type \"", c.mm_projector_type,
             "\" is not supported (mlp2x_gelu, linear)");
    if (c.mm_vision_select_feature != "patch")
        fail(where, ": mm_vision_select_feature \"", c.mm_vision_select_feature,
             "\" is not supported (patch)");
    const SamConfig& s  = c.grounding_encoder;
    const std::string w = where + " grounding_encoder";
    require_positive(s.embed_dim, "embed_dim", w);
    require_positive(s.depth, "depth", w);
    require_positive(s.num_heads, "num_heads", w);
    require_divisible(s.embed_dim, "embed_dim", s.num_heads, "num_heads", w);
    require_positive(s.prompt_embed_dim, "prompt_embed_dim", w);
    require_positive(s.decoder_mlp_dim, "decoder_mlp_dim", w);
    require_positive(s.decoder_num_heads, "decoder_num_heads", w);
    require_divisible(s.prompt_embed_dim, "prompt_embed_dim",
                      s.decoder_num_heads * s.attention_downsample_rate, "decoder_num_heads x 2",
                      w);
    require_positive(s.iou_head_hidden_dim, "iou_head_hidden_dim", w);
    require_positive(s.patch_size, "patch_size", w);
    require_divisible(s.img_size, "img_size", s.patch_size, "patch_size", w);
    for (int64_t idx : s.global_attn_indexes)
        if (idx < 0 || idx >= s.depth)
            fail(w, ": global_attn_indexes entry ", idx, " is outside 0..", s.depth - 1);
    if (s.prompt_embed_dim != c.out_dim)
        fail(where, ": out_dim (", c.out_dim, ") must equal the SAM prompt_embed_dim (",
             s.prompt_embed_dim, ")");
    require_positive(c.region_encoder.gn_groups, "region_encoder.gn_groups", where);
    require_positive(c.region_encoder.num_levels, "num_level_reg_features", where);
    return c;
}

ClipVisionConfig parse_clip_vision_config(const std::string& text, const std::string& where) {
    json j = parse(text, where);
    if (auto v = j.find("vision_config"); v != j.end() && v->is_object()) j = *v;
    ClipVisionConfig c;
    get(j, "hidden_size", c.hidden_size, where);
    get(j, "intermediate_size", c.intermediate_size, where);
    get(j, "num_hidden_layers", c.num_hidden_layers, where);
    get(j, "num_attention_heads", c.num_attention_heads, where);
    get(j, "num_channels", c.num_channels, where);
    get(j, "image_size", c.image_size, where);
    get(j, "patch_size", c.patch_size, where);
    get(j, "layer_norm_eps", c.layer_norm_eps, where);
    get(j, "hidden_act", c.hidden_act, where);
    require_positive(c.hidden_size, "hidden_size", where);
    require_positive(c.intermediate_size, "intermediate_size", where);
    require_positive(c.num_hidden_layers, "num_hidden_layers", where);
    require_positive(c.num_attention_heads, "num_attention_heads", where);
    require_positive(c.patch_size, "patch_size", where);
    require_positive(c.image_size, "image_size", where);
    require_divisible(c.hidden_size, "hidden_size", c.num_attention_heads, "num_attention_heads",
                      where);
    require_divisible(c.image_size, "image_size", c.patch_size, "patch_size", where);
    if (c.num_channels != 3) fail(where, ": num_channels must be 3, got ", c.num_channels);
    if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu")
        fail(where, ": hidden_act \"", c.hidden_act, "\" is not supported (quick_gelu, gelu)");
    return c;
}

ClipImageProcessorConfig parse_clip_image_processor_config(const std::string& text,
                                                           const std::string& where) {
    const json j = parse(text, where);
    ClipImageProcessorConfig c;
    get(j, "image_mean", c.image_mean, where);
    get(j, "image_std", c.image_std, where);
    if (c.image_mean.size() != 3 || c.image_std.size() != 3)
        fail(where, ": image_mean and image_std must hold 3 numbers (RGB), got ",
             c.image_mean.size(), " and ", c.image_std.size());
    for (double s : c.image_std)
        if (!(s > 0)) fail(where, ": image_std values must be positive, got ", s);
    return c;
}

BertConfig parse_bert_config(const std::string& text, const std::string& where) {
    const json j = parse(text, where);
    BertConfig c;
    get(j, "vocab_size", c.vocab_size, where);
    get(j, "hidden_size", c.hidden_size, where);
    get(j, "num_hidden_layers", c.num_hidden_layers, where);
    get(j, "num_attention_heads", c.num_attention_heads, where);
    get(j, "intermediate_size", c.intermediate_size, where);
    get(j, "max_position_embeddings", c.max_position_embeddings, where);
    get(j, "type_vocab_size", c.type_vocab_size, where);
    get(j, "layer_norm_eps", c.layer_norm_eps, where);
    get(j, "hidden_act", c.hidden_act, where);
    get(j, "position_embedding_type", c.position_embedding_type, where);
    require_positive(c.vocab_size, "vocab_size", where);
    require_positive(c.hidden_size, "hidden_size", where);
    require_positive(c.num_hidden_layers, "num_hidden_layers", where);
    require_positive(c.num_attention_heads, "num_attention_heads", where);
    require_positive(c.intermediate_size, "intermediate_size", where);
    require_positive(c.max_position_embeddings, "max_position_embeddings", where);
    require_positive(c.type_vocab_size, "type_vocab_size", where);
    require_divisible(c.hidden_size, "hidden_size", c.num_attention_heads, "num_attention_heads",
                      where);
    if (!(c.layer_norm_eps > 0)) fail(where, ": \"layer_norm_eps\" must be positive");
    if (c.hidden_act != "gelu")
        fail(where, ": hidden_act \"", c.hidden_act,
             "\" is not supported (bert-base-uncased uses gelu)");
    if (c.position_embedding_type != "absolute")
        fail(where, ": position_embedding_type \"", c.position_embedding_type,
             "\" is not supported (absolute)");
    return c;
}

GlammConfig load_glamm_config(const std::string& model_dir) {
    const std::string path = (std::filesystem::path(model_dir) / "config.json").string();
    if (!std::filesystem::exists(path))
        fail(model_dir, " is not a GLaMM model folder: config.json is missing");
    return parse_glamm_config(read_file(path), path);
}

ClipVisionConfig load_clip_vision_config(const std::string& clip_dir) {
    const std::string path = (std::filesystem::path(clip_dir) / "config.json").string();
    if (!std::filesystem::exists(path))
        fail(clip_dir, " is not a CLIP vision tower folder: config.json is missing");
    return parse_clip_vision_config(read_file(path), path);
}

ClipImageProcessorConfig load_clip_image_processor_config(const std::string& clip_dir) {
    const std::string path =
        (std::filesystem::path(clip_dir) / "preprocessor_config.json").string();
    if (!std::filesystem::exists(path)) return {};
    return parse_clip_image_processor_config(read_file(path), path);
}

BertConfig load_bert_config(const std::string& bert_dir) {
    const std::string path = (std::filesystem::path(bert_dir) / "config.json").string();
    if (!std::filesystem::exists(path))
        fail(bert_dir, " is not a BERT model folder: config.json is missing");
    return parse_bert_config(read_file(path), path);
}

} // namespace glamm
