// Random release-shaped weights. Every *_weight_specs function mirrors one module constructor
// (same registration names, same shapes); tests/engine/model/test_make_weights.cpp compares them
// with the modules' named_parameters()/named_buffers(), so the two cannot drift apart.
#include "model/make_weights.h"

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "grounding/sam_image_encoder.h"
#include "grounding/sam_mask_decoder.h"
#include "grounding/sam_prompt_encoder.h"
#include "grounding/text_projection.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <regex>

namespace fs = std::filesystem;

namespace glamm {

namespace {

// Standard deviation of the random weights (HF's initializer_range).
constexpr double kMakeWeightsStd = 0.02;
// Elements generated per piece while streaming a tensor to disk.
constexpr int64_t kChunkElements = int64_t{1} << 24;

// Module constants the mirrored constructors use (named as in their .cpp files).
constexpr int64_t kRegionCoordinateChannels = 2; // region_encoder.cpp kCoordinateChannels
constexpr int64_t kRegionBoxCoordinates     = 4; // region_encoder.cpp kBoxCoordinates
constexpr int64_t kRegionConvKernel         = 3; // region_encoder.cpp kConvKernel
constexpr int64_t kSamNumPointEmbeddings    = 4; // sam_prompt_encoder.cpp
constexpr int64_t kSamMaskChannelDivisor    = 4; // sam_prompt_encoder.cpp
constexpr int64_t kSamUpscaleStride         = 2; // sam_mask_decoder.cpp
constexpr int64_t kSamUpscaleFirstDivisor   = 4; // sam_mask_decoder.cpp
constexpr int64_t kSamUpscaleOutDivisor     = 8; // sam_mask_decoder.cpp
constexpr int64_t kSamHypernetworkDepth     = 3; // sam_mask_decoder.cpp
constexpr int64_t kSamNeckKernel            = 3; // sam_image_encoder.cpp neck.2
constexpr int64_t kRgbChannels              = 3;

// Release widths that config.h's defaults do not already give.
constexpr int64_t kGlammVocabSize      = 32007; // 32000 LLaMA pieces + GLaMM's 7 added tokens
constexpr int64_t kVicunaVocabSize     = 32000;
constexpr int64_t kVicunaMaxPositions  = 4096; // Vicuna-7B v1.5
constexpr double kVicunaRmsNormEps     = 1e-5;
constexpr int64_t kGlammRegionPosEmbed = 256; // GLaMM's hard-coded box-embedding width

// The tiny golden model (tests/data/golden/tiny/{glamm,clip}/config.json).
constexpr int64_t kTinyVocab = 519, kTinyHidden = 160, kTinyMlp = 320, kTinyLayers = 2,
                  kTinyHeads        = 5;
constexpr int64_t kTinyMaxPositions = 4096;
constexpr int64_t kTinyClipHidden = 128, kTinyClipLayers = 12, kTinyClipHeads = 4;
constexpr int64_t kTinyClipMlp  = 256;
constexpr int64_t kTinySamEmbed = 64, kTinySamDepth = 4, kTinySamHeads = 4, kTinySamPrompt = 32,
                  kTinySamDecoderMlp = 64, kTinySamDecoderHeads = 4, kTinySamIouHidden = 48;
constexpr int64_t kTinyRegionPosEmbed = 40;

using Specs = std::vector<WeightSpec>;

void add(Specs& out, const std::string& name, std::vector<int64_t> shape,
         WeightInit init = WeightInit::kNormal) {
    out.push_back({name, std::move(shape), init});
}
void linear(Specs& out, const std::string& name, int64_t in, int64_t out_dim, bool bias = true) {
    add(out, name + ".weight", {out_dim, in});
    if (bias) add(out, name + ".bias", {out_dim});
}
void norm(Specs& out, const std::string& name, int64_t width, bool bias = true) {
    add(out, name + ".weight", {width}, WeightInit::kOnes);
    if (bias) add(out, name + ".bias", {width}, WeightInit::kZeros);
}
void conv(Specs& out, const std::string& name, int64_t in, int64_t out_dim, int64_t k,
          bool bias = true) {
    add(out, name + ".weight", {out_dim, in, k, k});
    if (bias) add(out, name + ".bias", {out_dim});
}
void conv_transpose(Specs& out, const std::string& name, int64_t in, int64_t out_dim, int64_t k) {
    add(out, name + ".weight", {in, out_dim, k, k});
    add(out, name + ".bias", {out_dim});
}

// ref: sam_mask_decoder.cpp SamDecoderAttentionImpl
void sam_decoder_attention(Specs& out, const std::string& name, int64_t dim, int64_t downsample) {
    const int64_t internal = dim / downsample;
    linear(out, name + ".q_proj", dim, internal);
    linear(out, name + ".k_proj", dim, internal);
    linear(out, name + ".v_proj", dim, internal);
    linear(out, name + ".out_proj", internal, dim);
}

// ref: sam_mask_decoder.cpp SamMlpImpl
void sam_mlp(Specs& out, const std::string& name, int64_t in, int64_t hidden, int64_t out_dim,
             int64_t layers) {
    for (int64_t i = 0; i < layers; ++i)
        linear(out, cat(name, ".layers.", i), i == 0 ? in : hidden,
               i == layers - 1 ? out_dim : hidden);
}

at::ScalarType storage_type(bool bf16) {
    return bf16 ? at::kBFloat16 : at::kFloat;
}

// One tensor of a file to write: full key, shape, init, storage dtype.
struct Planned {
    std::string key;
    std::vector<int64_t> shape;
    WeightInit init;
    at::ScalarType dtype;
    uint64_t nbytes() const {
        uint64_t n = c10::elementSize(dtype);
        for (int64_t d : shape) n *= static_cast<uint64_t>(d);
        return n;
    }
};

void plan(std::vector<Planned>& out, const std::string& prefix, const Specs& specs,
          at::ScalarType dtype) {
    for (const auto& s : specs) out.push_back({prefix + s.name, s.shape, s.init, dtype});
}

// Streams one file's tensors; values come from `generator` in file order.
void write_file(const std::string& path, const std::vector<Planned>& tensors,
                at::Generator& generator, uint64_t& bytes_done) {
    std::vector<TensorInfo> infos;
    for (const auto& t : tensors) {
        TensorInfo info;
        info.name  = t.key;
        info.dtype = from_scalar_type(t.dtype);
        info.shape = t.shape;
        infos.push_back(info);
    }
    SafetensorsWriter writer(path, infos, {{"format", "pt"}, {"producer", "glamm make-weights"}});
    torch::NoGradGuard no_grad;
    for (const auto& t : tensors) {
        int64_t numel = 1;
        for (int64_t d : t.shape) numel *= d;
        for (int64_t start = 0; start < numel; start += kChunkElements) {
            const int64_t n = std::min(kChunkElements, numel - start);
            at::Tensor piece;
            switch (t.init) {
            case WeightInit::kOnes:
                piece = at::ones({n}, at::kFloat);
                break;
            case WeightInit::kZeros:
                piece = at::zeros({n}, at::kFloat);
                break;
            case WeightInit::kNormal:
                piece = at::normal(0.0, kMakeWeightsStd, {n}, generator);
                break;
            }
            piece = piece.to(t.dtype).contiguous();
            writer.write(piece.data_ptr(), static_cast<size_t>(piece.nbytes()));
            bytes_done += piece.nbytes();
        }
    }
    writer.commit();
}

// Writes `tensors` as one model.safetensors or as shards + index (HF layout), in key order.
void write_checkpoint(const std::string& dir, std::vector<Planned> tensors,
                      const MakeWeightsOptions& options, at::Generator& generator,
                      MakeWeightsResult& result) {
    std::sort(tensors.begin(), tensors.end(),
              [](const Planned& a, const Planned& b) { return a.key < b.key; });
    std::vector<std::vector<Planned>> shards;
    uint64_t shard_bytes = 0, total = 0;
    for (auto& t : tensors) {
        if (shards.empty() ||
            (shard_bytes > 0 && shard_bytes + t.nbytes() > options.max_shard_bytes)) {
            shards.emplace_back();
            shard_bytes = 0;
        }
        shard_bytes += t.nbytes();
        total += t.nbytes();
        shards.back().push_back(std::move(t));
    }
    const size_t count                = shards.size();
    nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
    uint64_t done                     = 0;
    for (size_t s = 0; s < count; ++s) {
        char name[64];
        if (count == 1)
            std::snprintf(name, sizeof name, "model.safetensors");
        else
            std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, count);
        // Wider elements first keeps every tensor aligned to its element size.
        std::stable_sort(shards[s].begin(), shards[s].end(),
                         [](const Planned& a, const Planned& b) {
                             return c10::elementSize(a.dtype) > c10::elementSize(b.dtype);
                         });
        write_file((fs::path(dir) / name).string(), shards[s], generator, done);
        for (const auto& t : shards[s]) weight_map[t.key] = name;
        result.tensors += shards[s].size();
        if (options.progress) options.progress(name, done, total);
    }
    result.bytes += total;
    if (count > 1) {
        nlohmann::ordered_json index;
        index["metadata"]   = {{"total_size", total}};
        index["weight_map"] = weight_map;
        write_file_atomic((fs::path(dir) / "model.safetensors.index.json").string(),
                          index.dump(2) + "\n");
    }
}

void prepare_folder(const std::string& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (!fs::is_directory(dir)) fail("cannot create the output folder ", dir, ": ", ec.message());
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string ext = entry.path().extension().string();
        if (ext == ".safetensors" || ext == ".bin")
            fail(dir, " already holds weights (", entry.path().filename().string(),
                 "); make weights into an empty folder");
    }
}

