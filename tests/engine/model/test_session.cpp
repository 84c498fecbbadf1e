// Session on the tiny golden model: streaming masks, cancel, multi-turn KV reuse, bad input,
// teacher-forced scoring. A crafted copy of the tiny model (only lm_head changed) makes greedy
// decoding write a chosen answer with [SEG]s, which the random model never does by itself.
#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/safetensors.h"
#include "io/image_file.h"
#include "language/generation.h"
#include "model/glamm_model.h"
#include "session.h"
#include "support/test_support.h"
#include "text/conversation.h"
#include "text/markup.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace glamm;
using test::expect_error;

namespace {

ModelOptions tiny_options(const std::string& model_dir) {
    ModelOptions options;
    options.model_dir        = model_dir;
    options.vision_tower_dir = test::tiny_clip_dir();
    return options;
}

const Image& gcg_image() {
    static const Image image = load_image(test::tiny_case_path("gcg.png"));
    return image;
}

// Loaded once per test program (loading takes about a second).
std::shared_ptr<const Model> tiny_model() {
    static std::shared_ptr<const Model> model = Model::load(tiny_options(test::tiny_model_dir()));
    return model;
}

Request chat(const std::string& text, int max_new_tokens) {
    Request request;
    request.task                      = Task::Chat;
    request.text                      = text;
    request.generation.max_new_tokens = max_new_tokens;
    return request;
}

std::vector<int64_t> without_eos(std::vector<int64_t> ids, int64_t eos) {
    if (!ids.empty() && ids.back() == eos) ids.pop_back();
    return ids;
}

// ---------------------------------------------------------------------------------------------
// The crafted model. Hidden states do not depend on lm_head, so the final-norm states that will
// produce each token of a chosen answer can be computed with the tiny model by teacher forcing.
// For every token k of the answer, row k of lm_head is c * v_k with v_k solving
// states · v_k = (+1 where the answer has k, -1 elsewhere); every other row is 0. Then at each
// step the chosen token has logit +c, the other answer tokens -c and the rest 0: greedy decoding
// writes exactly the answer (c leaves a wide margin for cached-vs-full-forward rounding).

const char* kCraftedQuestion   = "describe the picture";
constexpr double kCraftedLogit = 20.0;

// A copy of the tiny release in a temporary folder: its weights as one model.safetensors in which
// `edit(name, tensor)` may replace any tensor, its config.json changed by `edit_config`.
using TensorEdit = std::function<at::Tensor(const std::string& name, const at::Tensor& tensor)>;
std::string release_copy(const std::string& tag, const TensorEdit& edit,
                         const std::function<void(nlohmann::json&)>& edit_config = {}) {
    const std::string dir = test::make_temp_dir(tag);
    const auto release    = Checkpoint::open(test::tiny_model_dir());
    std::vector<at::Tensor> keep;
    std::vector<TensorBlob> blobs;
    for (const auto& name : release.names()) {
        const at::Tensor t = edit(name, release.tensor(name)).contiguous();
        keep.push_back(t);
        blobs.push_back({name, from_scalar_type(t.scalar_type()),
                         std::vector<int64_t>(t.sizes().begin(), t.sizes().end()), t.data_ptr(),
                         static_cast<size_t>(t.nbytes())});
    }
    write_safetensors(dir + "/model.safetensors", blobs);
    for (const auto& entry : fs::directory_iterator(test::tiny_model_dir())) {
        const std::string file = entry.path().filename().string();
        if (file.find(".safetensors") == std::string::npos)
            fs::copy_file(entry.path(), fs::path(dir) / file);
    }
    if (edit_config) {
        nlohmann::json config = nlohmann::json::parse(read_file(dir + "/config.json"));
        edit_config(config);
        test::write_bytes(dir + "/config.json", config.dump(2));
    }
    return dir;
}

struct Crafted {
    std::shared_ptr<const Model> model;
    std::vector<int64_t> answer_ids; // ends with EOS
    std::string dir;
};

std::vector<int64_t> crafted_answer(const Tokenizer& tok) {
    std::vector<int64_t> ids;
    auto words = [&](const std::string& text) {
        for (int64_t id : tok.encode(text, /*add_bos=*/false)) ids.push_back(id);
    };
    ids.push_back(tok.p_open_id());
    words("red");
    ids.push_back(tok.p_close_id());
    ids.push_back(tok.seg_id());
    words("and");
    ids.push_back(tok.p_open_id());
    words("blue");
    ids.push_back(tok.p_close_id());
    ids.push_back(tok.seg_id());
    words("here");
    ids.push_back(tok.eos_id());
    return ids;
}

const Crafted& crafted() {
    static const Crafted crafted = [] {
        c10::InferenceMode inference;
        Crafted c;
        const GlammModel& m  = tiny_model()->impl();
        const Tokenizer& tok = *m.tokenizer;
        c.answer_ids         = crafted_answer(tok);

        // The producers of the answer's tokens, by teacher forcing (as Session::ask prompts).
        Conversation conversation(m.config.mm_use_im_start_end);
        conversation.add_user(build_instruction(TaskPreset::Chat, kCraftedQuestion));
        std::vector<int64_t> ids = tok.encode_with_image(conversation.prompt());
        const int64_t n          = static_cast<int64_t>(c.answer_ids.size());
        ids.insert(ids.end(), c.answer_ids.begin(), c.answer_ids.end() - 1);
        const EncodedImage image = m.encode_image(gcg_image());
        const at::Tensor hidden  = m.llama->forward(m.assemble(ids, image, at::Tensor()))[0];
        const at::Tensor states =
            hidden.narrow(0, hidden.size(0) - n, n).to(torch::kDouble); // [n, H]

        const at::Tensor old  = Checkpoint::open(test::tiny_model_dir()).tensor("lm_head.weight");
        at::Tensor weight     = torch::zeros(old.sizes(), torch::kDouble); // [V, H]
        const at::Tensor pinv = torch::linalg_pinv(states);                // [H, n]
        for (int64_t id : c.answer_ids) {
            at::Tensor target = torch::full({n}, -1.0, torch::kDouble);
            for (int64_t i = 0; i < n; ++i)
                if (c.answer_ids[i] == id) target[i] = 1.0;
            weight[id] = kCraftedLogit * torch::matmul(pinv, target);
        }
        const at::Tensor check = torch::matmul(states, weight.t()).argmax(1); // [n]
        for (int64_t i = 0; i < n; ++i)
            if (check[i].item<int64_t>() != c.answer_ids[i]) fail("crafted lm_head does not solve");
        weight = weight.to(old.scalar_type()).contiguous();

        // A copy of the release with the new lm_head.
        c.dir   = release_copy("crafted-model", [&](const std::string& name, const at::Tensor& t) {
            return name == "lm_head.weight" ? weight : t;
        });
        c.model = Model::load(tiny_options(c.dir));
        return c;
    }();
    return crafted;
}

// The answer to the follow-up "again" (8 tokens) after the crafted question (32), in a session
// on the gcg image that was never stopped: what a stopped session must give after the stop.
GroundedAnswer never_stopped_follow_up(const Crafted& c) {
    Session session(c.model);
    session.set_image(gcg_image());
    session.ask(chat(kCraftedQuestion, 32));
    return session.ask(chat("again", 8));
}

size_t matching_pixels(const Mask& mask, const at::Tensor& golden) { // golden [H, W] u8
    const at::Tensor ref = golden.contiguous();
    size_t agree         = 0;
    for (int64_t i = 0; i < mask.height * mask.width; ++i)
        agree += mask.data[i] == (ref.data_ptr<uint8_t>()[i] != 0);
    return agree;
}

} // namespace

