#include "model/glamm_model.h"

#include "core/checkpoint.h"
#include "core/device.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/safetensors.h"
#include "grounding/mask_postprocess.h"
#include "text/conversation.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iterator>
#include <sstream>

namespace fs = std::filesystem;

namespace glamm {

namespace {

// Loading progress is reported at most once per this fraction of the weights.
constexpr double kProgressStep = 0.01;

int64_t stored_numel(const StoredTensor& stored) {
    int64_t numel = 1;
    for (int64_t size : stored.shape) numel *= size;
    return numel;
}

// The memory a load allocates beyond the mapped files, for the tensors `loaded` selects: each
// one it must copy (stored in another dtype than the model's `dtype`, or all of them without
// `shared`: a GPU's host copy exists until the move) and, with `int8`, the language model's
// linears as int8 rows and scales (their float weights are freed layer by layer).
int64_t load_allocation_bytes(const Checkpoint& checkpoint,
                              const std::function<bool(const std::string&)>& loaded,
                              at::ScalarType dtype, bool shared, bool int8) {
    int64_t bytes = 0;
    for (const std::string& name : checkpoint.names()) {
        if (!loaded(name)) continue;
        const StoredTensor& stored = checkpoint.stored(name);
        const int64_t numel        = stored_numel(stored);
        if (int8 && is_int8_quantized_key(name) && stored.shape.size() == 2)
            bytes += numel + stored.shape[0] * static_cast<int64_t>(sizeof(float));
        else if (!shared || to_scalar_type(stored.dtype) != dtype)
            bytes += numel * static_cast<int64_t>(c10::elementSize(dtype));
    }
    return bytes;
}

// The dtype the modules are built in before the release's tensors fill them: f16 modules are
// built in f32 (half-precision initialisation is not implemented on the CPU in every LibTorch).
at::ScalarType build_dtype_for(at::ScalarType dtype) {
    return dtype == at::kHalf ? at::kFloat : dtype;
}

// GLaMM releases may hold the CLIP tower's weights too; the engine reads them from its folder.
constexpr char kVisionTowerKeys[] = "model.vision_tower.";
bool in_glamm_checkpoint(const std::string& name) {
    return name.rfind(kVisionTowerKeys, 0) != 0;
}

// The tensor names under `prefix` (a checkpoint's keys of one component).
std::function<bool(const std::string&)> under(std::string prefix) {
    return [prefix = std::move(prefix)](const std::string& name) {
        return name.rfind(prefix, 0) == 0;
    };
}

// Refuses a load the memory cannot hold before anything is allocated (rather than the OOM killer
// ending the process minutes later), saying what it needs, what is free and what the settings
// that need less would need.
void check_load_memory(const GlammModel& m, const Checkpoint& checkpoint,
                       const Checkpoint& clip_checkpoint, bool int8) {
    release_free_heap(); // what this process holds free (an earlier model's tensors) is available
    const MemoryBudget budget = available_memory();
    if (budget.bytes < 0) return;
    const std::string clip_prefix = clip_vision_prefix(clip_checkpoint);
    auto needed                   = [&](at::ScalarType dtype, bool quantize) {
        const at::ScalarType build = build_dtype_for(dtype);
        const bool shared          = m.device.is_cpu();
        return load_allocation_bytes(checkpoint, in_glamm_checkpoint, build, shared, quantize) +
               load_allocation_bytes(clip_checkpoint, under(clip_prefix), build, shared, false);
    };
    const int64_t bytes = needed(m.dtype, int8);
    if (bytes <= budget.bytes) return;
    std::ostringstream os;
    os << "in " << dtype_short_name(m.dtype) << (int8 ? " with the language model in int8" : "")
       << " the weights need " << format_bytes(bytes)
       << " of memory (what is converted or quantized; tensors stored in the model's dtype are "
          "read from the files as needed) but "
       << format_bytes(budget.bytes) << " are free (" << budget.source << ").";
    if (m.device.is_cpu()) {
        for (const auto& [dtype, quantize] :
             {std::pair{at::kBFloat16, false}, std::pair{at::kBFloat16, true}}) {
            if (dtype == m.dtype && quantize == int8) continue;
            const int64_t other = needed(dtype, quantize);
            if (other >= bytes) continue;
            os << " --dtype bf16" << (quantize ? " --quantize int8" : "") << " would need "
               << format_bytes(other) << ".";
        }
    }
    os << " GLAMM_MEMORY_LIMIT_MB=0 skips this check.";
    fail(os.str());
}

// The box-embedding width is not in config.json (GLaMM hard-codes it): read it from this tensor.
constexpr char kRegionPosEmbedKey[] = "model.region_encoder.roi_align.pos_embedd.0.weight";

double elapsed_ms(std::chrono::steady_clock::time_point since) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since)
        .count();
}