void copy_tokenizer(const std::string& from, const std::string& to, bool with_added_tokens) {
    if (from.empty()) fail("no tokenizer folder given (--tokenizer DIR)");
    if (!fs::exists(fs::path(from) / "tokenizer.model"))
        fail("the tokenizer folder ", from, " has no tokenizer.model");
    for (const char* file : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                             "added_tokens.json"}) {
        if (std::string(file) == "added_tokens.json" && !with_added_tokens) continue;
        const fs::path src = fs::path(from) / file;
        if (!fs::exists(src)) continue;
        write_file_atomic((fs::path(to) / file).string(), read_file(src.string()));
    }
}

nlohmann::ordered_json llama_json(const LlamaConfig& l, const char* architecture) {
    nlohmann::ordered_json j;
    j["architectures"]           = {architecture};
    j["vocab_size"]              = l.vocab_size;
    j["hidden_size"]             = l.hidden_size;
    j["intermediate_size"]       = l.intermediate_size;
    j["num_hidden_layers"]       = l.num_hidden_layers;
    j["num_attention_heads"]     = l.num_attention_heads;
    j["num_key_value_heads"]     = l.kv_heads();
    j["rms_norm_eps"]            = l.rms_norm_eps;
    j["rope_theta"]              = l.rope_theta;
    j["max_position_embeddings"] = l.max_position_embeddings;
    j["hidden_act"]              = l.hidden_act;
    j["bos_token_id"]            = l.bos_token_id;
    j["eos_token_id"]            = l.eos_token_id;
    j["pad_token_id"]            = l.pad_token_id;
    j["tie_word_embeddings"]     = l.tie_word_embeddings;
    return j;
}