// ---------------------------------------------------------------------------------------------

TEST(SessionStreaming, MaskArrivesWhileGenerationGoesOn) {
    const Crafted& c = crafted();
    Session session(c.model);
    session.set_image(gcg_image());

    // Events in order: "t" a text delta, "m<i>" mask i, "s" a decoding step about to run.
    std::vector<std::string> events;
    Callbacks callbacks;
    callbacks.on_token = [&](const std::string&) { events.push_back("t"); };
    callbacks.on_mask  = [&](int index, const Mask& mask) {
        events.push_back("m" + std::to_string(index));
        EXPECT_EQ(mask.height, gcg_image().height);
        EXPECT_EQ(mask.width, gcg_image().width);
        EXPECT_EQ(mask.data.size(), static_cast<size_t>(mask.height * mask.width));
    };
    callbacks.should_abort = [&] {
        events.push_back("s");
        return false;
    };
    const GroundedAnswer answer = session.ask(chat(kCraftedQuestion, 32), callbacks);

    const Tokenizer& tok = *c.model->impl().tokenizer;
    EXPECT_EQ(answer.raw_text, python_strip(tok.decode(without_eos(c.answer_ids, tok.eos_id()))));
    std::printf("  crafted answer: \"%s\" -> \"%s\"\n", answer.raw_text.c_str(),
                answer.text.c_str());
    EXPECT_EQ(answer.timings.generated_tokens, static_cast<int64_t>(c.answer_ids.size()));
    EXPECT_FALSE(answer.cancelled);

    std::string order;
    for (const auto& e : events) order += e + " ";
    std::printf("  events: %s\n", order.c_str());
    const auto m0 = std::find(events.begin(), events.end(), "m0");
    ASSERT_NE(m0, events.end()) << "on_mask(0) never fired";
    const auto m1 = std::find(events.begin(), events.end(), "m1");
    ASSERT_NE(m1, events.end()) << "on_mask(1) never fired";
    EXPECT_LT(m0, m1);
    // Decoding steps ran after mask 0 was delivered: it came while the text went on.
    EXPECT_GE(std::count(m0, events.end(), "s"), 3);
    EXPECT_GE(std::count(m0, events.end(), "t"), 1);

    ASSERT_EQ(answer.masks.size(), count_occurrences(answer.raw_text, kSegToken));
    ASSERT_EQ(answer.masks.size(), 2u);
    ASSERT_EQ(answer.phrases.size(), 2u);
    EXPECT_EQ(answer.phrases[0].text, "red");
    EXPECT_EQ(answer.phrases[0].mask, 0);
    EXPECT_EQ(answer.phrases[1].text, "blue");
    EXPECT_EQ(answer.phrases[1].mask, 1);
    for (const auto& p : answer.phrases)
        EXPECT_EQ(answer.text.substr(p.begin, p.end - p.begin), p.text);
    for (const auto& mask : answer.masks) {
        EXPECT_EQ(mask.height, gcg_image().height);
        EXPECT_EQ(mask.width, gcg_image().width);
        EXPECT_TRUE(mask.logits.empty()); // not asked for
    }
}