bool is_clip_folder(const fs::path& dir) {
    std::error_code ec;
    return fs::is_directory(dir, ec) && fs::exists(dir / "config.json", ec);
}

// Counts parameters and on-disk dtypes of a component's keys.
ComponentInfo describe_component(const std::string& name, const std::string& prefix,
                                 torch::nn::Module& module, const Checkpoint& checkpoint) {
    ComponentInfo info{name, prefix, 0, {}};
    for (const auto& p : module.named_parameters()) {
        const std::string key = prefix + p.key();
        if (!checkpoint.contains(key)) {
            info.parameters += p.value().numel();
            continue;
        }
        // The release's count: a weight --quantize int8 replaced is empty in the module by now.
        const StoredTensor& stored = checkpoint.stored(key);
        info.parameters += stored_numel(stored);
        ++info.stored_dtypes[dtype_name(stored.dtype)];
    }
    // Stored buffers (SAM's positional-encoding matrix) are weights too.
    for (const auto& b : module.named_buffers()) {
        const std::string key = prefix + b.key();
        if (!checkpoint.contains(key)) continue;
        info.parameters += b.value().numel();
        ++info.stored_dtypes[dtype_name(checkpoint.stored(key).dtype)];
    }
    return info;
}

} // namespace

std::string resolve_vision_tower(const std::string& model_dir, const std::string& mm_vision_tower,
                                 const std::string& override_dir) {
    if (!override_dir.empty()) {
        if (!is_clip_folder(override_dir))
            fail("--vision-tower ", override_dir, " is not a CLIP folder (no config.json there)");
        return override_dir;
    }
    const fs::path candidate = fs::path(mm_vision_tower).is_absolute()
                                   ? fs::path(mm_vision_tower)
                                   : fs::path(model_dir) / mm_vision_tower;
    if (!mm_vision_tower.empty() && is_clip_folder(candidate))
        return candidate.lexically_normal().string();
    fail(
        "the CLIP vision tower \"", mm_vision_tower, "\" named by ", model_dir,
        "/config.json (mm_vision_tower) was not found. Download the Hugging Face model ",
        "openai/clip-vit-large-patch14-336 (config.json, preprocessor_config.json and the weights) "
        "and pass its folder with --vision-tower DIR, or put it at ",
        candidate.lexically_normal().string());
}

ClipFeatureSelection clip_selection_for(const GlammConfig& config, const ClipVisionConfig& clip) {
    const int64_t num_levels = config.with_region ? config.region_encoder.num_levels : 0;
    return clip_feature_selection(clip, config.mm_vision_select_layer, num_levels,
                                  config.mm_vision_select_feature);
}