std::string glamm_config_json(const GlammConfig& c, bool with_component_objects) {
    nlohmann::ordered_json j      = llama_json(c.llama, "GLaMMForCausalLM");
    j["model_type"]               = "llava";
    j["torch_dtype"]              = c.torch_dtype;
    j["mm_vision_tower"]          = c.mm_vision_tower;
    j["mm_hidden_size"]           = c.mm_hidden_size;
    j["mm_vision_select_layer"]   = c.mm_vision_select_layer;
    j["mm_vision_select_feature"] = c.mm_vision_select_feature;
    j["mm_projector_type"]        = c.mm_projector_type;
    j["mm_use_im_start_end"]      = c.mm_use_im_start_end;
    j["mm_use_im_patch_token"]    = false;
    j["with_region"]              = c.with_region;
    j["num_level_reg_features"]   = c.region_encoder.num_levels;
    j["out_dim"]                  = c.out_dim;
    j["use_cache"]                = false;
    if (with_component_objects) { // real releases leave them out (ViT-H and GLaMM's defaults)
        const SamConfig& s     = c.grounding_encoder;
        j["grounding_encoder"] = {{"embed_dim", s.embed_dim},
                                  {"depth", s.depth},
                                  {"num_heads", s.num_heads},
                                  {"global_attn_indexes", s.global_attn_indexes},
                                  {"prompt_embed_dim", s.prompt_embed_dim},
                                  {"decoder_mlp_dim", s.decoder_mlp_dim},
                                  {"decoder_num_heads", s.decoder_num_heads},
                                  {"iou_head_hidden_dim", s.iou_head_hidden_dim}};
        j["region_encoder"]    = {{"gn_groups", c.region_encoder.gn_groups}};
    }
    return j.dump(2) + "\n";
}