TEST(SessionStreaming, MaskLogitsOnRequestAndStreamedMasksMatchScoring) {
    const Crafted& c = crafted();
    Session session(c.model);
    session.set_image(gcg_image());
    Request request             = chat(kCraftedQuestion, 32);
    request.keep_logits         = true;
    const GroundedAnswer answer = session.ask(request);
    ASSERT_EQ(answer.masks.size(), 2u);
    for (const auto& mask : answer.masks) {
        ASSERT_EQ(mask.logits.size(), mask.data.size());
        for (size_t i = 0; i < mask.data.size(); ++i)
            ASSERT_EQ(mask.data[i], mask.logits[i] > 0.0f ? 1 : 0) << "pixel " << i;
    }

    // Teacher forcing the same answer gives the same masks (the streamed mask is decoded from
    // the state that produced its [SEG], as the reference's full forward selects it).
    Session fresh(c.model);
    fresh.set_image(gcg_image());
    const GroundedAnswer scored = fresh.score(chat(kCraftedQuestion, 32), answer.raw_text);
    ASSERT_EQ(scored.masks.size(), 2u);
    for (size_t k = 0; k < 2; ++k) {
        size_t agree = 0;
        for (size_t i = 0; i < scored.masks[k].data.size(); ++i)
            agree += scored.masks[k].data[i] == answer.masks[k].data[i];
        const double share = double(agree) / double(scored.masks[k].data.size());
        std::printf(
            "  mask %zu: streamed vs scored agree on %.4f%% of pixels, score %.4f vs %.4f\n", k,
            100 * share, answer.masks[k].score, scored.masks[k].score);
        EXPECT_GE(share, 0.995);
        EXPECT_NEAR(answer.masks[k].score, scored.masks[k].score, 1e-3);
    }
}

