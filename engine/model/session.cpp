// The public face of the engine (session.h): Model wraps GlammModel; Session keeps one image's
// encodings, the conversation and the KV cache, and runs the task loop with streaming callbacks.
#include "session.h"

#include "core/error.h"
#include "grounding/mask_postprocess.h"
#include "language/generation.h"
#include "language/kv_cache.h"
#include "model/embedding_cache.h"
#include "model/glamm_model.h"
#include "text/conversation.h"
#include "text/markup.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <optional>

namespace glamm {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

TaskPreset to_preset(Task task) {
    switch (task) {
    case Task::GroundedCaption:
        return TaskPreset::GroundedCaption;
    case Task::ReferringSegmentation:
        return TaskPreset::ReferringSegmentation;
    case Task::RegionCaption:
        return TaskPreset::RegionCaption;
    case Task::ImageCaption:
        return TaskPreset::ImageCaption;
    case Task::Chat:
        return TaskPreset::Chat;
    }
    return TaskPreset::Chat;
}

// Mask `index` of decoded logits [K, H, W] as a value type.
Mask to_mask(const DecodedMasks& decoded, int64_t index, bool keep_logits) {
    const at::Tensor logits = decoded.logits[index].to(at::kCPU).contiguous(); // [H, W] f32
    Mask mask;
    mask.height             = logits.size(0);
    mask.width              = logits.size(1);
    const at::Tensor binary = binarize_masks(logits.unsqueeze(0))[0].to(torch::kUInt8).contiguous();
    mask.data.assign(binary.data_ptr<uint8_t>(), binary.data_ptr<uint8_t>() + binary.numel());
    if (keep_logits)
        mask.logits.assign(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
    mask.score = decoded.iou_predictions[index][0].to(torch::kFloat).item<float>();
    return mask;
}

// Expanded positions taken by the first `count` ids (the image slot stands for P rows).
int64_t expanded_length(const std::vector<int64_t>& ids, size_t count, int64_t num_image_tokens) {
    int64_t length = static_cast<int64_t>(count);
    for (size_t i = 0; i < count; ++i)
        if (ids[i] == kImageTokenIndex) length += num_image_tokens - 1;
    return length;
}

// The user's own text must name every box or none: when it writes <bbox> (or <region>) tokens,
// their count must equal the boxes given (the preset inserts "region{k} <bbox>" only when the
// user wrote none; silently appending to a partial list would misnumber the regions).
void check_user_box_tokens(const std::string& user_text, size_t boxes) {
    const size_t written =
        count_occurrences(user_text, kBboxToken) + count_occurrences(user_text, kRegionPlaceholder);
    if (written != 0 && written != boxes)
        fail("the prompt has ", written, " <bbox> token(s) but ", boxes, " box(es) were given");
}

bool same_box(const Box& a, const Box& b) {
    return a.x1 == b.x1 && a.y1 == b.y1 && a.x2 == b.x2 && a.y2 == b.y2;
}

void check_boxes(const std::vector<Box>& boxes, int64_t width, int64_t height) {
    for (size_t i = 0; i < boxes.size(); ++i) {
        const Box& b = boxes[i];
        const std::string which =
            cat("box ", i + 1, " (", b.x1, ",", b.y1, ",", b.x2, ",", b.y2, ")");
        if (!std::isfinite(b.x1) || !std::isfinite(b.y1) || !std::isfinite(b.x2) ||
            !std::isfinite(b.y2))
            fail(which, " is not a finite number");
        if (!(b.x2 > b.x1) || !(b.y2 > b.y1))
            fail(which, " has no area (need x1 < x2 and y1 < y2)");
        if (b.x1 < 0 || b.y1 < 0 || b.x2 > width || b.y2 > height)
            fail(which, " lies outside the ", width, "x", height, " image");
    }
}

// The user turn's instruction for `request`, after every check that needs no compute: <bbox>
// tokens written by the user or inserted by the preset match the boxes, boxes lie inside the
// image with an area, and the model can encode regions when boxes are given.
std::string checked_instruction(const Request& request, const EncodedImage& image,
                                const GlammModel& m) {
    const std::string instruction =
        Session::instruction_for(request.task, request.text, request.boxes.size());
    check_boxes(request.boxes, image.width, image.height);
    if (!request.boxes.empty() && !m.region_encoder) fail("this model has no region encoder");
    return instruction;
}

// An answer carrying the request's boxes and the image's (one-time) encoding timings.
GroundedAnswer empty_answer(const Request& request, const EncodedImage& image) {
    GroundedAnswer answer;
    answer.boxes                      = request.boxes;
    answer.timings.preprocess_ms      = image.preprocess_ms;
    answer.timings.clip_ms            = image.clip_ms;
    answer.timings.sam_encoder_ms     = image.sam_encoder_ms;
    answer.timings.embedding_cache_ms = image.cache_load_ms;
    return answer;
}

// The region features of every box of the conversation so far and of this request, in <bbox>
// order (undefined without boxes); `ms` is how long the region encoder took. A stop throws
// Cancelled.
at::Tensor encode_all_regions(const GlammModel& m, const EncodedImage& image,
                              const std::vector<Box>& boxes, double& ms,
                              const ShouldAbort& should_abort) {
    if (boxes.empty()) return {};
    const auto t0 = Clock::now();
    at::Tensor features =
        m.encode_regions(image, m.normalize_boxes(boxes, image.height, image.width), should_abort);
    ms = ms_since(t0);
    return features;
}

// The answer's text and its phrases from the model's markup.
void set_answer_text(GroundedAnswer& answer, const std::string& raw_text) {
    answer.raw_text           = raw_text;
    const ParsedAnswer parsed = parse_markup(raw_text);
    answer.text               = parsed.text;
    for (const auto& p : parsed.phrases)
        answer.phrases.push_back({p.text, p.begin, p.end, p.mask_index});
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Model

Model::~Model() = default;

std::shared_ptr<const Model> Model::load(const ModelOptions& options) {
    std::shared_ptr<Model> model(new Model());
    model->impl_ = GlammModel::load(options);
    return model;
}

std::string Model::describe() const {
    return impl_->describe();
}
const std::string& Model::model_dir() const {
    return impl_->model_dir;
}

// ---------------------------------------------------------------------------------------------
// Session

struct SessionState {
    std::optional<EncodedImage> image;
    Conversation conversation;
    std::vector<Box> boxes; // every box of the conversation, in <bbox> order
    std::optional<KVCache> cache;
    std::vector<int64_t> cached_ids; // the ids whose keys/values the cache holds
    std::vector<Box> cached_boxes;   // the boxes behind the <bbox> rows the cache holds
    std::optional<EmbeddingCache> embedding_cache;
};

Session::Session(std::shared_ptr<const Model> model)
    : model_(std::move(model)), state_(std::make_unique<SessionState>()) {
    if (!model_) fail("Session needs a loaded model");
    state_->conversation = Conversation(model_->impl().config.mm_use_im_start_end);
}

Session::~Session() = default;

std::string Session::instruction_for(Task task, const std::string& text, size_t boxes) {
    check_user_box_tokens(text, boxes);
    const std::string instruction = build_instruction(to_preset(task), text, boxes);
    const size_t bbox_tokens      = count_occurrences(instruction, kBboxToken);
    if (bbox_tokens != boxes)
        fail("the prompt has ", bbox_tokens, " <bbox> token(s) but ", boxes, " box(es) were given");
    return instruction;
}

void Session::set_image(const Image& image, const std::function<bool()>& should_abort) {
    if (image.empty()) fail("the image is empty");
    if (static_cast<int64_t>(image.rgb.size()) != image.width * image.height * 3)
        fail("the image buffer holds ", image.rgb.size(), " bytes, ", image.width, "x",
             image.height, " RGB needs ", image.width * image.height * 3);
    std::optional<EncodedImage> cached;
    if (state_->embedding_cache) cached = state_->embedding_cache->load(image);
    if (cached) {
        state_->image = std::move(*cached);
    } else {
        state_->image = model_->impl().encode_image(image, should_abort);
        if (state_->embedding_cache) {
            try {
                state_->embedding_cache->store(image, *state_->image);
            } catch (const std::exception&) {
                // An optimisation only: the answer does not depend on the entry being written.
            }
        }
    }
    reset();
}

void Session::set_embedding_cache(const std::string& dir) {
    if (dir.empty())
        state_->embedding_cache.reset();
    else
        state_->embedding_cache.emplace(dir, model_->impl());
}

void Session::reset() {
    state_->conversation.clear();
    state_->boxes.clear();
    state_->cached_ids.clear();
    state_->cached_boxes.clear();
    if (state_->cache) state_->cache->reset();
}

GroundedAnswer Session::ask(const Request& request, const Callbacks& callbacks) {
    if (!state_->image) fail("no image: call set_image() first");
    const GlammModel& m        = model_->impl();
    const Tokenizer& tokenizer = *m.tokenizer;
    const EncodedImage& image  = *state_->image;
    const auto start           = Clock::now();
    auto progress              = [&](const char* stage, double f) {
        if (callbacks.on_progress) callbacks.on_progress(stage, f);
    };

    // Everything that can be wrong with the request is found before any compute.
    const std::string instruction = checked_instruction(request, image, m);
    if (request.generation.max_new_tokens <= 0) fail("max_new_tokens must be positive");
    if (request.generation.temperature < 0) fail("temperature must be >= 0");
    if (!(request.generation.top_p > 0 && request.generation.top_p <= 1))
        fail("top_p must be in (0, 1]");

    c10::InferenceMode inference;
    GroundedAnswer answer = empty_answer(request, image);

    Conversation conversation = state_->conversation;
    conversation.add_user(instruction);
    const std::vector<int64_t> ids = tokenizer.encode_with_image(conversation.prompt());
    std::vector<Box> all_boxes     = state_->boxes;
    all_boxes.insert(all_boxes.end(), request.boxes.begin(), request.boxes.end());

    progress("regions", 0.0);
    at::Tensor region_features;
    try {
        region_features = encode_all_regions(m, image, all_boxes, answer.timings.region_ms,
                                             callbacks.should_abort);
    } catch (const Cancelled&) { // nothing of the session was touched yet
        answer.cancelled        = true;
        answer.timings.total_ms = ms_since(start);
        return answer;
    }
    const at::Tensor embeds = m.assemble(ids, image, region_features); // [1, S, H]

    // Reuse the cached keys/values of the longest common prefix of this prompt and the last one.
    if (!state_->cache) state_->cache.emplace(m.llama->make_cache());
    KVCache& cache        = *state_->cache;
    size_t common         = 0;
    size_t bboxes         = 0; // <bbox> ids in ids[0, common)
    const auto& cached    = state_->cached_ids;
    const int64_t bbox_id = tokenizer.bbox_id();
    while (common < cached.size() && common < ids.size() && cached[common] == ids[common]) {
        // A <bbox> row is the region feature of its box: reusable only for the same box (a
        // cancelled turn leaves rows of boxes that are not part of the conversation).
        if (ids[common] == bbox_id) {
            if (bboxes >= state_->cached_boxes.size() || bboxes >= all_boxes.size() ||
                !same_box(state_->cached_boxes[bboxes], all_boxes[bboxes]))
                break;
            ++bboxes;
        }
        ++common;
    }
    if (common == ids.size()) --common; // at least one position must run to produce logits
    const int64_t reuse = expanded_length(ids, common, m.num_image_tokens());
    if (reuse > cache.length()) fail("internal: KV cache shorter than its recorded ids");
    cache.truncate(reuse);
    // Record what the cache holds now, so that an exception during generation (a throwing
    // callback, out of memory) cannot leave ids recorded whose rows were overwritten.
    state_->cached_ids.resize(common);
    state_->cached_boxes         = all_boxes;
    answer.timings.prompt_tokens = embeds.size(1);

    GenerationOptions options;
    options.max_new_tokens = request.generation.max_new_tokens;
    options.eos_token_ids  = {tokenizer.eos_id()};
    options.temperature    = request.generation.temperature;
    options.top_p          = request.generation.top_p;
    options.seed           = request.generation.seed;

    TokenStream stream(tokenizer, /*skip_special=*/true);
    Clock::time_point first_token;
    double mask_ms = 0, post_ms = 0;
    GenerationCallbacks generation_callbacks;
    generation_callbacks.should_abort   = callbacks.should_abort;
    generation_callbacks.on_token_state = [&](int64_t id, int64_t index, const at::Tensor& hidden) {
        if (index == 0) {
            first_token = Clock::now();
            progress("generating", 0.0);
        }
        const std::string delta = stream.push(id);
        if (!delta.empty() && callbacks.on_token) callbacks.on_token(delta);
        if (id == tokenizer.seg_id()) {
            // The mask of this [SEG] is decoded now, while the text goes on (spec §6.3: the
            // state that produced the [SEG]).
            const DecodedMasks decoded = m.decode_masks(image, hidden.unsqueeze(0));
            mask_ms += decoded.decoder_ms;
            post_ms += decoded.postprocess_ms;
            answer.masks.push_back(to_mask(decoded, 0, request.keep_logits));
            if (callbacks.on_mask)
                callbacks.on_mask(static_cast<int>(answer.masks.size() - 1), answer.masks.back());
        }
    };
    progress("prefill", 0.0);
    const auto t_prefill    = Clock::now();
    GenerationResult result = generate(m.llama, embeds.narrow(1, reuse, embeds.size(1) - reuse),
                                       cache, options, generation_callbacks);
    const std::string tail  = stream.finish();
    if (!tail.empty() && callbacks.on_token) callbacks.on_token(tail);

    if (!result.ids.empty()) {
        answer.timings.prefill_ms =
            std::chrono::duration<double, std::milli>(first_token - t_prefill).count();
        answer.timings.decode_ms = ms_since(first_token) - mask_ms - post_ms;
    }
    answer.timings.generated_tokens = static_cast<int64_t>(result.ids.size());
    answer.timings.mask_decoder_ms  = mask_ms;
    answer.timings.postprocess_ms   = post_ms;
    answer.cancelled                = result.stopped_by == StopReason::kAborted;

    std::vector<int64_t> answer_ids = result.ids;
    if (!answer_ids.empty() && answer_ids.back() == tokenizer.eos_id()) answer_ids.pop_back();
    set_answer_text(answer, python_strip(tokenizer.decode(answer_ids)));

    // The cache now holds the prompt and every generated token but the last, unless a stop
    // came before the prefill ran: then it still holds ids[0, common) only (recorded above).
    const bool prefilled = result.prompt_hidden_states.size(0) > 0;
    if (prefilled) {
        state_->cached_ids = ids;
        if (!result.ids.empty())
            state_->cached_ids.insert(state_->cached_ids.end(), result.ids.begin(),
                                      result.ids.end() - 1);
    }
    if (!answer.cancelled) {
        // A cancelled turn is not part of the conversation (the cache prefix stays reusable).
        conversation.add_assistant(answer.raw_text);
        state_->conversation = std::move(conversation);
        state_->boxes        = std::move(all_boxes);
    }
    answer.timings.total_ms = ms_since(start);
    progress("done", 1.0);
    return answer;
}

GroundedAnswer Session::score(const Request& request, const std::string& answer_text,
                              const Callbacks& callbacks) {
    if (!state_->image) fail("no image: call set_image() first");
    const GlammModel& m        = model_->impl();
    const Tokenizer& tokenizer = *m.tokenizer;
    const EncodedImage& image  = *state_->image;
    const auto start           = Clock::now();

    const std::string instruction = checked_instruction(request, image, m);

    c10::InferenceMode inference;
    GroundedAnswer answer     = empty_answer(request, image);
    Conversation conversation = state_->conversation;
    conversation.add_user(instruction);
    conversation.add_assistant(answer_text);
    // The answer is teacher-forced (spec §6.5): the prompt with the answer, no generation.
    std::vector<int64_t> ids   = tokenizer.encode_with_image(conversation.prompt());
    std::vector<Box> all_boxes = state_->boxes;
    all_boxes.insert(all_boxes.end(), request.boxes.begin(), request.boxes.end());
    Clock::time_point t0;
    at::Tensor hidden; // [1, S, H]
    try {
        const at::Tensor region_features = encode_all_regions(
            m, image, all_boxes, answer.timings.region_ms, callbacks.should_abort);
        const at::Tensor embeds      = m.assemble(ids, image, region_features);
        answer.timings.prompt_tokens = embeds.size(1);
        t0                           = Clock::now();
        hidden = m.llama->forward(embeds, nullptr, 0, callbacks.should_abort);
    } catch (const Cancelled&) {
        answer.cancelled        = true;
        answer.timings.total_ms = ms_since(start);
        return answer;
    }
    answer.timings.prefill_ms = ms_since(t0);

    // Masks of this answer's [SEG]s only (earlier turns' are selected too, then dropped: app.py).
    at::Tensor seg_hidden = select_seg_hidden_states(hidden, ids, tokenizer.seg_id(),
                                                     kImageTokenIndex, m.num_image_tokens());
    const int64_t own     = static_cast<int64_t>(count_occurrences(answer_text, kSegToken));
    seg_hidden = seg_hidden.narrow(0, seg_hidden.size(0) - std::min(own, seg_hidden.size(0)),
                                   std::min(own, seg_hidden.size(0)));
    if (seg_hidden.size(0) > 0) {
        const DecodedMasks decoded     = m.decode_masks(image, seg_hidden);
        answer.timings.mask_decoder_ms = decoded.decoder_ms;
        answer.timings.postprocess_ms  = decoded.postprocess_ms;
        for (int64_t k = 0; k < seg_hidden.size(0); ++k) {
            answer.masks.push_back(to_mask(decoded, k, request.keep_logits));
            if (callbacks.on_mask) callbacks.on_mask(static_cast<int>(k), answer.masks.back());
        }
    }
    set_answer_text(answer, answer_text);
    answer.timings.total_ms = ms_since(start);
    return answer;
}

} // namespace glamm