std::string clip_config_json(const ClipVisionConfig& c) {
    nlohmann::ordered_json j;
    j["architectures"]       = {"CLIPVisionModel"};
    j["model_type"]          = "clip_vision_model";
    j["hidden_act"]          = c.hidden_act;
    j["hidden_size"]         = c.hidden_size;
    j["image_size"]          = c.image_size;
    j["intermediate_size"]   = c.intermediate_size;
    j["layer_norm_eps"]      = c.layer_norm_eps;
    j["num_attention_heads"] = c.num_attention_heads;
    j["num_channels"]        = c.num_channels;
    j["num_hidden_layers"]   = c.num_hidden_layers;
    j["patch_size"]          = c.patch_size;
    return j.dump(2) + "\n";
}

// The keys of a GLaMM release (without the CLIP tower, a separate download).
std::vector<Planned> glamm_plan(const GlammConfig& c, bool bf16) {
    const at::ScalarType low = storage_type(bf16);
    std::vector<Planned> out;
    plan(out, "", llama_weight_specs(c.llama), low);
    plan(out, "model.mm_projector.", mm_projector_weight_specs(c), low);
    if (c.with_region)
        plan(out, "model.region_encoder.",
             region_encoder_weight_specs(c.region_encoder, c.mm_hidden_size, c.llama.hidden_size),
             low);
    plan(out, kTextProjectionPrefix, text_projection_weight_specs(c.llama.hidden_size, c.out_dim),
         at::kFloat);
    plan(out, kSamImageEncoderPrefix, sam_image_encoder_weight_specs(c.grounding_encoder),
         at::kFloat);
    plan(out, kSamPromptEncoderPrefix, sam_prompt_encoder_weight_specs(c.grounding_encoder),
         at::kFloat);
    plan(out, kSamMaskDecoderPrefix, sam_mask_decoder_weight_specs(c.grounding_encoder),
         at::kFloat);
    return out;
}

// SAM's own checkpoint (sam_vit_h_4b8939.pth) names: GLaMM's prefixes without
// "model.grounding_encoder.".
std::string sam_own_prefix(const std::string& glamm_prefix) {
    static const std::string outer = "model.grounding_encoder.";
    return glamm_prefix.substr(outer.size());
}

} // namespace