std::unique_ptr<GlammModel> GlammModel::load(const ModelOptions& options) {
    auto check_stop = [&] { stop_if_asked(options.should_abort, "the model load"); };
    auto progress = [&](const std::string& stage, double fraction) {
        check_stop();
        if (options.on_progress) options.on_progress(stage, fraction);
    };
    // The weights advance the fraction from `from` to `to` tensor by tensor (reported at most
    // every percent), and a stop is honoured between two tensors.
    auto weights_progress = [&](const std::string& stage, double from, double to, int64_t total) {
        return [&progress, &check_stop, stage, from, to, total, last = -1.0](int64_t done) mutable {
            const double fraction =
                from + (to - from) * std::min(1.0, double(done) / std::max<int64_t>(1, total));
            if (fraction - last >= kProgressStep || last < 0) {
                progress(stage, fraction);
                last = fraction;
            } else {
                check_stop();
            }
        };
    };
    auto m       = std::make_unique<GlammModel>();
    m->model_dir = options.model_dir;
    if (m->model_dir.empty()) fail("no model folder given");
    std::error_code ec;
    if (!fs::is_directory(m->model_dir, ec)) fail("model folder ", m->model_dir, " does not exist");
    set_threads(options.threads);
    m->device = parse_device(options.device);
    m->dtype  = effective_dtype(parse_dtype(options.dtype), m->device);
    const bool int8 = parse_int8_quantization(options.quantize);
    if (int8 && !m->device.is_cpu())
        fail("int8 weights are a CPU path (the device is ", m->device.str(), ")");

    progress("reading configuration", 0.0);
    m->config = load_glamm_config(m->model_dir);
    m->vision_tower_dir =
        resolve_vision_tower(m->model_dir, m->config.mm_vision_tower, options.vision_tower_dir);
    m->clip_config    = load_clip_vision_config(m->vision_tower_dir);
    m->clip_processor = load_clip_image_processor_config(m->vision_tower_dir);
    if (m->clip_config.hidden_size != m->config.mm_hidden_size)
        fail("the vision tower in ", m->vision_tower_dir, " is ", m->clip_config.hidden_size,
             " wide but ", m->model_dir, "/config.json expects mm_hidden_size ",
             m->config.mm_hidden_size);
    m->clip_selection = clip_selection_for(m->config, m->clip_config);

    progress("reading the tokenizer", 0.05);
    m->tokenizer = Tokenizer::load(m->model_dir);

    progress("opening weights", 0.1);
    const Checkpoint checkpoint = with_context("opening the weights of " + m->model_dir,
                                               [&] { return Checkpoint::open(m->model_dir); });
    const Checkpoint clip_checkpoint =
        with_context("opening the vision tower " + m->vision_tower_dir,
                     [&] { return Checkpoint::open(m->vision_tower_dir); });
    m->config.llama = with_context("reading the language model's shapes in " + m->model_dir, [&] {
        return resolve_llama_config(m->config.llama, checkpoint);
    });
    if (m->tokenizer->vocab_size() > m->config.llama.vocab_size)
        fail("the tokenizer of ", m->model_dir, " has ", m->tokenizer->vocab_size(),
             " tokens but the model embeds only ", m->config.llama.vocab_size);
    if (checkpoint.contains(kRegionPosEmbedKey)) {
        const auto& shape = checkpoint.stored(kRegionPosEmbedKey).shape; // [D, ...]
        if (shape.empty())
            fail(m->model_dir, ": ", kRegionPosEmbedKey, " is a scalar; expected [dim, ...]");
        m->config.region_encoder.pos_embed_dim = shape[0];
    }

    with_context("loading " + m->model_dir,
                 [&] { check_load_memory(*m, checkpoint, clip_checkpoint, int8); });

    const std::string weights_stage =
        int8 ? "loading weights, the language model's linears to int8" : "loading weights";
    progress(weights_stage, 0.15);
    // Built directly in the target dtype (a 7B LLaMA is 13.5 GB in bf16, 27 GB in f32): on the
    // CPU every tensor stored in that dtype is then shared with the mapped file instead of copied
    // (LoadReport::share_stored_tensors), so the weights are in memory once; for a GPU the host
    // holds one bf16 copy until the move (built in f32, GLaMM-7B made the benchmark process peak
    // at 47.6 GB of host memory). Converting after loading rounds the same way as building in the
    // target dtype. f16 modules are built in f32: half-precision initialisation is not
    // implemented on the CPU in every LibTorch.
    const at::ScalarType build_dtype = build_dtype_for(m->dtype);
    LoadReport report(checkpoint);
    report.share_stored_tensors(m->device.is_cpu());
    // The total is what the tensors take in the module dtype (the model is not built yet).
    const int64_t total = load_allocation_bytes(checkpoint, in_glamm_checkpoint, build_dtype,
                                                /*shared=*/false, /*int8=*/false);
    report.on_each_tensor(weights_progress(weights_stage, 0.15, 0.8, total));
    report.ignore(kVisionTowerKeys); // CLIP is a separate download (spec §1.3)
    {
        // Each decoder layer is loaded as soon as it is built, so that its default
        // initialisation is freed before the next layer's is made: built whole first, GLaMM-7B's
        // load peaked at 15.5 GB of memory in bf16 (docs/benchmarks.md).
        DefaultDtypeGuard dtype_guard(build_dtype);
        m->build_components([&](int64_t index, LlamaDecoderLayerImpl& layer) {
            load_llama_layer(index, layer, report);
            // Quantized as soon as it is loaded, so that one layer's float weights at most are
            // in memory besides the int8 ones (a 7B model's would be 27 GB in f32).
            if (int8) layer.quantize_int8();
        });
    }
    const std::vector<ComponentRef> refs = m->component_refs();
    for (const ComponentRef& ref : refs) {
        if (ref.in_vision_tower) continue;
        if (ref.module == m->llama.get())
            load_llama(m->llama, report, /*layers_loaded=*/true);
        else
            report.load_module(*ref.module, ref.prefix);
    }
    report.finish("the weights in " + m->model_dir);
    m->ignored_keys = report.ignored_keys();

    progress("loading the vision tower", 0.8);
    const std::string clip_prefix = clip_vision_prefix(clip_checkpoint);
    LoadReport clip_report(clip_checkpoint);
    clip_report.share_stored_tensors(m->device.is_cpu());
    clip_report.on_each_tensor(weights_progress(
        "loading the vision tower", 0.8, 0.9,
        load_allocation_bytes(clip_checkpoint, under(clip_prefix), build_dtype, /*shared=*/false,
                              /*int8=*/false)));
    // A full CLIPModel checkpoint also holds the text tower and projections GLaMM never uses.
    for (const char* unused :
         {"text_model.", "logit_scale", "visual_projection.", "text_projection."})
        clip_report.ignore(unused);
    clip_report.ignore(clip_prefix + "embeddings.position_ids"); // a buffer in older saves
    clip_report.load_module(*m->clip, clip_prefix);
    clip_report.finish("the vision tower in " + m->vision_tower_dir);
    for (const auto& key : clip_report.ignored_keys()) m->ignored_keys.push_back(key);

    progress("moving to the device", 0.9);
    for (const ComponentRef& ref : refs) {
        m->components.push_back(
            describe_component(ref.name, ref.in_vision_tower ? clip_prefix : ref.prefix,
                               *ref.module, ref.in_vision_tower ? clip_checkpoint : checkpoint));
        ref.module->eval();
        ref.module->to(m->device, m->dtype);
    }
    // Inference on a GPU: q/k/v and gate/up each as one product (fewer, larger kernels per
    // decode step). The parameters keep their names and values (views of the merged tensors).
    static const bool keep_separate = env_flag("GLAMM_NO_MERGED_PROJECTIONS");
    if ((m->device.is_cuda() || gpu_kernels_emulated()) && !keep_separate && !int8)
        m->llama->merge_projections();
    if (int8) {
        progress("quantizing the language model's head to int8", 0.95);
        m->llama->quantize_int8(); // lm_head and the flag: the layers were quantized as loaded
    }
    progress("ready", 1.0);
    return m;
}