TEST(SessionCancel, StopsWithinOneTokenAndLeavesConversationClean) {
    const Crafted& c = crafted();
    Session session(c.model);
    session.set_image(gcg_image());
    // should_abort is polled once before the prefill, once before each of its decoder layers
    // and then after every token: returning true on call P + N + 1 means "stop after N tokens".
    const int prefill_polls =
        1 + static_cast<int>(c.model->impl().llama->config().num_hidden_layers);
    constexpr int kTokens = 3;
    int calls             = 0;
    int masks             = 0;
    Callbacks callbacks;
    callbacks.should_abort       = [&] { return calls++ >= prefill_polls + kTokens - 1; };
    callbacks.on_mask            = [&](int, const Mask&) { ++masks; };
    const GroundedAnswer partial = session.ask(chat(kCraftedQuestion, 32), callbacks);
    EXPECT_TRUE(partial.cancelled);
    EXPECT_EQ(partial.timings.generated_tokens, kTokens);
    EXPECT_EQ(calls, prefill_polls + kTokens);
    const Tokenizer& tok = *c.model->impl().tokenizer;
    const std::vector<int64_t> prefix(c.answer_ids.begin(), c.answer_ids.begin() + kTokens);
    EXPECT_EQ(partial.raw_text, python_strip(tok.decode(prefix)));
    EXPECT_EQ(masks, 0);

    // Cancel after the first [SEG]: the partial answer keeps its mask.
    calls            = 0;
    const int seg_at = static_cast<int>(
        std::find(c.answer_ids.begin(), c.answer_ids.end(), tok.seg_id()) - c.answer_ids.begin());
    callbacks.should_abort         = [&] { return calls++ >= prefill_polls + seg_at; };
    const GroundedAnswer with_mask = session.ask(chat(kCraftedQuestion, 32), callbacks);
    EXPECT_TRUE(with_mask.cancelled);
    EXPECT_EQ(with_mask.masks.size(), 1u);
    EXPECT_EQ(masks, 1);

    // The cancelled turns are not part of the conversation: the next ask equals a fresh one.
    const GroundedAnswer next = session.ask(chat(kCraftedQuestion, 32));
    Session fresh(c.model);
    fresh.set_image(gcg_image());
    const GroundedAnswer reference = fresh.ask(chat(kCraftedQuestion, 32));
    EXPECT_FALSE(next.cancelled);
    EXPECT_EQ(next.raw_text, reference.raw_text);
    EXPECT_EQ(next.masks.size(), 2u);

    // Aborting before anything ran returns an empty, cancelled answer.
    Callbacks at_once;
    at_once.should_abort      = [] { return true; };
    const GroundedAnswer none = fresh.ask(chat("again", 8), at_once);
    EXPECT_TRUE(none.cancelled);
    EXPECT_EQ(none.timings.generated_tokens, 0);
    EXPECT_EQ(none.raw_text, "");
    // ... and leaves the session usable: the same question asked again is answered as by a
    // session that was never stopped (the stop came before the prefill: the cache must not be
    // taken to hold the stopped prompt).
    const GroundedAnswer again = fresh.ask(chat("again", 8));
    const GroundedAnswer again_reference = never_stopped_follow_up(c);
    EXPECT_FALSE(again.cancelled);
    EXPECT_EQ(again.raw_text, again_reference.raw_text);
    EXPECT_EQ(again.timings.generated_tokens, again_reference.timings.generated_tokens);
    EXPECT_GT(again.timings.generated_tokens, 0);
}

// A stop between two decoder layers of a second turn's prefill: no token, and the session goes
// on as one that was never stopped (the layers that ran wrote keys/values the cache did not
// commit). The same for a teacher-forced score.
TEST(SessionCancel, AStopInsideThePrefillLeavesTheSessionAsItWas) {
    const Crafted& c = crafted();
    ASSERT_GE(c.model->impl().llama->config().num_hidden_layers, 2);
    Session session(c.model);
    session.set_image(gcg_image());
    session.ask(chat(kCraftedQuestion, 32));
    int polls = 0;
    Callbacks in_prefill;
    in_prefill.should_abort      = [&] { return polls++ >= 2; }; // before the prefill's layer 1
    const GroundedAnswer stopped = session.ask(chat("again", 8), in_prefill);
    EXPECT_EQ(polls, 3);
    EXPECT_TRUE(stopped.cancelled);
    EXPECT_EQ(stopped.timings.generated_tokens, 0);
    EXPECT_EQ(stopped.raw_text, "");

    // score() runs one forward, asking before each of its layers: stop before layer 1.
    polls = 0;
    Callbacks in_forward;
    in_forward.should_abort     = [&] { return polls++ >= 1; };
    const GroundedAnswer scored = session.score(chat("again", 8), "It is [SEG] .", in_forward);
    EXPECT_EQ(polls, 2);
    EXPECT_TRUE(scored.cancelled);
    EXPECT_TRUE(scored.masks.empty());

    const GroundedAnswer again = session.ask(chat("again", 8));
    const GroundedAnswer reference = never_stopped_follow_up(c);
    EXPECT_FALSE(again.cancelled);
    EXPECT_GT(again.timings.generated_tokens, 0);
    EXPECT_EQ(again.raw_text, reference.raw_text);
    EXPECT_EQ(again.timings.generated_tokens, reference.timings.generated_tokens);
}

// A stop inside CLIP or inside SAM's image encoder throws Cancelled naming the encoder, and the
// session keeps its image and conversation (a failed call changes nothing).
TEST(SessionCancel, AStopWhileEncodingKeepsThePreviousImageAndConversation) {
    const Crafted& c = crafted();
    Session session(c.model);
    session.set_image(gcg_image());
    session.ask(chat(kCraftedQuestion, 32));
    const Image other   = load_image(test::tiny_case_path("region.png"));
    const int clip_runs = static_cast<int>(c.model->impl().clip_selection.deepest());
    ASSERT_GE(clip_runs, 2);
    // Poll k < clip_runs comes before CLIP layer k, poll clip_runs + j before SAM block j.
    for (const auto& [stop_at, encoder] :
         {std::pair<int, std::string>{1, "the CLIP vision tower"},
          std::pair<int, std::string>{clip_runs + 1, "the SAM image encoder"}}) {
        int polls = 0;
        try {
            session.set_image(other, [&, at = stop_at] { return polls++ >= at; });
            ADD_FAILURE() << "the encode was not stopped (" << encoder << ")";
        } catch (const Cancelled& e) {
            EXPECT_EQ(std::string(e.what()), "stopped during " + encoder);
        }
        EXPECT_EQ(polls, stop_at + 1);
    }
    const GroundedAnswer again = session.ask(chat("again", 8));
    const GroundedAnswer reference = never_stopped_follow_up(c);
    EXPECT_GT(again.timings.generated_tokens, 0);
    EXPECT_EQ(again.raw_text, reference.raw_text);
}