// ref: engine/language/llama.cpp LlamaForCausalLMImpl and its submodules
std::vector<WeightSpec> llama_weight_specs(const LlamaConfig& c) {
    if (c.vocab_size <= 0) fail("llama_weight_specs: vocab_size is not resolved");
    Specs out;
    const int64_t H = c.hidden_size, q = c.num_attention_heads * c.head_dim(),
                  kv = c.kv_heads() * c.head_dim();
    add(out, "model.embed_tokens.weight", {c.vocab_size, H});
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const std::string p = cat("model.layers.", i, ".");
        linear(out, p + "self_attn.q_proj", H, q, false);
        linear(out, p + "self_attn.k_proj", H, kv, false);
        linear(out, p + "self_attn.v_proj", H, kv, false);
        linear(out, p + "self_attn.o_proj", q, H, false);
        linear(out, p + "mlp.gate_proj", H, c.intermediate_size, false);
        linear(out, p + "mlp.up_proj", H, c.intermediate_size, false);
        linear(out, p + "mlp.down_proj", c.intermediate_size, H, false);
        norm(out, p + "input_layernorm", H, false);
        norm(out, p + "post_attention_layernorm", H, false);
    }
    norm(out, "model.norm", H, false);
    if (!c.tie_word_embeddings) linear(out, "lm_head", H, c.vocab_size, false);
    return out;
}

// ref: engine/vision/clip_vision.cpp ClipVisionModelImpl
std::vector<WeightSpec> clip_vision_weight_specs(const ClipVisionConfig& c) {
    Specs out;
    const int64_t C = c.hidden_size;
    add(out, "embeddings.class_embedding", {C});
    conv(out, "embeddings.patch_embedding", c.num_channels, C, c.patch_size, false);
    add(out, "embeddings.position_embedding.weight", {c.num_positions(), C});
    norm(out, "pre_layrnorm", C);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const std::string p = cat("encoder.layers.", i, ".");
        for (const char* proj : {"k_proj", "v_proj", "q_proj", "out_proj"})
            linear(out, p + "self_attn." + proj, C, C);
        norm(out, p + "layer_norm1", C);
        linear(out, p + "mlp.fc1", C, c.intermediate_size);
        linear(out, p + "mlp.fc2", c.intermediate_size, C);
        norm(out, p + "layer_norm2", C);
    }
    norm(out, "post_layernorm", C);
    return out;
}

// ref: engine/vision/mm_projector.cpp MmProjectorImpl
std::vector<WeightSpec> mm_projector_weight_specs(const GlammConfig& c) {
    Specs out;
    const int64_t M = c.mm_hidden_size, H = c.llama.hidden_size;
    if (c.mm_projector_type == "linear") {
        linear(out, "", M, H);
        for (auto& s : out) s.name = s.name.substr(1); // ".weight" -> "weight"
        return out;
    }
    std::smatch match;
    static const std::regex mlp_gelu("^mlp([0-9]+)x_gelu$");
    if (!std::regex_match(c.mm_projector_type, match, mlp_gelu))
        fail("unsupported mm_projector_type \"", c.mm_projector_type, "\"");
    const int depth = std::stoi(match[1]);
    for (int i = 0; i < depth; ++i) linear(out, std::to_string(2 * i), i == 0 ? M : H, H);
    return out;
}

// ref: engine/vision/region_encoder.cpp RegionEncoderImpl (mlvl_fuse, roi_align)
std::vector<WeightSpec> region_encoder_weight_specs(const RegionEncoderConfig& c, int64_t channels,
                                                    int64_t out_dims) {
    Specs out;
    const int64_t C = channels, k = kRegionConvKernel, pe = c.pos_embed_dim;
    for (int64_t l = 0; l < c.num_levels; ++l)
        conv(out, cat("mlvl_fuse.input_conv.", l), C + kRegionCoordinateChannels, C, 1);
    for (int64_t r = 0; r < c.num_fuse; ++r) {
        conv(out, cat("mlvl_fuse.fuse_convs.", r, ".conv"), C, C, k, false);
        norm(out, cat("mlvl_fuse.fuse_convs.", r, ".gn"), C);
    }
    for (int64_t l = 0; l < c.num_levels; ++l) conv(out, cat("roi_align.pconvs.", l), C, C, k);
    linear(out, "roi_align.pos_embedd.0", kRegionBoxCoordinates, pe);
    norm(out, "roi_align.pos_embedd.2", pe);
    linear(out, "roi_align.pos_embedd.3", pe, C);
    norm(out, "roi_align.pos_embedd.5", C);
    linear(out, "roi_align.updims", C, out_dims);
    linear(out, "roi_align.flatten_linear", C * c.roi_output_size * c.roi_output_size, C);
    return out;
}