void GlammModel::build_components(const LlamaLayerBuilt& on_llama_layer) {
    const GlammConfig& c = config;
    clip                 = ClipVisionModel(clip_config);
    mm_projector         = MmProjector(c);
    llama                = LlamaForCausalLM(c.llama, on_llama_layer);
    text_projection      = TextProjection(c.llama.hidden_size, c.out_dim);
    sam_image_encoder    = SamImageEncoder(c.grounding_encoder);
    sam_prompt_encoder   = SamPromptEncoder(c.grounding_encoder);
    sam_mask_decoder     = SamMaskDecoder(c.grounding_encoder);
    if (c.with_region)
        region_encoder = RegionEncoder(c.region_encoder, c.mm_hidden_size, c.llama.hidden_size,
                                       clip_config.patch_size);
}

std::vector<std::string> GlammModel::component_names(const GlammConfig& config) {
    std::vector<std::string> names = {"clip_vision", "mm_projector"};
    if (config.with_region) names.push_back("region_encoder");
    for (const char* name : {"llama", "text_projection", "sam_image_encoder", "sam_prompt_encoder",
                             "sam_mask_decoder"})
        names.emplace_back(name);
    return names;
}

std::vector<ComponentRef> GlammModel::component_refs() const {
    // Every component GLaMM can have; this model's are component_names(config)'s, in its order.
    const ComponentRef all[] = {
        {"clip_vision", kClipVisionWritePrefix, clip.get(), true},
        {"mm_projector", kMmProjectorPrefix, mm_projector.get(), false},
        {"region_encoder", kRegionEncoderPrefix, region_encoder.get(), false},
        {"llama", "", llama.get(), false},
        {"text_projection", kTextProjectionPrefix, text_projection.get(), false},
        {"sam_image_encoder", kSamImageEncoderPrefix, sam_image_encoder.get(), false},
        {"sam_prompt_encoder", kSamPromptEncoderPrefix, sam_prompt_encoder.get(), false},
        {"sam_mask_decoder", kSamMaskDecoderPrefix, sam_mask_decoder.get(), false}};
    std::vector<ComponentRef> refs;
    for (const std::string& name : component_names(config)) {
        const auto* ref = std::find_if(std::begin(all), std::end(all),
                                       [&](const ComponentRef& r) { return r.name == name; });
        if (ref == std::end(all))
            fail("component_refs: no component named ", name); // component_names out of step
        refs.push_back(*ref);
    }
    return refs;
}

