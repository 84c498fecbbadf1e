// GLaMM Studio engine: its public face, torch-free. ui/ includes this and three other torch-free
// headers: io/image_file.h (load_image, save_png), io/result_writer.h (export, overlays, the mask
// palette) and core/error.h (Error, Cancelled); app/'s CLI also drives engine internals (dump,
// eval, train, bench).
//
//   glamm::ModelOptions options;
//   options.model_dir        = "GLaMM-GCG";               // a release folder
//   options.vision_tower_dir = "clip-vit-large-patch14-336";
//   auto model = glamm::Model::load(options);               // immutable, shareable
//   glamm::Session session(model);
//   session.set_image(glamm::load_image("photo.jpg"));      // CLIP + SAM encoders, once per image
//   glamm::Request request;
//   request.task = glamm::Task::GroundedCaption;
//   glamm::Callbacks callbacks;
//   callbacks.on_token = [](const std::string& delta) { std::cout << delta << std::flush; };
//   glamm::GroundedAnswer answer = session.ask(request, callbacks);
//   for (const auto& phrase : answer.phrases) use(phrase.text, answer.masks[phrase.mask]);
//
// Thread safety: a Model is immutable after load() and may be shared by sessions on any threads.
// A Session is used from one thread at a time (it owns the per-image state and the KV cache).
// Errors: every function throws glamm::Error (a std::runtime_error) with a message that says what
// failed and why; a failed call leaves the session as it was before the call.
#pragma once

#include "vision/image.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace glamm {

class GlammModel;
struct SessionState;

// Where the model is and how to run it (runtime knobs, separate from the model's config).
struct ModelOptions {
    std::string model_dir;        // GLaMM release folder (config.json, tokenizer, weights)
    std::string vision_tower_dir; // CLIP folder; empty: resolve mm_vision_tower from config.json
    std::string device = "cpu";   // "cpu", "cuda", "cuda:N"
    std::string dtype  = "f32";   // "f32", "bf16", "f16"
    // "int8": the language model's linears (decoder layers, lm_head) as int8 rows with one scale
    // each, on the CPU: decoding reads half the bytes of bf16 and, once loaded, the language
    // model holds half the memory (the load's peak is unchanged: docs/benchmarks.md); every other
    // weight and all activations stay in `dtype`. "" or "none": as stored. Close to, not exactly,
    // GLaMM's numbers (each weight moves by up to half its row's step).
    std::string quantize;
    int threads        = 0;       // CPU threads; 0 = all cores
    // Called while loading with a stage name and a fraction in [0, 1] (the weights advance it
    // tensor by tensor).
    std::function<void(const std::string& stage, double fraction)> on_progress;
    // Polled while loading, between tensors; true stops the load with glamm::Cancelled.
    std::function<bool()> should_abort;
};

// The model that ships with GLaMM Studio (GLaMM-Shapes, resources/models/glamm-shapes): the GLaMM
// folder of the first that exists of $GLAMM_DEFAULT_MODEL, <exe>/../share/glamm-studio/models/
// glamm-shapes/glamm (installed), the source tree's resources/models/glamm-shapes/glamm (build
// tree). Empty when none exists. Its vision tower is found through its config.json.
std::string default_model_dir();

// True when this build's LibTorch has CUDA and a GPU is visible (what `device = "cuda"` needs).
bool cuda_available();

// The loaded model: weights, tokenizer, configs. Immutable; share it with std::shared_ptr.
class Model {
public:
    // Loads and checks a release strictly (every tensor present with its shape, no unknown keys).
    // Throws Error listing what is missing or wrong.
    static std::shared_ptr<const Model> load(const ModelOptions& options);
    ~Model();

    // A one-paragraph description: model folder, widths, device, dtype.
    std::string describe() const;
    const std::string& model_dir() const;
    const GlammModel& impl() const { return *impl_; }

private:
    Model() = default;
    std::unique_ptr<GlammModel> impl_;
};

// A box in original-image pixels, x1 < x2, y1 < y2.
struct Box {
    double x1 = 0, y1 = 0, x2 = 0, y2 = 0;
};

// What the user asks for. The task decides the instruction when `text` is empty (the reference's
// exact strings) and how boxes are inserted.
enum class Task {
    GroundedCaption,       // GCG: a description with a mask per grounded phrase
    ReferringSegmentation, // "segment the red car"
    RegionCaption,         // describe the boxes (<bbox> tokens)
    ImageCaption,          // a plain description
    Chat,                  // free text
};