// ref: engine/grounding/text_projection.cpp (Sequential Linear, ReLU, Linear, Dropout)
std::vector<WeightSpec> text_projection_weight_specs(int64_t hidden_size, int64_t out_dim) {
    Specs out;
    linear(out, "0.0", hidden_size, hidden_size);
    linear(out, "0.2", hidden_size, out_dim);
    return out;
}

// ref: engine/grounding/sam_image_encoder.cpp SamImageEncoderImpl
std::vector<WeightSpec> sam_image_encoder_weight_specs(const SamConfig& c) {
    Specs out;
    const int64_t E = c.embed_dim, D = c.prompt_embed_dim, G = c.grid_size();
    conv(out, "patch_embed.proj", kRgbChannels, E, c.patch_size);
    add(out, "pos_embed", {1, G, G, E});
    for (int64_t i = 0; i < c.depth; ++i) {
        const bool global   = std::find(c.global_attn_indexes.begin(), c.global_attn_indexes.end(),
                                        i) != c.global_attn_indexes.end();
        const int64_t size  = global ? G : c.window_size;
        const std::string p = cat("blocks.", i, ".");
        norm(out, p + "norm1", E);
        linear(out, p + "attn.qkv", E, 3 * E);
        linear(out, p + "attn.proj", E, E);
        add(out, p + "attn.rel_pos_h", {2 * size - 1, E / c.num_heads});
        add(out, p + "attn.rel_pos_w", {2 * size - 1, E / c.num_heads});
        norm(out, p + "norm2", E);
        linear(out, p + "mlp.lin1", E, c.mlp_dim());
        linear(out, p + "mlp.lin2", c.mlp_dim(), E);
    }
    conv(out, "neck.0", E, D, 1, false);
    norm(out, "neck.1", D);
    conv(out, "neck.2", D, D, kSamNeckKernel, false);
    norm(out, "neck.3", D);
    return out;
}

// ref: engine/grounding/sam_prompt_encoder.cpp SamPromptEncoderImpl
std::vector<WeightSpec> sam_prompt_encoder_weight_specs(const SamConfig& c) {
    Specs out;
    const int64_t D = c.prompt_embed_dim, m = c.mask_in_chans, m4 = m / kSamMaskChannelDivisor;
    add(out, "pe_layer.positional_encoding_gaussian_matrix", {2, D / 2});
    for (int64_t i = 0; i < kSamNumPointEmbeddings; ++i)
        add(out, cat("point_embeddings.", i, ".weight"), {1, D});
    add(out, "not_a_point_embed.weight", {1, D});
    conv(out, "mask_downscaling.0", 1, m4, 2);
    norm(out, "mask_downscaling.1", m4);
    conv(out, "mask_downscaling.3", m4, m, 2);
    norm(out, "mask_downscaling.4", m);
    conv(out, "mask_downscaling.6", m, D, 1);
    add(out, "no_mask_embed.weight", {1, D});
    return out;
}