void GlammModel::save_weights(const std::string& glamm_file, const std::string& clip_file,
                              c10::ScalarType dtype) const {
    std::vector<at::Tensor> keep_alive; // contiguous CPU copies the blobs point into
    std::vector<TensorBlob> glamm_blobs, clip_blobs;
    for (const ComponentRef& ref : component_refs()) {
        auto add = [&](const std::string& key, const at::Tensor& value) {
            at::Tensor t = value.detach().to(at::kCPU, dtype).contiguous();
            keep_alive.push_back(t);
            TensorBlob blob{ref.prefix + key, from_scalar_type(dtype),
                            std::vector<int64_t>(t.sizes().begin(), t.sizes().end()), t.data_ptr(),
                            t.nbytes()};
            (ref.in_vision_tower ? clip_blobs : glamm_blobs).push_back(std::move(blob));
        };
        for (const auto& p : ref.module->named_parameters()) add(p.key(), p.value());
        for (const auto& b : ref.module->named_buffers()) add(b.key(), b.value());
    }
    write_safetensors(glamm_file, glamm_blobs, {{"format", "pt"}});
    write_safetensors(clip_file, clip_blobs, {{"format", "pt"}});
}

EncodedImage GlammModel::encode_image(const Image& image, const ShouldAbort& should_abort) const {
    if (image.empty()) fail("the image is empty");
    c10::InferenceMode inference;
    EncodedImage out;
    out.height = image.height;
    out.width  = image.width;

    auto t0 = std::chrono::steady_clock::now();
    // SAM's first: it refuses an aspect ratio its longest-side resize cannot keep (over 2 × its
    // input side : 1), before CLIP's shortest-edge resize would make that sliver hundreds of
    // megabytes long.
    out.sam_input         = preprocess_sam(image, config.grounding_encoder);
    out.clip_pixel_values = preprocess_clip(image, clip_config, clip_processor);
    out.preprocess_ms     = elapsed_ms(t0);

    t0       = std::chrono::steady_clock::now();
    out.clip = clip->forward(out.clip_pixel_values.to(device), clip_selection, should_abort);
    // [1, P, C] -> [P, H]
    out.image_embeddings = mm_projector->forward(out.clip.image_features).squeeze(0);
    out.clip_ms          = elapsed_ms(t0);

    t0                       = std::chrono::steady_clock::now();
    out.sam_image_embeddings =
        sam_image_encoder->forward(out.sam_input.pixel_values.to(device), nullptr, should_abort);
    if (device.is_cuda()) torch::cuda::synchronize();
    out.sam_encoder_ms = elapsed_ms(t0);
    return out;
}

