#include "model/dump.h"

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "grounding/mask_postprocess.h"
#include "language/generation.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>

namespace glamm {

namespace {

at::Tensor to_cpu_float(const at::Tensor& t) {
    return t.detach().to(torch::kCPU, torch::kFloat).contiguous();
}

at::Tensor ids_tensor(const std::vector<int64_t>& ids) {
    return torch::tensor(ids, torch::kLong);
}

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

} // namespace

std::string StageTimings::table() const {
    char buf[2048];
    std::snprintf(
        buf, sizeof buf,
        "stage               ms\n"
        "preprocess    %10.1f\n"
        "clip          %10.1f\n"
        "region        %10.1f\n"
        "prefill       %10.1f   (%lld positions, %.0f tokens/s)\n"
        "decode        %10.1f   (%lld tokens, %.1f ms/token, %s)\n"
        "sam_encoder   %10.1f\n"
        "mask_decoder  %10.1f\n"
        "postprocess   %10.1f\n"
        "total         %10.1f\n",
        preprocess_ms, clip_ms, region_ms, prefill_ms, static_cast<long long>(prefill_tokens),
        prefill_ms > 0 ? prefill_tokens / (prefill_ms / 1000) : 0.0, decode_ms,
        static_cast<long long>(decode_tokens), decode_tokens ? decode_ms / decode_tokens : 0.0,
        decode_mode.c_str(), sam_encoder_ms, mask_decoder_ms, postprocess_ms, total_ms);
    return buf;
}

std::vector<std::pair<std::string, at::Tensor>> dump_stages(const GlammModel& model,
                                                            const Image& image,
                                                            const DumpRequest& request,
                                                            StageTimings* timings) {
    c10::InferenceMode inference;
    StageTimings local;
    StageTimings& time = timings ? *timings : local;
    const auto start   = Clock::now();
    std::vector<std::pair<std::string, at::Tensor>> out;
    auto put = [&](const std::string& name, const at::Tensor& t) { out.emplace_back(name, t); };

    // Images: both preprocessing paths and both encoders.
    const EncodedImage encoded = model.encode_image(image);
    time.preprocess_ms         = encoded.preprocess_ms;
    time.clip_ms               = encoded.clip_ms;
    time.sam_encoder_ms        = encoded.sam_encoder_ms;
    put("clip_pixel_values", to_cpu_float(encoded.clip_pixel_values));
    const Image& resized = encoded.sam_input.resized;
    put("sam_resized_image", torch::from_blob(const_cast<uint8_t*>(resized.rgb.data()),
                                              {resized.height, resized.width, 3}, torch::kUInt8)
                                 .clone());
    put("clip_selected_features", to_cpu_float(encoded.clip.image_features));
    put("projected_image_features", to_cpu_float(encoded.image_embeddings.unsqueeze(0)));
    const auto& levels = encoded.clip.region_levels;
    if (!levels.empty()) {
        // The golden names the shallowest and deepest of the region levels.
        put("region_level_0", to_cpu_float(levels.front()));
        put("region_level_" + std::to_string(levels.size() - 1), to_cpu_float(levels.back()));
    }
    put("sam_image_embeddings", to_cpu_float(encoded.sam_image_embeddings));

    // Regions.
    at::Tensor region_features;
    if (!request.boxes.empty()) {
        at::Tensor normalized = model.normalize_boxes(request.boxes, image.height, image.width);
        put("region_boxes_normalized", to_cpu_float(normalized));
        const auto t0   = Clock::now();
        region_features = model.encode_regions(encoded, normalized);
        time.region_ms  = ms_since(t0);
        put("region_features", to_cpu_float(region_features));
    }

    // Text: the first-turn prompt, teacher-forced over prompt + answer.
    const Tokenizer& tokenizer = *model.tokenizer;
    const std::vector<int64_t> prompt =
        tokenizer.encode_with_image(model.first_turn_prompt(request.instruction));
    std::vector<int64_t> input_ids    = prompt;
    const std::vector<int64_t> answer = tokenizer.encode(request.answer, /*add_bos=*/false);
    input_ids.insert(input_ids.end(), answer.begin(), answer.end());
    put("prompt_ids", ids_tensor(prompt));
    put("input_ids", ids_tensor(input_ids));

    const at::Tensor inputs_embeds =
        model.assemble(input_ids, encoded, region_features); // [1, S, H]
    put("inputs_embeds", to_cpu_float(inputs_embeds));
    auto t0                 = Clock::now();
    const at::Tensor hidden = model.llama->forward(inputs_embeds); // [1, S, H]
    time.prefill_ms         = ms_since(t0);
    time.prefill_tokens     = hidden.size(1);
    put("last_hidden_state", to_cpu_float(hidden));
    const int64_t tail = std::min<int64_t>(kLogitsTailPositions, hidden.size(1));
    put("logits_tail",
        to_cpu_float(model.llama->logits(hidden.narrow(1, hidden.size(1) - tail, tail))));

    // [SEG]: hidden state before each one -> text_hidden_fcs -> SAM decoder -> masks.
    const at::Tensor seg_hidden = select_seg_hidden_states(
        hidden, input_ids, tokenizer.seg_id(), kImageTokenIndex, model.num_image_tokens());
    if (seg_hidden.size(0) > 0) {
        put("seg_embeddings", to_cpu_float(model.text_projection->forward(seg_hidden)));
        const DecodedMasks masks = model.decode_masks(encoded, seg_hidden);
        time.mask_decoder_ms     = masks.decoder_ms;
        time.postprocess_ms      = masks.postprocess_ms;
        put("low_res_masks", to_cpu_float(masks.low_res_masks));
        put("iou_predictions", to_cpu_float(masks.iou_predictions));
        put("mask_logits", masks.logits.to(torch::kCPU, torch::kHalf).contiguous());
        put("masks", binarize_masks(masks.logits).to(torch::kCPU, torch::kUInt8).contiguous());
    }

    // Greedy decoding from the prompt alone.
    if (request.gen_steps > 0) {
        KVCache cache = model.llama->make_cache();
        GenerationOptions options;
        options.max_new_tokens         = request.gen_steps;
        options.eos_token_ids          = {tokenizer.eos_id()};
        const at::Tensor prompt_embeds = model.assemble(prompt, encoded, region_features);
        // The prompt's prefill is timed above (teacher-forced); here only the decode steps count.
        size_t steps = 0;
        Clock::time_point first_token;
        GenerationCallbacks callbacks;
        callbacks.on_token = [&](int64_t, int64_t index) {
            if (index == 0) first_token = Clock::now();
            steps = static_cast<size_t>(index + 1);
        };
        GenerationResult result = generate(model.llama, prompt_embeds, cache, options, callbacks);
        if (steps > 1) {
            time.decode_ms     = ms_since(first_token);
            time.decode_tokens = static_cast<int64_t>(steps - 1);
        }
        time.decode_mode = to_string(result.decode_mode);
        if (!result.decode_fallback.empty())
            time.decode_mode += " (" + result.decode_fallback + ")";
        put("greedy_ids", ids_tensor(result.ids));
    }
    time.total_ms = ms_since(start);
    return out;
}

void write_tensors(const std::string& path,
                   const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
    std::vector<at::Tensor> keep;
    std::vector<TensorBlob> blobs;
    for (const auto& [name, tensor] : tensors) {
        at::Tensor t = tensor.to(torch::kCPU).contiguous();
        keep.push_back(t);
        blobs.push_back({name, from_scalar_type(t.scalar_type()), t.sizes().vec(), t.data_ptr(),
                         static_cast<size_t>(t.numel() * t.element_size())});
    }
    write_safetensors(path, blobs, {{"format", "pt"}, {"producer", "glamm dump"}});
}

} // namespace glamm