// ref: engine/grounding/sam_mask_decoder.cpp SamMaskDecoderImpl
std::vector<WeightSpec> sam_mask_decoder_weight_specs(const SamConfig& c) {
    Specs out;
    const int64_t D = c.prompt_embed_dim, M = c.num_mask_tokens();
    const int64_t d4 = D / kSamUpscaleFirstDivisor, d8 = D / kSamUpscaleOutDivisor;
    for (int64_t i = 0; i < c.decoder_depth; ++i) {
        const std::string p = cat("transformer.layers.", i, ".");
        sam_decoder_attention(out, p + "self_attn", D, 1);
        norm(out, p + "norm1", D);
        sam_decoder_attention(out, p + "cross_attn_token_to_image", D, c.attention_downsample_rate);
        norm(out, p + "norm2", D);
        linear(out, p + "mlp.lin1", D, c.decoder_mlp_dim);
        linear(out, p + "mlp.lin2", c.decoder_mlp_dim, D);
        norm(out, p + "norm3", D);
        norm(out, p + "norm4", D);
        sam_decoder_attention(out, p + "cross_attn_image_to_token", D, c.attention_downsample_rate);
    }
    sam_decoder_attention(out, "transformer.final_attn_token_to_image", D,
                          c.attention_downsample_rate);
    norm(out, "transformer.norm_final_attn", D);
    add(out, "iou_token.weight", {1, D});
    add(out, "mask_tokens.weight", {M, D});
    conv_transpose(out, "output_upscaling.0", D, d4, kSamUpscaleStride);
    norm(out, "output_upscaling.1", d4);
    conv_transpose(out, "output_upscaling.3", d4, d8, kSamUpscaleStride);
    for (int64_t i = 0; i < M; ++i)
        sam_mlp(out, cat("output_hypernetworks_mlps.", i), D, D, d8, kSamHypernetworkDepth);
    sam_mlp(out, "iou_prediction_head", D, c.iou_head_hidden_dim, M, c.iou_head_depth);
    return out;
}

const std::vector<std::string>& make_weights_presets() {
    static const std::vector<std::string> presets = {"glamm-7b", "vicuna-7b", "sam-vit-h",
                                                     "clip-vit-l-336", "tiny"};
    return presets;
}

GlammConfig preset_glamm_config(const std::string& like) {
    GlammConfig c; // config.h's defaults are GLaMM-7B's (Vicuna-7B v1.5, CLIP-L/336, SAM ViT-H)
    c.architectures                 = {"GLaMMForCausalLM"};
    c.llama.vocab_size              = kGlammVocabSize;
    c.llama.max_position_embeddings = kVicunaMaxPositions;
    c.llama.rms_norm_eps            = kVicunaRmsNormEps;
    c.region_encoder.pos_embed_dim  = kGlammRegionPosEmbed;
    if (like == "vicuna-7b") c.llama.vocab_size = kVicunaVocabSize;
    if (like == "tiny") {
        LlamaConfig& l                 = c.llama;
        l.vocab_size                   = kTinyVocab;
        l.hidden_size                  = kTinyHidden;
        l.intermediate_size            = kTinyMlp;
        l.num_hidden_layers            = kTinyLayers;
        l.num_attention_heads          = kTinyHeads;
        l.num_key_value_heads          = kTinyHeads;
        l.max_position_embeddings      = kTinyMaxPositions;
        c.mm_hidden_size               = kTinyClipHidden;
        c.out_dim                      = kTinySamPrompt;
        SamConfig& s                   = c.grounding_encoder;
        s.embed_dim                    = kTinySamEmbed;
        s.depth                        = kTinySamDepth;
        s.num_heads                    = kTinySamHeads;
        s.global_attn_indexes          = {1, 3};
        s.prompt_embed_dim             = kTinySamPrompt;
        s.decoder_mlp_dim              = kTinySamDecoderMlp;
        s.decoder_num_heads            = kTinySamDecoderHeads;
        s.iou_head_hidden_dim          = kTinySamIouHidden;
        c.region_encoder.pos_embed_dim = kTinyRegionPosEmbed;
    }
    return c;
}