struct GenerationSettings {
    int max_new_tokens = 512;
    double temperature = 0.0; // 0: greedy, as the reference
    double top_p       = 1.0;
    uint64_t seed      = 0;
};

struct Request {
    Task task = Task::Chat;
    std::string text;       // the user's words; for Task::ReferringSegmentation the expression
    std::vector<Box> boxes; // one per <bbox> token, in order
    GenerationSettings generation;
    bool keep_logits = false; // also return mask logits
};

// One mask at the original image size.
struct Mask {
    int64_t height = 0, width = 0;
    std::vector<uint8_t> data; // [height, width] row-major, 0/1
    std::vector<float> logits; // [height, width] when Request::keep_logits
    float score = 0.0f;        // SAM's predicted IoU
};

// A grounded phrase: a character range of GroundedAnswer::text and the mask it refers to.
struct Phrase {
    std::string text;
    size_t begin = 0, end = 0; // byte offsets into GroundedAnswer::text, [begin, end)
    int mask = -1;             // index into GroundedAnswer::masks, -1 when it has no [SEG]
};

// Wall-clock milliseconds per stage of the last call.
struct Timings {
    double preprocess_ms = 0, clip_ms = 0, sam_encoder_ms = 0, region_ms = 0, prefill_ms = 0,
           decode_ms = 0, mask_decoder_ms = 0, postprocess_ms = 0, total_ms = 0;
    double embedding_cache_ms = 0; // the image's encodings read from the embedding cache
    int64_t prompt_tokens = 0, generated_tokens = 0;
};

struct GroundedAnswer {
    std::string text;     // markup removed
    std::string raw_text; // as decoded, with <p> </p> [SEG]
    std::vector<Phrase> phrases;
    std::vector<Mask> masks;
    std::vector<Box> boxes;
    Timings timings;
    bool cancelled = false;
};

// Engine callbacks (plain functions; the UI adapts them to signals). All optional.
struct Callbacks {
    std::function<void(const std::string& delta)> on_token;   // text as it is generated
    std::function<void(int index, const Mask& mask)> on_mask; // as soon as its [SEG] appears
    std::function<void(const std::string& stage, double fraction)> on_progress;
    // Polled between generated tokens, between the prefill's decoder layers and between the
    // region encoder's convolutions; true stops the answer (GroundedAnswer::cancelled).
    std::function<bool()> should_abort;
};

class Session {
public:
    explicit Session(std::shared_ptr<const Model> model);
    ~Session();
    Session(const Session&)            = delete;
    Session& operator=(const Session&) = delete;

    // Encodes the image with CLIP and the SAM image encoder (once per image) and starts a new
    // conversation. Throws Error for an empty image. `should_abort` is polled between the
    // encoders' layers: true throws glamm::Cancelled, and like any failure leaves the previous
    // image and conversation in place.
    void set_image(const Image& image, const std::function<bool()>& should_abort = {});
    // Answers a request about the current image, streaming through `callbacks`. Throws Error
    // before any compute when no image is set, when the number of boxes differs from the number
    // of <bbox> tokens, or when a box lies outside the image or has no area. A cancel (via
    // should_abort) returns the partial answer with `cancelled` set.
    GroundedAnswer ask(const Request& request, const Callbacks& callbacks = {});
    // Teacher-forced: masks for the [SEG]s of `answer` given the request, no generation (the
    // official referring-segmentation evaluation). Does not change the conversation. A stop
    // (should_abort, polled between the forward's layers) returns no masks, `cancelled` set.
    GroundedAnswer score(const Request& request, const std::string& answer,
                         const Callbacks& callbacks = {});
    // The user turn's instruction that ask() sends for `task`, the user's `text` and `boxes`
    // boxes; throws Error when the <bbox> tokens (the user's, or those the task inserts) do not
    // match the boxes. Needs neither a model nor an image: a batch checks its request once with it.
    static std::string instruction_for(Task task, const std::string& text, size_t boxes);
    // Forgets the conversation (keeps the image).
    void reset();
    // An on-disk cache of image encodings (empty: none, the default). set_image() then reads an
    // image's CLIP and SAM encodings from DIR when this model encoded the same pixels before, and
    // writes them there otherwise. Failing to write an entry (full disk, read-only folder) does
    // not fail set_image(); a damaged entry is re-encoded.
    void set_embedding_cache(const std::string& dir);

private:
    std::shared_ptr<const Model> model_;
    std::unique_ptr<SessionState> state_;
};

} // namespace glamm