// A second turn through the session (which reuses the cached keys/values of the first) gives
// what a fresh KV cache over the whole conversation prompt gives.
TEST(SessionMultiTurn, SecondTurnMatchesAFreshForwardOfTheConversation) {
    const auto model     = tiny_model();
    const GlammModel& m  = model->impl();
    const Tokenizer& tok = *m.tokenizer;
    Session session(model);
    session.set_image(gcg_image());
    const GroundedAnswer first  = session.ask(chat("what is in the image?", 6));
    const GroundedAnswer second = session.ask(chat("and what colour is it?", 6));
    std::printf("  turn 1: \"%s\"\n  turn 2: \"%s\"\n", first.raw_text.c_str(),
                second.raw_text.c_str());
    EXPECT_EQ(first.timings.generated_tokens, 6);
    EXPECT_EQ(second.timings.generated_tokens, 6);

    c10::InferenceMode inference;
    Conversation conversation(m.config.mm_use_im_start_end);
    conversation.add_user("what is in the image?");
    conversation.add_assistant(first.raw_text);
    conversation.add_user("and what colour is it?");
    const std::vector<int64_t> ids = tok.encode_with_image(conversation.prompt());
    const EncodedImage image       = m.encode_image(gcg_image());
    KVCache cache                  = m.llama->make_cache();
    GenerationOptions options;
    options.max_new_tokens = 6;
    options.eos_token_ids  = {tok.eos_id()};
    const GenerationResult fresh =
        generate(m.llama, m.assemble(ids, image, at::Tensor()), cache, options);
    EXPECT_EQ(second.raw_text, python_strip(tok.decode(without_eos(fresh.ids, tok.eos_id()))));

    // The first turn through a new session, and after reset(), is the first answer again.
    Session other(model);
    other.set_image(gcg_image());
    EXPECT_EQ(other.ask(chat("what is in the image?", 6)).raw_text, first.raw_text);
    session.reset();
    EXPECT_EQ(session.ask(chat("what is in the image?", 6)).raw_text, first.raw_text);
    // A new image starts over too.
    session.set_image(gcg_image());
    EXPECT_EQ(session.ask(chat("what is in the image?", 6)).raw_text, first.raw_text);
}

TEST(SessionBadInput, EachHasItsMessage) {
    const auto model = tiny_model();
    Session session(model);
    expect_error([&] { session.ask(chat("hello", 4)); }, "no image: call set_image() first");
    expect_error([&] { session.score(chat("hello", 4), "hi"); }, "no image");
    expect_error([&] { session.set_image(Image{}); }, "the image is empty");
    Image lying;
    lying.width = 4, lying.height = 4, lying.rgb.resize(10);
    expect_error([&] { session.set_image(lying); }, "the image buffer holds 10 bytes");
    // 3200 x 1: SAM's longest-side resize leaves no row; said before CLIP's shortest-edge
    // resize asks for a 1075200 x 336 image (which the resampler refuses without the reason).
    Image sliver;
    sliver.width = 3200, sliver.height = 1, sliver.rgb.assign(3200 * 3, 128);
    expect_error([&] { session.set_image(sliver); }, "its aspect ratio is too extreme");

    session.set_image(gcg_image());
    Request more_boxes = chat("what is <bbox>?", 4);
    more_boxes.boxes   = {{1, 1, 20, 20}, {30, 30, 60, 60}};
    expect_error([&] { session.ask(more_boxes); },
                 "the prompt has 1 <bbox> token(s) but 2 box(es)");
    Request more_tokens = chat("compare <bbox> with <bbox>", 4);
    more_tokens.boxes   = {{1, 1, 20, 20}};
    expect_error([&] { session.ask(more_tokens); }, "has 2 <bbox> token");
    Request no_boxes = chat("what is <bbox>?", 4);
    expect_error([&] { session.ask(no_boxes); }, "the prompt has 1 <bbox> token(s) but 0 box(es)");
    expect_error([&] { session.score(more_boxes, "x"); }, "but 2 box(es)");

    Request outside = chat("what is this?", 4);
    outside.boxes   = {{600, 10, 700, 50}};
    expect_error([&] { session.ask(outside); }, "lies outside the 640x480 image");
    outside.boxes = {{-1, 10, 50, 50}};
    expect_error([&] { session.ask(outside); }, "lies outside the 640x480 image");
    Request flat = chat("what is this?", 4);
    flat.boxes   = {{10, 10, 10, 50}};
    expect_error([&] { session.ask(flat); }, "has no area");
    flat.boxes = {{10, 50, 40, 20}};
    expect_error([&] { session.ask(flat); }, "has no area");
    flat.boxes = {{10, 10, std::nan(""), 20}};
    expect_error([&] { session.ask(flat); }, "is not a finite number");

    expect_error([&] { session.ask(chat("hello", 0)); }, "max_new_tokens must be positive");
    expect_error([&] { session.ask(chat("hello", -3)); }, "max_new_tokens must be positive");
    Request hot                = chat("hello", 4);
    hot.generation.temperature = -1;
    expect_error([&] { session.ask(hot); }, "temperature must be >= 0");
    hot.generation.temperature = 0.7;
    hot.generation.top_p       = 0;
    expect_error([&] { session.ask(hot); }, "top_p must be in (0, 1]");
    Request seg;
    seg.task = Task::ReferringSegmentation;
    expect_error([&] { session.ask(seg); }, "needs an expression");

    // A failed call leaves the session as it was: it still answers, as a fresh session does.
    Session fresh(model);
    fresh.set_image(gcg_image());
    EXPECT_EQ(session.ask(chat("hello", 4)).raw_text, fresh.ask(chat("hello", 4)).raw_text);
}

