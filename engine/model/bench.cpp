// glamm bench: stage timings against the machine's measured limits. Legend: S prompt positions,
// N generated tokens, H LLaMA width, T tokens of an encoder, E / C encoder widths.
#include "model/bench.h"

#include "core/checkpoint.h"
#include "core/cuda_graph.h"
#include "core/device.h"
#include "core/error.h"
#include "grounding/sam_image_encoder.h"
#include "language/generation.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <sys/resource.h>

namespace glamm {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

void sync(const c10::Device& device) {
    if (device.is_cuda()) torch::cuda::synchronize();
}

// Filler appended to the instruction to lengthen the prompt (--prompt-tokens).
constexpr char kPromptFiller[] = " Describe every object in the picture.";
// Matmuls per rate measurement (after one warm-up).
constexpr int kMatmulRuns = 3;
constexpr int kCopyRuns   = 5;
// getrusage reports ru_maxrss in KiB on Linux.
constexpr double kKibPerMib   = 1024;
constexpr double kBytesPerMib = kKibPerMib * kKibPerMib;

double peak_rss_mib() {
    struct rusage usage {};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss / kKibPerMib; // KiB on Linux
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Collects each stage's time over repeats (warm-up runs are not recorded).
struct Recorder {
    std::vector<StageStat> stages;
    bool recording = false;
    void add(const std::string& name, double ms) {
        if (!recording) return;
        for (auto& s : stages)
            if (s.name == name) {
                s.ms.push_back(ms);
                return;
            }
        StageStat stat;
        stat.name = name;
        stat.ms   = {ms};
        stages.push_back(stat);
    }
    void finish() {
        for (auto& s : stages) {
            s.min_ms    = *std::min_element(s.ms.begin(), s.ms.end());
            s.median_ms = median(s.ms);
        }
    }
    StageStat* find(const std::string& name) {
        for (auto& s : stages)
            if (s.name == name) return &s;
        return nullptr;
    }
};

double matmul_gflops(const c10::Device& device, at::ScalarType dtype, int64_t n) {
    c10::InferenceMode guard;
    const auto options = at::TensorOptions().device(device).dtype(dtype);
    at::Tensor a       = at::randn({n, n}, options.dtype(at::kFloat)).to(dtype);
    at::Tensor b       = at::randn({n, n}, options.dtype(at::kFloat)).to(dtype);
    at::Tensor c       = at::mm(a, b); // warm-up (oneDNN primitive creation)
    sync(device);
    double best = 1e30;
    for (int i = 0; i < kMatmulRuns; ++i) {
        const auto t0 = Clock::now();
        c             = at::mm(a, b);
        sync(device);
        best = std::min(best, ms_since(t0));
    }
    return 2.0 * n * n * n / (best * 1e-3) / 1e9;
}

double copy_gbps(const c10::Device& device, int64_t mib) {
    c10::InferenceMode guard;
    const int64_t n = (mib << 20) / 4;
    at::Tensor src  = at::ones({n}, at::TensorOptions().device(device).dtype(at::kFloat));
    at::Tensor dst  = at::empty_like(src);
    dst.copy_(src);
    sync(device);
    double best = 1e30;
    for (int i = 0; i < kCopyRuns; ++i) {
        const auto t0 = Clock::now();
        dst.copy_(src);
        sync(device);
        best = std::min(best, ms_since(t0));
    }
    return 2.0 * n * 4 / (best * 1e-3) / 1e9; // read + write
}

double rate_for(const MachineLimits& limits, at::ScalarType dtype) {
    return dtype == at::kFloat ? limits.f32_gflops : limits.bf16_gflops;
}

void set_matmul_bound(StageStat* stage, double flops, double gflops) {
    if (!stage || gflops <= 0) return;
    stage->bound_ms   = flops / (gflops * 1e9) * 1e3;
    stage->bound_kind = "matmul";
}

// The token at `index` chosen from the last row of hidden [1, T, H], as generate() chooses.
int64_t next_token(LlamaForCausalLM& llama, const at::Tensor& hidden) {
    GenerationOptions greedy;
    uint64_t rng           = 0;
    const at::Tensor last  = hidden.select(1, hidden.size(1) - 1); // [1, H]
    const at::Tensor logit = llama->logits(last).squeeze(0);       // [V]
    return choose_token(logit, greedy, llama->dtype(), rng);
}

// GLaMM's algorithm (generation config use_cache=False): for every token, the whole sequence
// (prompt + tokens so far) through the LLaMA again. ref: groundingLMM model/GLaMM.py evaluate ->
// generate with use_cache False.
std::vector<int64_t> generate_without_cache(LlamaForCausalLM& llama,
                                            const at::Tensor& prompt_embeds, int64_t tokens) {
    c10::InferenceMode guard;
    std::vector<int64_t> ids;
    at::Tensor sequence = prompt_embeds; // [1, S + i, H]
    for (int64_t i = 0; i < tokens; ++i) {
        const at::Tensor hidden = llama->forward(sequence); // no cache: all positions
        const int64_t id        = next_token(llama, hidden);
        ids.push_back(id);
        const at::Tensor id_tensor = torch::tensor({id}, torch::kLong).to(prompt_embeds.device());
        sequence = torch::cat({sequence, llama->embed(id_tensor).unsqueeze(0)}, 1);
    }
    return ids;
}

Image synthetic_image_if_empty(const Image& image) {
    if (!image.empty()) return image;
    // A deterministic 640×480 gradient (the bench measures speed, not answers).
    Image out;
    out.width  = 640;
    out.height = 480;
    out.rgb.resize(static_cast<size_t>(out.width * out.height * 3));
    for (int64_t y = 0; y < out.height; ++y)
        for (int64_t x = 0; x < out.width; ++x) {
            uint8_t* p = out.rgb.data() + (y * out.width + x) * 3;
            p[0]       = static_cast<uint8_t>(x % 251);
            p[1]       = static_cast<uint8_t>(y % 241);
            p[2]       = static_cast<uint8_t>((x + y) % 239);
        }
    return out;
}

void fill_common(BenchResult& r, const c10::Device& device, at::ScalarType dtype,
                 const BenchOptions& options) {
    r.device  = device.str();
    r.dtype   = dtype_short_name(dtype);
    r.threads = at::get_num_threads();
    r.limits  = measure_machine(device, options.matmul_size, options.copy_mib);
}

} // namespace

double sam_encoder_flops(const SamConfig& c) {
    const double E = c.embed_dim, G = c.grid_size(), D = c.prompt_embed_dim;
    const double tokens = G * G;
    // Windowed blocks pad the grid to a multiple of the window.
    const double padded_side = std::ceil(G / c.window_size) * c.window_size;
    const double windows     = (padded_side / c.window_size) * (padded_side / c.window_size);
    const double window_t    = double(c.window_size) * c.window_size;
    double flops = 2.0 * tokens * E * (3.0 * c.patch_size * c.patch_size); // patch embedding
    for (int64_t i = 0; i < c.depth; ++i) {
        const bool global = std::find(c.global_attn_indexes.begin(), c.global_attn_indexes.end(),
                                      i) != c.global_attn_indexes.end();
        const double t    = global ? tokens : windows * window_t; // positions the linears see
        flops += 2.0 * t * E * (3 * E + E + 2.0 * c.mlp_dim());
        flops += global ? 4.0 * tokens * tokens * E : windows * 4.0 * window_t * window_t * E;
    }
    flops += 2.0 * tokens * E * D + 2.0 * tokens * D * D * 9; // neck
    return flops;
}

double clip_flops(const ClipVisionConfig& c, int64_t layers) {
    const double C = c.hidden_size, T = c.num_positions(), I = c.intermediate_size;
    double flops = 2.0 * c.num_patches() * C * (c.num_channels * c.patch_size * c.patch_size);
    flops += layers * (2.0 * T * (4 * C * C + 2 * C * I) + 4.0 * T * T * C);
    return flops;
}

MachineLimits measure_machine(const c10::Device& device, int64_t matmul_size, int64_t copy_mib) {
    MachineLimits limits;
    limits.bf16_gflops = matmul_gflops(device, at::kBFloat16, matmul_size);
    limits.f32_gflops  = matmul_gflops(device, at::kFloat, matmul_size);
    limits.copy_gbps   = copy_gbps(device, copy_mib);
    return limits;
}

const StageStat* BenchResult::stage(const std::string& name) const {
    for (const auto& s : stages)
        if (s.name == name) return &s;
    return nullptr;
}

BenchResult run_bench(const GlammModel& model, const Image& image_in, const BenchOptions& options) {
    if (options.tokens < 1) fail("bench: --tokens must be at least 1");
    if (options.repeat < 1) fail("bench: --repeat must be at least 1");
    c10::InferenceMode inference;
    const Image image = synthetic_image_if_empty(image_in);
    BenchResult r;
    fill_common(r, model.device, model.dtype, options);
    if (model.llama->quantized()) r.dtype += "+int8"; // the language model's linears
    LlamaForCausalLM& llama    = model.llama;
    const Tokenizer& tokenizer = *model.tokenizer;

    // The GCG instruction, lengthened with filler to about --prompt-tokens positions.
    const std::string gcg = "Could you please give me a detailed description of the image? Please "
                            "respond with interleaved segmentation masks for the corresponding "
                            "parts of the answer.";
    std::string instruction = gcg;
    auto positions          = [&](const std::string& text) {
        const auto ids = tokenizer.encode_with_image(model.first_turn_prompt(text));
        return static_cast<int64_t>(ids.size()) - 1 + model.num_image_tokens();
    };
    if (options.prompt_tokens > 0) {
        const int64_t per_filler =
            std::max<int64_t>(1, positions(gcg + kPromptFiller) - positions(gcg));
        while (positions(instruction) + per_filler <= options.prompt_tokens)
            instruction += kPromptFiller;
    }
    const std::vector<int64_t> prompt =
        tokenizer.encode_with_image(model.first_turn_prompt(instruction));
    const Box box{image.width * 0.25, image.height * 0.25, image.width * 0.75, image.height * 0.75};

    // Every ask of a stage whether to stop, timed: the longest wait a Stop would have.
    std::vector<Clock::time_point> asks;
    const ShouldAbort ask = [&asks] {
        asks.push_back(Clock::now());
        return false;
    };
    auto longest_wait = [&asks](Clock::time_point begin, Clock::time_point end) {
        double longest          = 0;
        Clock::time_point since = begin;
        for (const auto& at : asks) {
            if (at < begin || at > end) continue;
            longest =
                std::max(longest, std::chrono::duration<double, std::milli>(at - since).count());
            since = at;
        }
        return std::max(longest, std::chrono::duration<double, std::milli>(end - since).count());
    };

    Recorder rec;
    std::vector<double> cached_totals, reference_totals;
    for (int run = 0; run < options.warmup + options.repeat; ++run) {
        rec.recording = run >= options.warmup;
        r.stop_wait_ms.clear();
        asks.clear();
        const auto e0          = Clock::now();
        const EncodedImage enc = model.encode_image(image, ask);
        r.stop_wait_ms.emplace_back("encode", longest_wait(e0, Clock::now()));
        rec.add("preprocess", enc.preprocess_ms);
        rec.add("clip", enc.clip_ms);
        rec.add("sam_encoder", enc.sam_encoder_ms);
        if (model.region_encoder) {
            const at::Tensor boxes = model.normalize_boxes({box}, image.height, image.width);
            const auto t0          = Clock::now();
            model.encode_regions(enc, boxes, ask);
            sync(model.device);
            rec.add("region", ms_since(t0));
            r.stop_wait_ms.emplace_back("region", longest_wait(t0, Clock::now()));
            // Another box on the same image: the fused maps are reused.
            const at::Tensor other = model.normalize_boxes(
                {Box{0.0, 0.0, image.width * 0.5, image.height * 0.5}}, image.height, image.width);
            const auto t1 = Clock::now();
            model.encode_regions(enc, other);
            sync(model.device);
            rec.add("region_again", ms_since(t1));
        }
        const at::Tensor prompt_embeds = model.assemble(prompt, enc, at::Tensor()); // [1, S, H]
        r.prompt_positions             = prompt_embeds.size(1);

        // Prefill (to the first token) and forced decoding with the KV cache.
        KVCache cache = llama->make_cache();
        GenerationOptions gen;
        gen.max_new_tokens = options.tokens;
        gen.eos_token_ids  = {kImageTokenIndex}; // never produced: every token is generated
        Clock::time_point first_token;
        GenerationCallbacks callbacks;
        callbacks.on_token = [&](int64_t, int64_t index) {
            if (index == 0) {
                sync(model.device);
                first_token = Clock::now();
            }
        };
        callbacks.should_abort        = ask;
        const auto t0                 = Clock::now();
        const GenerationResult result = generate(llama, prompt_embeds, cache, gen, callbacks);
        sync(model.device);
        const auto t1 = Clock::now();
        r.stop_wait_ms.emplace_back("prefill", longest_wait(t0, first_token));
        if (options.tokens > 1)
            r.stop_wait_ms.emplace_back("decode", longest_wait(first_token, t1));
        callbacks.should_abort = {};
        rec.add("prefill", std::chrono::duration<double, std::milli>(first_token - t0).count());
        if (options.tokens > 1)
            rec.add("decode", std::chrono::duration<double, std::milli>(t1 - first_token).count());
        const double generate_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
        r.greedy_ids             = result.ids;
        r.decode_mode            = to_string(result.decode_mode);
        r.decode_fallback        = result.decode_fallback;

        // The same tokens decoded one eager step at a time, when the steps above ran otherwise
        // (a CUDA graph): the graph's gain, measured in the same run.
        if (result.decode_mode != DecodeMode::kEager && options.tokens > 1) {
            KVCache eager_cache = llama->make_cache();
            gen.decode_mode     = DecodeMode::kEager;
            const GenerationResult eager =
                generate(llama, prompt_embeds, eager_cache, gen, callbacks);
            sync(model.device);
            rec.add("decode_eager",
                    std::chrono::duration<double, std::milli>(Clock::now() - first_token).count());
            r.eager_ids_match = eager.ids == result.ids;
            gen.decode_mode   = DecodeMode::kAuto;
        }

        // One mask from the last producer state, as a [SEG] would give.
        const at::Tensor seg    = result.producer_hidden_states.narrow(0, 0, 1); // [1, H]
        const DecodedMasks mask = model.decode_masks(enc, seg);
        rec.add("mask_decoder", mask.decoder_ms);
        rec.add("postprocess", mask.postprocess_ms);
        // A grounded caption end to end: the image encoded, the answer generated, its mask.
        const double around = enc.preprocess_ms + enc.clip_ms + enc.sam_encoder_ms +
                              mask.decoder_ms + mask.postprocess_ms;
        if (rec.recording) cached_totals.push_back(generate_ms + around);

        if (options.reference) {
            const auto r0   = Clock::now();
            r.reference_ids = generate_without_cache(llama, prompt_embeds, options.tokens);
            sync(model.device);
            const double ms = ms_since(r0);
            rec.add("reference_generate", ms);
            if (rec.recording) reference_totals.push_back(ms + around);
        }
    }
    rec.finish();

    // Bounds from the measured limits.
    const LlamaConfig& l    = model.config.llama;
    // Multiply-adds per position of the decoder layers' linears (q, o: H × Hq D; k, v: H × Hkv D;
    // gate, up, down: H × I), counted from the config: int8 layers hold no float weights.
    const double H = l.hidden_size, D = l.head_dim();
    const double layer_params =
        l.num_hidden_layers * (2.0 * H * l.num_attention_heads * D + 2.0 * H * l.kv_heads() * D +
                               3.0 * H * l.intermediate_size);
    const double head_params = double(l.hidden_size) * l.vocab_size;
    const double rate        = rate_for(r.limits, model.dtype);
    r.decode_tokens          = options.tokens - 1;
    if (StageStat* s = rec.find("prefill")) {
        // 2 × params × tokens (attention scores left out) + the first token's lm_head.
        set_matmul_bound(s, 2.0 * layer_params * r.prompt_positions + 2.0 * head_params, rate);
        r.prefill_tokens_per_s = r.prompt_positions / (s->median_ms / 1e3);
    }
    r.weight_bytes_decode = static_cast<double>(llama->decode_weight_bytes());
    if (StageStat* s = rec.find("decode")) {
        // The convention: a decode step reads every weight once at the copy's one-way rate.
        const double one_way  = r.limits.copy_gbps / 2 * 1e9;
        s->bound_ms           = r.decode_tokens * r.weight_bytes_decode / one_way * 1e3;
        s->bound_kind         = "bandwidth";
        r.decode_ms_per_token = s->median_ms / r.decode_tokens;
    }
    set_matmul_bound(rec.find("sam_encoder"), sam_encoder_flops(model.config.grounding_encoder),
                     rate);
    set_matmul_bound(rec.find("clip"),
                     clip_flops(model.clip_config, model.clip_selection.deepest()), rate);
    r.stages = rec.stages;
    if (options.reference) {
        r.has_reference = true;
        r.reference_ms  = median(reference_totals);
    }
    r.cached_ms = median(cached_totals);
    if (r.has_reference && r.cached_ms > 0) r.reference_speedup = r.reference_ms / r.cached_ms;
    if (const StageStat* e = r.stage("decode_eager")) {
        const StageStat* d   = r.stage("decode");
        r.eager_ms_per_token = e->median_ms / std::max<int64_t>(1, r.decode_tokens);
        r.eager_over_decode  = d && d->median_ms > 0 ? e->median_ms / d->median_ms : 0.0;
    }
    r.peak_rss_mib = peak_rss_mib();
    DeviceMemoryStats gpu;
    if (cuda_memory_stats(model.device, gpu)) {
        r.peak_gpu_mib          = gpu.allocated_peak / kBytesPerMib;
        r.peak_gpu_reserved_mib = gpu.reserved_peak / kBytesPerMib;
    }
    return r;
}

BenchResult run_encoder_bench(const std::string& clip_dir, const std::string& sam_dir,
                              const Image& image_in, const std::string& device_name,
                              const std::string& dtype_name, int threads,
                              const BenchOptions& options) {
    if (clip_dir.empty() && sam_dir.empty()) fail("bench: give --clip DIR and/or --sam DIR");
    set_threads(threads);
    const c10::Device device   = parse_device(device_name);
    const at::ScalarType dtype = effective_dtype(parse_dtype(dtype_name), device);
    const Image image          = synthetic_image_if_empty(image_in);
    BenchResult r;
    fill_common(r, device, dtype, options);
    const double rate = rate_for(r.limits, dtype);
    Recorder rec;

    ClipVisionConfig clip_config;
    ClipImageProcessorConfig processor;
    ClipVisionModel clip{nullptr};
    ClipFeatureSelection selection;
    if (!clip_dir.empty()) {
        clip_config = load_clip_vision_config(clip_dir);
        processor   = load_clip_image_processor_config(clip_dir);
        const GlammConfig defaults;
        selection             = clip_feature_selection(clip_config, defaults.mm_vision_select_layer,
                                                       defaults.region_encoder.num_levels,
                                                       defaults.mm_vision_select_feature);
        const Checkpoint ckpt = Checkpoint::open(clip_dir);
        clip                  = ClipVisionModel(clip_config);
        LoadReport report(ckpt);
        report.load_module(*clip, clip_vision_prefix(ckpt));
        report.finish("the CLIP weights in " + clip_dir);
        clip->eval();
        clip->to(device, dtype);
    }
    SamConfig sam_config; // SAM ViT-H
    SamImageEncoder sam{nullptr};
    if (!sam_dir.empty()) {
        const Checkpoint ckpt = Checkpoint::open(sam_dir);
        sam                   = SamImageEncoder(sam_config);
        LoadReport report(ckpt);
        report.ignore("prompt_encoder.");
        report.ignore("mask_decoder.");
        report.load_module(*sam, "image_encoder.");
        report.finish("the SAM weights in " + sam_dir);
        sam->eval();
        sam->to(device, dtype);
    }
    c10::InferenceMode inference;
    for (int run = 0; run < options.warmup + options.repeat; ++run) {
        rec.recording = run >= options.warmup;
        auto t0       = Clock::now();
        at::Tensor clip_pixels, sam_pixels;
        if (clip) clip_pixels = preprocess_clip(image, clip_config, processor);
        if (sam) sam_pixels = preprocess_sam(image, sam_config).pixel_values;
        rec.add("preprocess", ms_since(t0));
        if (clip) {
            t0 = Clock::now();
            clip->forward(clip_pixels.to(device, dtype), selection);
            sync(device);
            rec.add("clip", ms_since(t0));
        }
        if (sam) {
            t0 = Clock::now();
            sam->forward(sam_pixels.to(device, dtype));
            sync(device);
            rec.add("sam_encoder", ms_since(t0));
        }
    }
    rec.finish();
    if (clip)
        set_matmul_bound(rec.find("clip"), clip_flops(clip_config, selection.deepest()), rate);
    if (sam) set_matmul_bound(rec.find("sam_encoder"), sam_encoder_flops(sam_config), rate);
    r.stages       = rec.stages;
    r.peak_rss_mib = peak_rss_mib();
    return r;
}

std::string BenchResult::to_json() const {
    nlohmann::ordered_json j;
    j["device"]               = device;
    j["dtype"]                = dtype;
    j["threads"]              = threads;
    j["machine"]              = {{"bf16_matmul_gflops", limits.bf16_gflops},
                                 {"f32_matmul_gflops", limits.f32_gflops},
                                 {"copy_gbps_read_plus_write", limits.copy_gbps}};
    nlohmann::ordered_json st = nlohmann::ordered_json::object();
    for (const auto& s : stages) {
        nlohmann::ordered_json e;
        e["min_ms"]    = s.min_ms;
        e["median_ms"] = s.median_ms;
        e["runs_ms"]   = s.ms;
        if (s.bound_ms > 0) {
            e["bound_ms"]   = s.bound_ms;
            e["bound_kind"] = s.bound_kind;
            e["efficiency"] = s.efficiency();
        }
        st[s.name] = e;
    }
    j["stages"]               = st;
    j["prompt_positions"]     = prompt_positions;
    j["decode_tokens"]        = decode_tokens;
    j["prefill_tokens_per_s"] = prefill_tokens_per_s;
    j["decode_ms_per_token"]  = decode_ms_per_token;
    j["decode_weight_bytes"]  = weight_bytes_decode;
    j["peak_rss_mib"]         = peak_rss_mib;
    j["peak_gpu_mib"]         = peak_gpu_mib >= 0 ? nlohmann::ordered_json(peak_gpu_mib) : nullptr;
    j["peak_gpu_reserved_mib"] =
        peak_gpu_reserved_mib >= 0 ? nlohmann::ordered_json(peak_gpu_reserved_mib) : nullptr;
    if (!stop_wait_ms.empty()) {
        nlohmann::ordered_json waits;
        for (const auto& [stage, ms] : stop_wait_ms) waits[stage] = ms;
        j["stop_wait_ms"] = waits;
    }
    j["decode_mode"] = decode_mode;
    if (!decode_fallback.empty()) j["decode_fallback"] = decode_fallback;
    if (stage("decode_eager")) {
        j["decode_eager"] = {{"ms_per_token", eager_ms_per_token},
                             {"graph_speedup", eager_over_decode},
                             {"same_ids", eager_ids_match}};
    }
    j["greedy_ids"] = greedy_ids;
    // Encode (preprocess, CLIP, SAM) + prefill + decode + one mask, median over repeats.
    j["caption_ms"] = cached_ms;
    if (has_reference) {
        j["reference"] = {{"caption_ms", reference_ms},
                          {"speedup", reference_speedup},
                          {"same_ids", reference_ids == greedy_ids},
                          {"ids", reference_ids}};
    }
    return j.dump(2) + "\n";
}

std::string BenchResult::table() const {
    std::ostringstream os;
    char line[320];
    std::snprintf(line, sizeof line,
                  "device %s, dtype %s, %d threads\nmachine: bf16 matmul %.1f GFLOP/s, f32 matmul "
                  "%.1f GFLOP/s, copy %.1f GB/s (read + write)\n\n",
                  device.c_str(), dtype.c_str(), threads, limits.bf16_gflops, limits.f32_gflops,
                  limits.copy_gbps);
    os << line;
    os << "stage                 min ms   median ms    bound ms  of bound\n";
    for (const auto& s : stages) {
        if (s.bound_ms > 0)
            std::snprintf(line, sizeof line, "%-18s %10.1f %11.1f %11.1f  %5.0f%% (%s)\n",
                          s.name.c_str(), s.min_ms, s.median_ms, s.bound_ms, 100 * s.efficiency(),
                          s.bound_kind.c_str());
        else
            std::snprintf(line, sizeof line, "%-18s %10.1f %11.1f\n", s.name.c_str(), s.min_ms,
                          s.median_ms);
        os << line;
    }
    if (prompt_positions > 0) {
        std::snprintf(line, sizeof line,
                      "\nprefill %lld positions: %.0f tokens/s; decode %lld steps: %.2f ms/token\n",
                      static_cast<long long>(prompt_positions), prefill_tokens_per_s,
                      static_cast<long long>(decode_tokens), decode_ms_per_token);
        os << line;
    }
    if (!stop_wait_ms.empty()) {
        os << "longest wait for a Stop:";
        for (size_t i = 0; i < stop_wait_ms.size(); ++i) {
            std::snprintf(line, sizeof line, "%s %s %.1f ms", i ? "," : "",
                          stop_wait_ms[i].first.c_str(), stop_wait_ms[i].second);
            os << line;
        }
        os << "\n";
    }
    std::snprintf(
        line, sizeof line, "decode steps: %s%s%s\n", decode_mode.c_str(),
        decode_fallback.empty() ? "" : " (fell back: ", decode_fallback.empty() ? "" : ")");
    os << line;
    if (!decode_fallback.empty()) os << "  " << decode_fallback << "\n";
    if (stage("decode_eager")) {
        std::snprintf(line, sizeof line,
                      "eager decode %.2f ms/token: the %s steps are %.2fx faster; same ids: %s\n",
                      eager_ms_per_token, decode_mode.c_str(), eager_over_decode,
                      eager_ids_match ? "yes" : "NO");
        os << line;
    }
    if (has_reference) {
        std::snprintf(line, sizeof line,
                      "grounded caption (encode + prefill + %zu tokens + a mask): %.1f ms; with "
                      "GLaMM's algorithm (no cache) %.1f ms: %.2fx; same ids: %s\n",
                      greedy_ids.size(), cached_ms, reference_ms, reference_speedup,
                      reference_ids == greedy_ids ? "yes" : "NO");
        os << line;
    }
    if (peak_gpu_mib >= 0)
        std::snprintf(line, sizeof line,
                      "peak RSS %.1f MiB; peak GPU memory %.1f MiB in tensors, %.1f MiB reserved\n",
                      peak_rss_mib, peak_gpu_mib, peak_gpu_reserved_mib);
    else
        std::snprintf(line, sizeof line, "peak RSS %.1f MiB; no GPU memory to report\n",
                      peak_rss_mib);
    os << line;
    return os.str();
}

} // namespace glamm