at::Tensor GlammModel::normalize_boxes(const std::vector<Box>& boxes, int64_t height,
                                       int64_t width) const {
    std::vector<double> values;
    for (const Box& b : boxes) {
        values.push_back(b.x1 / double(width));
        values.push_back(b.y1 / double(height));
        values.push_back(b.x2 / double(width));
        values.push_back(b.y2 / double(height));
    }
    // [N, 4] in double, as the reference computes them before casting.
    at::Tensor normalized =
        torch::tensor(values, torch::kDouble).reshape({static_cast<int64_t>(boxes.size()), 4});
    // ref: groundingLMM app.py region_enc_processor: float64 -> .half() -> bfloat16. In float32
    // the golden reference divides in float32 (tests/data/golden/README.md).
    if (dtype == c10::kFloat) return normalized.to(torch::kFloat).to(device);
    return normalized.to(torch::kHalf).to(dtype).to(device);
}

at::Tensor GlammModel::encode_regions(const EncodedImage& image, const at::Tensor& boxes_normalized,
                                      const ShouldAbort& should_abort) const {
    c10::InferenceMode inference;
    if (!region_encoder) fail("this model has no region encoder (with_region is false)");
    if (image.region_maps.empty() && boxes_normalized.defined() && boxes_normalized.numel() > 0)
        image.region_maps = region_encoder->fuse(image.clip.region_levels, should_abort);
    return region_encoder->extract(image.region_maps, boxes_normalized);
}

at::Tensor GlammModel::assemble(const std::vector<int64_t>& ids, const EncodedImage& image,
                                const at::Tensor& region_features) const {
    c10::InferenceMode inference;
    at::Tensor id_tensor = torch::tensor(ids, torch::kLong).to(device);
    return assemble_embeddings(llama, id_tensor, image.image_embeddings, region_features,
                               kImageTokenIndex, tokenizer->bbox_id());
}

DecodedMasks GlammModel::decode_masks(const EncodedImage& image,
                                      const at::Tensor& seg_hidden) const {
    c10::InferenceMode inference;
    DecodedMasks out;
    auto t0                      = std::chrono::steady_clock::now();
    at::Tensor prompt            = text_projection->forward(seg_hidden); // [K, D]
    SamPromptEmbeddings prompts  = sam_prompt_encoder->forward(prompt);
    at::Tensor image_pe          = sam_prompt_encoder->get_dense_pe();
    SamMaskDecoderOutput decoded = sam_mask_decoder->forward(image.sam_image_embeddings, image_pe,
                                                             prompts.sparse, prompts.dense);
    out.low_res_masks            = decoded.low_res_masks;
    out.iou_predictions          = decoded.iou_predictions;
    out.decoder_ms               = elapsed_ms(t0);

    t0                 = std::chrono::steady_clock::now();
    out.logits         = postprocess_masks(out.low_res_masks,
                                           mask_geometry(image.sam_input, image.height, image.width));
    out.postprocess_ms = elapsed_ms(t0);
    return out;
}