TEST(SessionScore, GcgAnswerGivesGoldenMasks) {
    const auto meta         = nlohmann::json::parse(read_file(test::tiny_case_path("meta.json")));
    const auto& gcg         = meta["cases"]["gcg"];
    const auto golden       = test::load_tensors(test::tiny_case_path("gcg.safetensors"));
    const at::Tensor& masks = golden.at("masks"); // [K, H, W] u8

    Session session(tiny_model());
    session.set_image(gcg_image());
    Request request;
    request.task = Task::GroundedCaption;
    request.text = gcg["instruction"].get<std::string>();
    int streamed = 0;
    Callbacks callbacks;
    callbacks.on_mask = [&](int index, const Mask&) { EXPECT_EQ(index, streamed++); };
    const GroundedAnswer answer =
        session.score(request, gcg["answer"].get<std::string>(), callbacks);
    EXPECT_EQ(streamed, 2);
    ASSERT_EQ(answer.masks.size(), static_cast<size_t>(masks.size(0)));
    ASSERT_EQ(answer.phrases.size(), 2u);
    EXPECT_EQ(answer.phrases[0].text, "A red circle");
    EXPECT_EQ(answer.phrases[1].text, "a blue square");
    // Markup removal keeps the space the decoder put before "." (text/markup.h, spec §6.6).
    EXPECT_EQ(answer.text, "A red circle next to a blue square .");
    for (int64_t k = 0; k < masks.size(0); ++k) {
        const Mask& mask = answer.masks[k];
        ASSERT_EQ(mask.height, masks.size(1));
        ASSERT_EQ(mask.width, masks.size(2));
        const double share =
            double(matching_pixels(mask, masks[k])) / double(mask.height * mask.width);
        std::printf("  mask %lld: %.4f%% of pixels agree with the golden mask\n", (long long)k,
                    100 * share);
        EXPECT_GE(share, 0.995);
    }

    // score() does not change the conversation.
    Session fresh(tiny_model());
    fresh.set_image(gcg_image());
    EXPECT_EQ(session.ask(chat("hello", 4)).raw_text, fresh.ask(chat("hello", 4)).raw_text);
}

// In a later turn, score() returns the masks of its answer's [SEG]s only, not earlier turns'.
TEST(SessionScore, OnlyTheAnswersOwnSegs) {
    const Crafted& c = crafted();
    Session session(c.model);
    session.set_image(gcg_image());
    const GroundedAnswer first = session.ask(chat(kCraftedQuestion, 32));
    ASSERT_EQ(first.masks.size(), 2u); // two [SEG]s in the conversation already
    const GroundedAnswer one =
        session.score(chat("and the circle?", 4), " <p> A red circle </p> [SEG].");
    EXPECT_EQ(one.masks.size(), 1u);
    ASSERT_EQ(one.phrases.size(), 1u);
    EXPECT_EQ(one.phrases[0].mask, 0);
    const GroundedAnswer none = session.score(chat("anything else?", 4), "No.");
    EXPECT_EQ(none.masks.size(), 0u);
    EXPECT_EQ(none.text, "No.");
}

// Markup that is not well formed still gives a result (never an error).
TEST(SessionScore, MalformedMarkupIsNotAnError) {
    Session session(tiny_model());
    session.set_image(gcg_image());
    const GroundedAnswer a = session.score(chat("hi", 4), "[SEG] <p> dangling </p> and <p> open");
    EXPECT_EQ(a.masks.size(), 1u);
    EXPECT_FALSE(a.text.empty());
}