ClipVisionConfig preset_clip_config(const std::string& like) {
    ClipVisionConfig c; // defaults: openai/clip-vit-large-patch14-336
    if (like == "tiny") {
        c.hidden_size         = kTinyClipHidden;
        c.intermediate_size   = kTinyClipMlp;
        c.num_hidden_layers   = kTinyClipLayers;
        c.num_attention_heads = kTinyClipHeads;
    }
    return c;
}

MakeWeightsResult make_weights(const MakeWeightsOptions& options) {
    const auto& presets = make_weights_presets();
    if (std::find(presets.begin(), presets.end(), options.like) == presets.end())
        fail("unknown --like \"", options.like,
             "\" (expected glamm-7b, vicuna-7b, sam-vit-h, clip-vit-l-336 or tiny)");
    if (options.out_dir.empty()) fail("no output folder given");
    MakeWeightsResult result;
    at::Generator generator     = at::make_generator<at::CPUGeneratorImpl>(options.seed);
    const std::string out       = fs::path(options.out_dir).lexically_normal().string();
    const std::string& like     = options.like;
    GlammConfig config          = preset_glamm_config(like);
    const ClipVisionConfig clip = preset_clip_config(like);
    auto write_clip             = [&](const std::string& dir) {
        prepare_folder(dir);
        write_file_atomic((fs::path(dir) / "config.json").string(), clip_config_json(clip));
        std::vector<Planned> tensors;
        plan(tensors, "vision_model.", clip_vision_weight_specs(clip), storage_type(options.bf16));
        write_checkpoint(dir, tensors, options, generator, result);
        result.folders.push_back(dir);
    };

    if (like == "glamm-7b" || like == "tiny") {
        // The CLIP folder sits beside the model folder; mm_vision_tower names it relatively.
        const std::string clip_dir = out + "-clip";
        config.mm_vision_tower     = "../" + fs::path(clip_dir).filename().string();
        config.torch_dtype         = options.bf16 ? "bfloat16" : "float32";
        prepare_folder(out);
        write_file_atomic((fs::path(out) / "config.json").string(),
                          glamm_config_json(config, /*with_component_objects=*/like == "tiny"));
        copy_tokenizer(options.tokenizer_dir, out, /*with_added_tokens=*/true);
        write_checkpoint(out, glamm_plan(config, options.bf16), options, generator, result);
        result.folders.insert(result.folders.begin(), out);
        write_clip(clip_dir);
    } else if (like == "vicuna-7b") {
        prepare_folder(out);
        nlohmann::ordered_json j = llama_json(config.llama, "LlamaForCausalLM");
        j["model_type"]          = "llama";
        j["torch_dtype"]         = options.bf16 ? "bfloat16" : "float32";
        write_file_atomic((fs::path(out) / "config.json").string(), j.dump(2) + "\n");
        copy_tokenizer(options.tokenizer_dir, out, /*with_added_tokens=*/false);
        std::vector<Planned> tensors;
        plan(tensors, "", llama_weight_specs(config.llama), storage_type(options.bf16));
        write_checkpoint(out, tensors, options, generator, result);
        result.folders.push_back(out);
    } else if (like == "sam-vit-h") {
        prepare_folder(out);
        const SamConfig& s = config.grounding_encoder;
        std::vector<Planned> tensors;
        plan(tensors, sam_own_prefix(kSamImageEncoderPrefix), sam_image_encoder_weight_specs(s),
             at::kFloat);
        plan(tensors, sam_own_prefix(kSamPromptEncoderPrefix), sam_prompt_encoder_weight_specs(s),
             at::kFloat);
        plan(tensors, sam_own_prefix(kSamMaskDecoderPrefix), sam_mask_decoder_weight_specs(s),
             at::kFloat);
        write_checkpoint(out, tensors, options, generator, result);
        result.folders.push_back(out);
    } else { // clip-vit-l-336
        write_clip(out);
    }
    return result;
}

} // namespace glamm