MaskGeometry GlammModel::mask_geometry(const SamPreprocessed& sam, int64_t height,
                                       int64_t width) const {
    MaskGeometry geometry;
    geometry.img_size        = config.grounding_encoder.img_size;
    geometry.resized_height  = sam.resized_h;
    geometry.resized_width   = sam.resized_w;
    geometry.original_height = height;
    geometry.original_width  = width;
    return geometry;
}

std::string GlammModel::first_turn_prompt(const std::string& instruction) const {
    Conversation conversation(config.mm_use_im_start_end);
    conversation.add_user(instruction);
    return conversation.prompt();
}

std::string GlammModel::describe() const {
    std::ostringstream os;
    const LlamaConfig& l = config.llama;
    const SamConfig& s   = config.grounding_encoder;
    os << "model          " << model_dir << " ("
       << (config.architectures.empty() ? "?" : config.architectures[0]) << ")\n";
    os << "vision tower   " << vision_tower_dir << "\n";
    os << "device, dtype  " << device.str() << ", " << dtype_short_name(dtype)
       << (llama->quantized() ? " (language model linears int8)" : "") << "\n";
    os << "llama          hidden " << l.hidden_size << ", layers " << l.num_hidden_layers
       << ", heads " << l.num_attention_heads << " (kv " << l.kv_heads() << "), mlp "
       << l.intermediate_size << ", vocab " << l.vocab_size << ", rope theta " << l.rope_theta
       << "\n";
    os << "clip_vision    hidden " << clip_config.hidden_size << ", layers "
       << clip_config.num_hidden_layers << ", heads " << clip_config.num_attention_heads
       << ", image " << clip_config.image_size << ", patch " << clip_config.patch_size << " -> "
       << num_image_tokens() << " image tokens\n";
    os << "sam            embed " << s.embed_dim << ", depth " << s.depth << ", heads "
       << s.num_heads << ", global blocks [";
    for (size_t i = 0; i < s.global_attn_indexes.size(); ++i)
        os << (i ? "," : "") << s.global_attn_indexes[i];
    os << "], prompt dim " << s.prompt_embed_dim << ", image " << s.img_size << "\n";
    os << "region encoder " << (config.with_region ? "yes" : "no") << ", levels "
       << config.region_encoder.num_levels << ", box embedding "
       << config.region_encoder.pos_embed_dim << "\n\n";
    os << "component            parameters  stored dtypes (tensors)\n";
    int64_t total = 0;
    for (const auto& c : components) {
        char line[160];
        std::snprintf(line, sizeof line, "%-20s %11lld  ", c.name.c_str(),
                      static_cast<long long>(c.parameters));
        os << line;
        bool first = true;
        for (const auto& [name, count] : c.stored_dtypes) {
            os << (first ? "" : ", ") << name << " (" << count << ")";
            first = false;
        }
        os << "\n";
        total += c.parameters;
    }
    os << "total                " << total << "\n";
    if (!ignored_keys.empty())
        os << "ignored keys         " << ignored_keys.size() << " (known harmless)\n";
    const Tokenizer& t = *tokenizer;
    os << "\nspecial tokens: bos " << t.bos_id() << ", eos " << t.eos_id() << ", unk " << t.unk_id()
       << ", pad " << t.pad_id() << ", image " << kImageTokenIndex << "\n";
    os << "added tokens:";
    for (const auto& [name, id] : t.added_tokens()) os << " " << name << "=" << id;
    os << "\nvocabulary: " << t.vocab_size() << " tokens (" << t.sp_vocab_size()
       << " sentencepiece)\n";
    return os.str();
}

} // namespace glamm