// The region encoder's box-independent maps are made once per image and reused: a second box
// on the same encoded image gives exactly what the whole encoder gives, from the same maps.
TEST(RegionMaps, MadeOnceAndReusedForLaterBoxes) {
    const GlammModel& m      = tiny_model()->impl();
    const EncodedImage image = m.encode_image(gcg_image());
    ASSERT_TRUE(image.region_maps.empty());
    const at::Tensor first = m.normalize_boxes({Box{10, 20, 120, 150}}, image.height, image.width);
    const at::Tensor second =
        m.normalize_boxes({Box{5, 5, 60, 60}, Box{100, 80, 220, 200}}, image.height, image.width);
    const at::Tensor a = m.encode_regions(image, first);
    ASSERT_EQ(image.region_maps.size(), static_cast<size_t>(m.config.region_encoder.num_levels));
    const void* maps   = image.region_maps[0].data_ptr();
    const at::Tensor b = m.encode_regions(image, second);
    EXPECT_EQ(image.region_maps[0].data_ptr(), maps); // not made again
    c10::InferenceMode inference;
    EXPECT_TRUE(a.equal(m.region_encoder->forward(image.clip.region_levels, first)));
    EXPECT_TRUE(b.equal(m.region_encoder->forward(image.clip.region_levels, second)));
    EXPECT_EQ(b.size(0), 2);
    // No boxes: no maps needed.
    const EncodedImage other = m.encode_image(gcg_image());
    EXPECT_EQ(m.encode_regions(other, second.narrow(0, 0, 0)).size(0), 0);
    EXPECT_TRUE(other.region_maps.empty());
}

// The fuse asks before each of its convolutions (rounds × levels); a stop between two keeps no
// maps, and a region question stopped there is cancelled before anything of the session changed.
TEST(RegionMaps, AStopInsideTheFuseKeepsNoMaps) {
    const GlammModel& m      = tiny_model()->impl();
    const EncodedImage image = m.encode_image(gcg_image());
    const Box box{10, 20, 120, 150};
    const at::Tensor boxes = m.normalize_boxes({box}, image.height, image.width);
    int polls              = 0;
    EXPECT_THROW(m.encode_regions(image, boxes, [&] { return polls++ >= 1; }), Cancelled);
    EXPECT_EQ(polls, 2);
    EXPECT_TRUE(image.region_maps.empty());
    polls = 0;
    m.encode_regions(image, boxes, [&] { return ++polls < 0; });
    EXPECT_EQ(polls, m.config.region_encoder.num_fuse * m.config.region_encoder.num_levels);
    EXPECT_FALSE(image.region_maps.empty());

    Session session(tiny_model());
    session.set_image(gcg_image());
    Request region;
    region.task                      = Task::RegionCaption;
    region.boxes                     = {box};
    region.generation.max_new_tokens = 6;
    polls                            = 0;
    Callbacks stop;
    stop.should_abort            = [&] { return polls++ >= 1; };
    const GroundedAnswer stopped = session.ask(region, stop);
    EXPECT_EQ(polls, 2);
    EXPECT_TRUE(stopped.cancelled);
    EXPECT_EQ(stopped.timings.generated_tokens, 0);
    const GroundedAnswer again = session.ask(region);
    Session fresh(tiny_model());
    fresh.set_image(gcg_image());
    EXPECT_FALSE(again.cancelled);
    EXPECT_EQ(again.raw_text, fresh.ask(region).raw_text);
}

// Weights that do not fit the config: the message names the folder and what does not fit.
TEST(ModelLoad, ShapeMistakesNameTheFolderAndTheTensor) {
    const TensorEdit same = [](const std::string&, const at::Tensor& t) { return t; };
    const std::string vocab =
        release_copy("load-vocab", same, [](nlohmann::json& c) { c["vocab_size"] = 526; });
    test::expect_error(
        [&] { Model::load(tiny_options(vocab)); },
        {"reading the language model's shapes in " + vocab, "config.json says vocab_size 526"});

    const std::string key = "model.region_encoder.roi_align.pos_embedd.0.weight";
    const std::string scalar =
        release_copy("load-scalar", [&](const std::string& name, const at::Tensor& t) {
            return name == key ? torch::tensor(1.0f) : t;
        });
    test::expect_error([&] { Model::load(tiny_options(scalar)); },
                       {scalar + ": " + key + " is a scalar"});
}

