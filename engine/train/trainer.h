// GLaMM-Shapes training (`glamm train`): a GLaMM of small widths trained from scratch on scenes of
// the synthetic generator (train/synth.h) with GLaMM's objective — next-token cross-entropy on
// the answer plus per-mask sigmoid BCE and DICE on the masks of its [SEG] tokens (ref:
// groundingLMM model/GLaMM.py GLaMMForCausalLM.model_forward / sigmoid_ce_loss / dice_loss).
// The model is the same GlammModel the engine runs; the recipe (widths, data, schedule) is one
// JSON file (resources/train/glamm-shapes.json, documented in docs/training.md).
// Legend: B samples per step, S padded sequence, V vocabulary, K masks of a sample, H0×W0 image.
#pragma once

#include "core/config.h"
#include "train/synth.h"

#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace glamm {
class Tokenizer;
}

namespace glamm::train {

// GLaMM's loss weights (ref: groundingLMM train.py defaults ce_loss_weight, dice_loss_weight,
// bce_loss_weight).
struct LossWeights {
    double ce   = 1.0;
    double dice = 0.5;
    double bce  = 2.0;
    // Not GLaMM's: the weight of a per-patch cross-entropy that teaches the vision tower which
    // shape and colour each CLIP patch shows (the generator's truth, through a linear head that
    // only training has). It stands in for CLIP's pretraining, which a tower trained from
    // scratch lacks; 0 (the default) leaves GLaMM's objective alone.
    double patch = 0.0;
    // Not GLaMM's either, the same idea for the two other paths that see the image: the weight of
    // a per-cell shape and colour cross-entropy on the SAM image embeddings the mask decoder reads
    // (sam_patch_labels; SAM's own pretraining is what GLaMM starts from), and of one on the
    // region encoder's <bbox> embedding of a region caption's box (the boxed object's shape and
    // colour). 0 leaves them out.
    double sam_patch = 0.0;
    double region    = 0.0;
    // And the weight of one on the language model's state before each [SEG] (what
    // text_hidden_fcs reads): the shape and colour of the object its mask covers. In referring
    // segmentation that state sits on "is" of "Sure, it is [SEG]." and has to fetch the
    // expression from the question; the mask losses reach it only through the decoder. (On the
    // SAM prompt itself, text_hidden_fcs' output, the head raised the mask loss: DICE 0.53 ->
    // 0.64 in 500 steps.) 0 leaves it out.
    double seg = 0.0;
    // And the weight of one on the tower's features pooled over each object (object_views: the
    // mean of the patch features weighted by how much of each patch the object covers): the
    // object's shape and colour. Where the patch loss asks every patch for the shape of the
    // object it shows (which a patch inside a large object cannot see), this one asks the object
    // as a whole, as CLIP's pretraining asks the whole image. 0 leaves it out.
    double object = 0.0;
};

// How often each task is drawn for a sample (normalised by their sum).
struct TaskMix {
    double gcg = 0.4, refseg = 0.3, regcap = 0.2, caption = 0.1;
};

struct TrainConfig {
    nlohmann::json model;         // the GLaMM config.json to write (widths, grounding_encoder…)
    nlohmann::json vision_tower;  // the CLIP config.json to write
    int64_t tokenizer_vocab  = 0; // sentencepiece pieces (the 7 GLaMM tokens come on top)
    int64_t tokenizer_corpus = 0; // scenes whose text trains the tokenizer
    synth::SynthOptions data;     // training scenes: seed, count (indices wrap), sizes
    uint64_t seed = 0;            // initialisation and task draws
    int64_t steps = 0, batch_size = 0;
    double learning_rate = 0, min_learning_rate = 0, weight_decay = 0, grad_clip = 0;
    int64_t warmup_steps     = 0;
    int64_t checkpoint_every = 0, log_every = 0;
    LossWeights loss;
    TaskMix tasks;
    // A folder with glamm/ and clip/ (a release or a run) whose weights and tokenizer the training
    // starts from instead of a fresh initialisation (a second stage; empty: from scratch).
    std::string init;
    // A folder holding the training-only heads (`*_head.pt`) a stage starts from, when they are
    // not in `init` (a release has none): the heads of the stage a release was trained by, kept
    // beside its recipe (resources/train/heads/). Empty: `init`'s own, if any.
    std::string init_heads;
    // Train the vision tower alone, on the losses that read it (patch, object): no language model,
    // projector or SAM in the step, which then costs a fraction of a whole one. A stage that
    // teaches the tower before the rest learns to read it.
    bool tower_only = false;
    // The share of region caption samples whose image tokens are zeroed, leaving the <bbox>
    // embedding the only view of the boxed object: a language model that learned to look past the
    // <bbox> position (as one trained while the region encoder carried little does) gets a
    // gradient to read it. 0 (the default) shows every sample its image, as GLaMM does.
    double region_image_dropout = 0.0;
    // Boxes a region caption sample asks about, one conversation turn each ("... marked by
    // <bbox>?" -> its description), in a random order: all of the scene's up to this many. GLaMM's
    // region datasets ask about up to max_gt_per_img = 10 boxes of an image in one conversation
    // (ref: groundingLMM dataset/region_datasets/RefCOCO_VG_Region_ds.py create_conversations);
    // 1 (the default) asks about one drawn box, as the eval does.
    int64_t regcap_turns = 1;
    // Train the region encoder alone, on the region loss (loss.region) over a box around every
    // object of each scene, where a region caption sample gives the encoder one box: no language
    // model, projector or SAM in the step. The tower runs as the encoder's input (and learns with
    // it unless frozen). A stage that teaches the encoder what a box holds before the language
    // model learns to read its <bbox> embeddings.
    bool regions_only = false;
    // Components that start from a fresh initialisation (the one a run from scratch with this
    // seed gives) although the init holds weights for them, by component_refs() name: a stage
    // that retrains one from scratch. Neither frozen nor read on a resume (the checkpoint has
    // them).
    std::vector<std::string> reinitialise;
    // Components kept as the init has them, by GlammModel::component_refs() name (clip_vision,
    // mm_projector, region_encoder, llama, text_projection, sam_image_encoder, sam_prompt_encoder,
    // sam_mask_decoder): out of the optimiser, and no backward through them. GLaMM's own training
    // keeps the CLIP tower and SAM but its mask decoder frozen (ref: groundingLMM model/GLaMM.py
    // _configure_grounding_encoder); here it lets a stage teach the language model to read a tower
    // trained before it, at a lower cost per step.
    std::vector<std::string> frozen;
    std::string device = "cpu";
    int threads        = 0; // 0: all cores
    // Make the next batch on the CPU while a step runs: -1 when the model is on a GPU, 0 never,
    // 1 always. The batches are the same either way (not part of the recipe).
    int prefetch = -1;
};

// What each CLIP patch of a scene shows, as the tower sees the scene (resized so the short side
// is `clip.image_size`, centre-cropped): [2, G*G] long, row 0 the shape class (0 background,
// 1 + synth::Shape) and row 1 the colour class (0 background, 1 + index in named_colours()) of
// the object that covers most of the patch, background unless an object covers at least a
// quarter of it. G = image_size / patch_size; patches in row-major order, as the tower's tokens.
at::Tensor patch_labels(const synth::SceneAnnotation& scene, const ClipVisionConfig& clip);
// The same for the cells of the SAM image embedding: the scene as SAM's preprocessing sees it
// (longest side resized to `sam.img_size`, padded right and below: padding is background),
// G = img_size / patch_size cells of patch_size pixels, row-major as the embedding's [D, G, G].
at::Tensor sam_patch_labels(const synth::SceneAnnotation& scene, const SamConfig& sam);
// The objects as the tower sees the scene (the view of patch_labels), for the object loss:
// coverage [N, G*G] f32, the share of each patch's sample points on the object's visible mask,
// and classes [2, N] long (shape row, colour row as in patch_labels), for the N objects the view
// holds any of (the centre crop can cut one away).
struct ObjectViews {
    at::Tensor coverage;
    at::Tensor classes;
};
ObjectViews object_views(const synth::SceneAnnotation& scene, const ClipVisionConfig& clip);
// Classes of the two rows above (also of a region's labels).
int64_t patch_shape_classes();
int64_t patch_colour_classes();
// What a step needs of patch_labels, sam_patch_labels and object_views, for the losses `weights`
// turns on (the others stay empty), from one decode of the scene's masks and one pass of the
// tower's view for both the patch and the object targets.
struct SceneTargets {
    at::Tensor patch_labels;     // [2, G*G] when weights.patch > 0
    at::Tensor sam_patch_labels; // [2, G'*G'] when weights.sam_patch > 0
    ObjectViews objects;         // when weights.object > 0
};
SceneTargets scene_targets(const synth::SceneAnnotation& scene, const ClipVisionConfig& clip,
                           const SamConfig& sam, const LossWeights& weights);

// One question and its answer.
struct Turn {
    std::string instruction, answer;
};
// A training conversation's token ids as the engine's chat prompt has them
// (Tokenizer::encode_with_image of the llava_v1 Conversation::prompt(), spec §3.1, with the image
// slot in the first turn) and where each answer lies: answer k's tokens and the "</s>" closing it
// are ids[answers[k].first, answers[k].second), the positions the cross-entropy is taken on.
// Throws when an earlier turn does not tokenise the same within the longer prompt.
struct ConversationIds {
    std::vector<int64_t> ids;
    std::vector<std::pair<int64_t, int64_t>> answers;
};
ConversationIds conversation_ids(const Tokenizer& tokenizer, bool mm_use_im_start_end,
                                 const std::vector<Turn>& turns);

// Reads and checks a recipe (messages name the file and key). A recipe file may name a "base"
// recipe, relative to its folder, that it changes: its keys are merged over the base's (objects
// key by key, other values replace, null removes; RFC 7386), and a base may have a base.
TrainConfig load_train_config(const std::string& path);
// The JSON text load_train_config checks: the recipe file with its "base" chain merged in.
std::string resolve_recipe(const std::string& path);
TrainConfig parse_train_config(const std::string& json_text, const std::string& where);

// One logged step (also a CSV row of OUT/loss.csv).
struct StepLog {
    int64_t step         = 0;
    double learning_rate = 0, loss = 0, ce = 0, bce = 0, dice = 0;
    double patch     = 0; // the per-patch loss (0 when the recipe has none)
    double sam_patch = 0; // the per-cell loss on SAM's embedding (0 when none)
    double region    = 0; // the loss on <bbox> embeddings (0 when none or no box in the batch)
    double seg    = 0; // the loss on the states before [SEG] (0 when none or no mask in the batch)
    double object = 0; // the loss on the tower's features pooled per object (0 when none)
    int64_t masks = 0, tokens = 0;
    double seconds      = 0; // wall time of the step
    double data_seconds = 0; // of which making (or, prefetched, waiting for) the batch
};

struct TrainCallbacks {
    std::function<void(const StepLog&)> on_step;        // every step
    std::function<void(const std::string&)> on_message; // stage messages
    std::function<bool()> should_stop;                  // checked between steps
};

// Trains into OUT: OUT/glamm + OUT/clip (the release layout GlammModel::load reads, written at
// every checkpoint and at the end), OUT/checkpoints/step-N (weights + optimiser state),
// OUT/loss.csv and OUT/loss.svg. Resumes from the newest checkpoint in OUT when `resume` (same
// recipe: the recipe is copied to OUT/recipe.json and compared). Deterministic for a given recipe
// and thread count: scene i of a step is drawn from (seed, step, i). `max_steps` > 0 stops early
// (tests).
void train(const TrainConfig& config, const std::string& out_dir, bool resume,
           const TrainCallbacks& callbacks = {}, int64_t max_steps = 0);

// The text the tokenizer is trained on: every instruction and answer the trainer can produce for
// scenes [0, count) of `data`, one per line.
std::string tokenizer_corpus(const synth::SynthOptions& data, int64_t count);

} // namespace glamm::train