// Loading reports its progress tensor by tensor (never backwards, 0 to 1) and stops between two
// tensors when asked, with Cancelled (what the app's Stop button does while a model loads).
TEST(ModelLoad, ReportsProgressAndStopsWhenAsked) {
    ModelOptions options = tiny_options(test::tiny_model_dir());
    std::vector<double> fractions;
    options.on_progress = [&](const std::string&, double fraction) {
        fractions.push_back(fraction);
    };
    ASSERT_NE(Model::load(options), nullptr);
    ASSERT_FALSE(fractions.empty());
    EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));
    EXPECT_EQ(fractions.front(), 0.0);
    EXPECT_EQ(fractions.back(), 1.0);
    const auto while_loading = std::count_if(fractions.begin(), fractions.end(),
                                             [](double f) { return f > 0.2 && f < 0.8; });
    EXPECT_GT(while_loading, 10); // the weights advance it, not only the named stages

    int polls            = 0;
    options.on_progress  = {};
    options.should_abort = [&] { return ++polls > 12; };
    EXPECT_THROW(Model::load(options), Cancelled);
    EXPECT_EQ(polls, 13); // stopped at the first poll that asked
}

// With an int8 language model the load reports each layer it quantizes (then lm_head) and stops
// there when asked; a decoding step then reads int8 values and one f32 scale per row instead of
// f32 weights. Bytes worked by hand for the tiny model (hidden 160, 2 layers, MLP 320, vocab
// 519): per layer q, k, v, o 4 · (160 · 160 + 4 · 160) + gate, up 2 · (320 · 160 + 4 · 320) +
// down 160 · 320 + 4 · 160 = 261 760; lm_head 519 · 160 + 4 · 519 = 85 116; in all 2 · 261 760 +
// 85 116 = 608 636, against 4 · (2 · 256 000 + 83 040) = 2 380 160 in f32.
// A load the memory cannot hold is refused before anything is built, with what it needs: in f32
// every weight of the tiny release (stored in bf16) is converted, 4 bytes each; in bf16 only the
// vision tower (stored in f32) would be.
TEST(ModelLoad, RefusesALoadTheMemoryCannotHoldAndSaysWhatItNeeds) {
    ModelOptions options   = tiny_options(test::tiny_model_dir());
    int64_t glamm_elements = 0, clip_elements = 0;
    const auto model = Model::load(options);
    for (const ComponentInfo& c : model->impl().components)
        (c.name == "clip_vision" ? clip_elements : glamm_elements) += c.parameters;

    std::string message;
    try {
        test::ScopedEnv limit("GLAMM_MEMORY_LIMIT_MB", "1");
        Model::load(options);
    } catch (const Error& e) {
        message = e.what();
    }
    EXPECT_NE(message.find("in f32 the weights need " + format_bytes(glamm_elements * 4)),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("but 1 MB are free (GLAMM_MEMORY_LIMIT_MB)"), std::string::npos)
        << message;
    EXPECT_NE(message.find("--dtype bf16 would need " + format_bytes(clip_elements * 2)),
              std::string::npos)
        << message;
    EXPECT_NE(message.find(test::tiny_model_dir()), std::string::npos) << message;
}

TEST(ModelLoad, QuantizingReportsEachLayerAndStopsWhenAsked) {
    // The layers are quantized as they load (one layer's float weights at a time).
    const std::string stage = "loading weights, the language model's linears to int8";
    ModelOptions options    = tiny_options(test::tiny_model_dir());
    EXPECT_EQ(Model::load(options)->impl().llama->decode_weight_bytes(), 2380160);

    options.quantize = "int8";
    std::vector<double> quantizing;
    options.on_progress = [&](const std::string& name, double fraction) {
        if (name == stage) quantizing.push_back(fraction);
    };
    const auto model  = Model::load(options);
    const auto& llama = model->impl().llama;
    EXPECT_TRUE(llama->quantized());
    EXPECT_EQ(llama->decode_weight_bytes(), 608636);
    for (const auto& layer : *llama->model->layers) { // every layer, lm_head below
        const auto* attention = layer->as<LlamaDecoderLayer>()->self_attn.get();
        EXPECT_TRUE(attention->q_int8.defined());
        EXPECT_EQ(attention->q_proj->weight.numel(), 0); // its float copy freed
    }
    EXPECT_TRUE(llama->lm_head_int8.defined());
    EXPECT_GE(quantizing.size(), static_cast<size_t>(llama->config().num_hidden_layers));
    EXPECT_TRUE(std::is_sorted(quantizing.begin(), quantizing.end()));

    bool quantizing_began = false;
    options.on_progress   = [&](const std::string& name, double) {
        quantizing_began |= name == stage;
    };
    options.should_abort = [&] { return quantizing_began; };
    EXPECT_THROW(Model::load(options), Cancelled);
    EXPECT_TRUE(quantizing_began);

    options.should_abort = {};
    options.quantize     = "int4";
    EXPECT_THROW(Model::load(options), Error);
}
