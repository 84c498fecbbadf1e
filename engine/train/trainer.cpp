#include "train/trainer.h"

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/device.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/rms_norm.h"
#include "grounding/mask_postprocess.h"
#include "model/glamm_model.h"
#include "text/conversation.h"
#include "text/tokenizer.h"
#include "vision/image_preprocess.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <sstream>

namespace fs = std::filesystem;

namespace glamm::train {

namespace {

// Label of positions without a target (PyTorch's cross_entropy ignore_index default).
constexpr int64_t kIgnoreIndex = -100;
// ref: groundingLMM model/GLaMM.py dice_loss(scale=1000, eps=1e-6) and the 1e-8 mask-count guard.
constexpr double kDiceScale = 1000.0;
constexpr double kDiceEps   = 1e-6;
constexpr double kCountEps  = 1e-8;
// Consecutive steps with non-finite gradients tolerated before training stops.
constexpr int64_t kMaxSkippedSteps = 10;
// Initial spread of embedding tables (HF initializer_range).
constexpr double kEmbeddingInitStd = 0.02;
// Referring segmentation answer (ref: dataset/utils/utils.py ANSWER_LIST; the official eval
// teacher-forces this one).
constexpr char kRefsegAnswer[] = "Sure, it is [SEG].";
// The training-only heads' weights in a checkpoint folder (LossWeights::patch, sam_patch,
// region, seg, object).
constexpr char kPatchHeadFile[]    = "patch_head.pt";
constexpr char kSamPatchHeadFile[] = "sam_patch_head.pt";
constexpr char kRegionHeadFile[]   = "region_head.pt";
constexpr char kSegHeadFile[]      = "seg_head.pt";
constexpr char kObjectHeadFile[]   = "object_head.pt";

// The seven tokens GLaMM adds after the sentencepiece vocabulary, in the order of its
// added_tokens.json.
const std::vector<std::string>& glamm_added_tokens() {
    static const std::vector<std::string> tokens = {
        kImStartToken, kImEndToken, kBboxToken, kPointToken, kSegToken, kPhraseOpen, kPhraseClose};
    return tokens;
}

void write_text(const fs::path& path, const std::string& text) {
    write_file_atomic(path.string(), text);
}

// ---------------------------------------------------------------------------------------------
// Samples

enum class SampleTask { Gcg, Refseg, Regcap, Caption };

// A shape class and a colour class (patch_shape_classes(), patch_colour_classes(); 0 is the
// background).
using AttributeClasses = std::array<int64_t, 2>;

AttributeClasses attribute_classes(const synth::SceneObject& o) {
    return {1 + static_cast<int64_t>(o.shape), 1 + static_cast<int64_t>(o.colour)};
}

// The classes of object `id` of a scene (a group phrase's objects share shape and colour, so its
// first object stands for it). `what` names the text that refers to it, for the error.
AttributeClasses object_classes(const synth::SceneAnnotation& ann, int id,
                                const std::string& what) {
    for (const synth::ObjectInfo& o : ann.objects)
        if (o.id == id) return attribute_classes(o.object);
    fail("\"", what, "\" names object ", id, ", which the scene lacks");
}

struct Sample {
    Image image;
    std::vector<Turn> turns;                    // one, or several region caption turns
    std::vector<Box> boxes;                     // region prompts, original-image pixels
    std::vector<AttributeClasses> box_classes;  // the boxed object of each, for the region loss
    std::vector<Rle> masks;                     // one per [SEG] of the answer, in order
    std::vector<AttributeClasses> mask_classes; // the object under each mask, for the [SEG] loss
    bool hide_image = false; // image tokens zeroed (TrainConfig::region_image_dropout)
};

SampleTask draw_task(const TaskMix& mix, std::mt19937_64& rng) {
    std::discrete_distribution<int> pick({mix.gcg, mix.refseg, mix.regcap, mix.caption});
    return static_cast<SampleTask>(pick(rng));
}

template <class T> const T& draw(const std::vector<T>& items, std::mt19937_64& rng) {
    return items[std::uniform_int_distribution<size_t>(0, items.size() - 1)(rng)];
}

// One training sample from a scene: the conversation GLaMM's datasets would build
// (ref: dataset/gcg_datasets/GranDf_gcg_ds.py, dataset/segm_datasets/RefCOCO_Segm_ds.py,
// dataset/region_datasets/RefCOCO_VG_Region_ds.py, dataset/caption_datasets/COCO_Caption_ds.py).
// A region caption sample asks about `regcap_turns` boxes (TrainConfig::regcap_turns).
Sample make_sample(const synth::SceneAnnotation& ann, Image image, SampleTask task,
                   int64_t regcap_turns, std::mt19937_64& rng) {
    Sample s;
    s.image = std::move(image);
    if (task == SampleTask::Refseg && ann.referring.empty()) task = SampleTask::Gcg;
    if (task == SampleTask::Regcap && ann.regions.empty()) task = SampleTask::Gcg;
    switch (task) {
    case SampleTask::Gcg: {
        // Both wordings: the training one and the eval one (five spaces, spec §3.2).
        const bool eval_wording = std::bernoulli_distribution(0.5)(rng);
        const std::string asked =
            build_instruction(TaskPreset::GroundedCaption, "", 0, eval_wording);
        s.turns = {{asked, ann.gcg_caption}};
        for (const auto& p : ann.phrases) {
            s.masks.push_back(p.mask);
            s.mask_classes.push_back(object_classes(ann, p.objects.at(0), p.text));
        }
        break;
    }
    case SampleTask::Refseg: {
        const auto& r = draw(ann.referring, rng);
        s.turns = {{build_instruction(TaskPreset::ReferringSegmentation, r.text), kRefsegAnswer}};
        s.masks = {r.mask};
        s.mask_classes = {object_classes(ann, r.objects.at(0), r.text)};
        break;
    }
    case SampleTask::Regcap: {
        // One drawn box, or up to regcap_turns of them in a random order (ref:
        // RefCOCO_VG_Region_ds.py region_enc_processor: randperm(...)[:max_gt_per_img]).
        std::vector<const synth::RegionDescription*> picked;
        if (regcap_turns == 1) {
            picked = {&draw(ann.regions, rng)};
        } else {
            for (const auto& r : ann.regions) picked.push_back(&r);
            std::shuffle(picked.begin(), picked.end(), rng);
            picked.resize(std::min(picked.size(), static_cast<size_t>(regcap_turns)));
        }
        const std::string asked = build_instruction(TaskPreset::RegionCaption, "", 1);
        for (const synth::RegionDescription* r : picked) {
            s.turns.push_back({asked, r->text});
            s.boxes.push_back(Box{double(r->bbox[0]), double(r->bbox[1]), double(r->bbox[2]),
                                  double(r->bbox[3])});
            s.box_classes.push_back(object_classes(ann, r->object, r->text));
        }
        break;
    }
    case SampleTask::Caption:
        s.turns = {{build_instruction(TaskPreset::ImageCaption, ""), ann.caption}};
        break;
    }
    return s;
}

// Scene `index` of the training set (indices wrap at data.count).
synth::GeneratedScene training_scene(const synth::SynthOptions& data, int64_t index) {
    return synth::generate_scene(data, index % data.count);
}

std::mt19937_64 sample_rng(uint64_t seed, int64_t step, int64_t slot) {
    std::seed_seq seq{seed, static_cast<uint64_t>(step), static_cast<uint64_t>(slot)};
    return std::mt19937_64(seq);
}

// A sample with everything the step needs that does not depend on the weights, made on the CPU
// (in parallel, and ahead of the step when the model is on a GPU).
struct PreparedSample {
    Sample sample;
    at::Tensor clip_pixels;  // [1, 3, S, S]
    SamPreprocessed sam;     // [1, 3, S', S'] + the resize geometry
    ConversationIds text;    // the conversation's ids (with the image slot), answers + EOS
    at::Tensor mask_targets; // [K, H0, W0] f32, undefined when K = 0
    SceneTargets targets;    // of the losses the recipe asks for (scene_targets())
};

// The B samples of `step`: scene step*B + i with task and wording drawn from (seed, step, i), so
// a batch is the same whatever the thread count or the order its samples are made in.
std::vector<PreparedSample> prepare_batch(const TrainConfig& config, const GlammModel& model,
                                          int64_t step) {
    const Tokenizer& tok = *model.tokenizer;
    std::vector<PreparedSample> batch(static_cast<size_t>(config.batch_size));
    at::parallel_for(0, config.batch_size, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            PreparedSample& p   = batch[static_cast<size_t>(i)];
            std::mt19937_64 rng = sample_rng(config.seed, step, i);
            auto [ann, image]   = training_scene(config.data, step * config.batch_size + i);
            p.targets =
                scene_targets(ann, model.clip_config, model.config.grounding_encoder, config.loss);
            p.sample = make_sample(ann, std::move(image), draw_task(config.tasks, rng),
                                   config.regcap_turns, rng);
            // Drawn only when asked for, so recipes without it keep their batches.
            if (config.region_image_dropout > 0 && !p.sample.boxes.empty())
                p.sample.hide_image = std::bernoulli_distribution(config.region_image_dropout)(rng);
            const Sample& s = p.sample;
            p.clip_pixels   = preprocess_clip(s.image, model.clip_config, model.clip_processor);
            if (config.tower_only) continue; // nothing else reads the scene
            if (config.regions_only) {       // a box around every object, nothing else
                p.sample.boxes.clear();
                p.sample.box_classes.clear();
                for (const auto& r : ann.regions) {
                    p.sample.boxes.push_back(Box{double(r.bbox[0]), double(r.bbox[1]),
                                                 double(r.bbox[2]), double(r.bbox[3])});
                    p.sample.box_classes.push_back(object_classes(ann, r.object, r.text));
                }
                continue;
            }
            p.sam  = preprocess_sam(s.image, model.config.grounding_encoder);
            p.text = conversation_ids(tok, model.config.mm_use_im_start_end, s.turns);
            if (s.masks.empty()) continue;
            std::vector<at::Tensor> gt;
            for (const Rle& m : s.masks) {
                const std::vector<uint8_t> pixels = rle_decode(m);
                gt.push_back(torch::from_blob(const_cast<uint8_t*>(pixels.data()),
                                              {m.height, m.width}, torch::kUInt8)
                                 .to(torch::kFloat)); // a copy
            }
            p.mask_targets = torch::stack(gt);
        }
    });
    return batch;
}

// ---------------------------------------------------------------------------------------------
// Losses

// ref: model/GLaMM.py sigmoid_ce_loss: per-mask mean BCE, summed over masks. logits, targets
// [K, H0, W0] f32.
at::Tensor bce_sum(const at::Tensor& logits, const at::Tensor& targets) {
    return torch::binary_cross_entropy_with_logits(logits, targets, {}, {}, at::Reduction::None)
        .flatten(1)
        .mean(1)
        .sum();
}

// ref: model/GLaMM.py dice_loss: 1 - (2 Σ p t + eps) / (Σ p + Σ t + eps) per mask, with the
// reference's 1/1000 scaling, summed over masks.
at::Tensor dice_sum(const at::Tensor& logits, const at::Tensor& targets) {
    const at::Tensor p           = logits.sigmoid().flatten(1);
    const at::Tensor t           = targets.flatten(1);
    const at::Tensor numerator   = 2 * (p / kDiceScale * t).sum(-1);
    const at::Tensor denominator = (p / kDiceScale).sum(-1) + (t / kDiceScale).sum(-1);
    return (1 - (numerator + kDiceEps) / (denominator + kDiceEps)).sum();
}

// ---------------------------------------------------------------------------------------------
// The model

// LibTorch's default initialisation, except where it differs from the reference models' own:
// embedding tables N(0, 0.02) (HF initializer_range) instead of N(0, 1), and SAM's random
// Fourier matrix N(0, 1) (PositionEmbeddingRandom: scale * randn) instead of the zeros a module
// that expects a checkpoint starts with.
void initialise(GlammModel& model) {
    torch::NoGradGuard no_grad;
    for (const ComponentRef& ref : model.component_refs())
        ref.module->apply([](torch::nn::Module& m) {
            if (auto* e = m.as<torch::nn::Embedding>()) e->weight.normal_(0, kEmbeddingInitStd);
        });
    model.sam_prompt_encoder->pe_layer->positional_encoding_gaussian_matrix.normal_(0, 1);
}

// Refuses a recipe list (`key`: frozen, reinitialise) naming a component that a model of
// `glamm` lacks (GlammModel::component_names), before anything is built or written.
void check_component_names(const GlammConfig& glamm, const std::vector<std::string>& names,
                           const char* key) {
    const std::vector<std::string> known = GlammModel::component_names(glamm);
    for (const std::string& name : names) {
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            std::string list;
            for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
            fail("recipe ", key, ": no component \"", name, "\" in this model (it has ", list, ")");
        }
    }
}

// The parameters and buffers of the `names` components as they are now (a fresh
// initialisation), by full name, for restore_components after the init's weights are loaded.
std::vector<std::pair<std::string, at::Tensor>>
snapshot_components(const GlammModel& model, const std::vector<std::string>& names) {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (const ComponentRef& ref : model.component_refs()) {
        if (std::find(names.begin(), names.end(), ref.name) == names.end()) continue;
        for (const auto& p : ref.module->named_parameters())
            out.emplace_back(ref.name + "/" + p.key(), p.value().detach().clone());
        for (const auto& b : ref.module->named_buffers())
            out.emplace_back(ref.name + "/" + b.key(), b.value().detach().clone());
    }
    return out;
}

void restore_components(GlammModel& model,
                        const std::vector<std::pair<std::string, at::Tensor>>& saved) {
    torch::NoGradGuard no_grad;
    std::map<std::string, at::Tensor> now;
    for (const ComponentRef& ref : model.component_refs()) {
        for (const auto& p : ref.module->named_parameters())
            now[ref.name + "/" + p.key()] = p.value();
        for (const auto& b : ref.module->named_buffers()) now[ref.name + "/" + b.key()] = b.value();
    }
    for (const auto& [name, value] : saved) now.at(name).copy_(value);
}

// The parameters of every component but the `frozen` ones (TrainConfig::frozen), whose
// parameters stop requiring a gradient: no backward runs through them.
std::vector<at::Tensor> trainable_parameters(const GlammModel& model,
                                             const std::vector<std::string>& frozen) {
    const std::vector<ComponentRef> refs = model.component_refs();
    std::vector<at::Tensor> params;
    for (const ComponentRef& ref : refs) {
        const bool keep = std::find(frozen.begin(), frozen.end(), ref.name) != frozen.end();
        for (auto& p : ref.module->parameters()) {
            p.requires_grad_(!keep);
            if (!keep) params.push_back(p);
        }
    }
    return params;
}

// Names the parameters whose gradient holds a NaN or an infinity (the first few per component).
std::string nonfinite_gradients(const GlammModel& model) {
    constexpr int kNamesPerComponent = 3;
    std::string names;
    for (const ComponentRef& ref : model.component_refs()) {
        int listed = 0;
        for (const auto& p : ref.module->named_parameters()) {
            const at::Tensor& g = p.value().grad();
            if (!g.defined() || torch::isfinite(g).all().item<bool>()) continue;
            if (listed++ < kNamesPerComponent)
                names += (names.empty() ? "" : ", ") + ref.prefix + p.key();
        }
    }
    return names;
}

void set_training(const GlammModel& model, bool on) {
    for (const ComponentRef& ref : model.component_refs()) ref.module->train(on);
}

// ---------------------------------------------------------------------------------------------
// Output folders

struct Paths {
    fs::path out, glamm, clip, checkpoints, csv, svg, recipe;
    explicit Paths(const std::string& dir)
        : out(dir), glamm(out / "glamm"), clip(out / "clip"), checkpoints(out / "checkpoints"),
          csv(out / "loss.csv"), svg(out / "loss.svg"), recipe(out / "recipe.json") {}
};

// The tokenizer files next to tokenizer.model (LLaMA's special tokens; GLaMM's added tokens).
void write_tokenizer_files(const fs::path& dir, int64_t sp_vocab) {
    nlohmann::ordered_json added;
    int64_t id = sp_vocab;
    for (const auto& t : glamm_added_tokens()) added[t] = id++;
    write_text(dir / "added_tokens.json", added.dump(2));
    const nlohmann::ordered_json special = {{"bos_token", "<s>"},
                                            {"eos_token", "</s>"},
                                            {"unk_token", "<unk>"},
                                            {"pad_token", "<unk>"}};
    write_text(dir / "special_tokens_map.json", special.dump(2));
    const nlohmann::ordered_json conf = {{"tokenizer_class", "LlamaTokenizer"},
                                         {"add_bos_token", true},
                                         {"add_eos_token", false},
                                         {"legacy", true},
                                         {"padding_side", "right"}};
    write_text(dir / "tokenizer_config.json", conf.dump(2));
}

// Trains sentencepiece on the scenes' text (LLaMA's settings: BPE, identity normalisation,
// whitespace kept, byte fallback, unk/bos/eos = 0/1/2) into DIR/tokenizer.model.
void train_tokenizer(const TrainConfig& config, const fs::path& dir, const fs::path& work) {
    const fs::path corpus = work / "tokenizer-corpus.txt";
    write_text(corpus, tokenizer_corpus(config.data, config.tokenizer_corpus));
    std::ostringstream args;
    args << "--input=" << corpus.string() << " --model_prefix=" << (dir / "tokenizer").string()
         << " --vocab_size=" << config.tokenizer_vocab
         << " --model_type=bpe --character_coverage=1.0 --normalization_rule_name=identity"
         << " --remove_extra_whitespaces=false --add_dummy_prefix=true --byte_fallback=true"
         << " --split_digits=true --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1"
         << " --hard_vocab_limit=false --minloglevel=2 --num_threads=1"; // deterministic
    train_sentencepiece(args.str());
    fs::remove(dir / "tokenizer.vocab");
}

// Writes config.json files and the weights of the release layout.
void write_release(const GlammModel& model, const TrainConfig& config, const Paths& paths) {
    fs::create_directories(paths.glamm);
    fs::create_directories(paths.clip);
    nlohmann::json glamm_config     = config.model;
    glamm_config["vocab_size"]      = model.config.llama.vocab_size;
    glamm_config["mm_vision_tower"] = "../clip";
    write_text(paths.glamm / "config.json", glamm_config.dump(2));
    write_text(paths.clip / "config.json", config.vision_tower.dump(2));
    model.save_weights((paths.glamm / "model.safetensors").string(),
                       (paths.clip / "model.safetensors").string(), at::kFloat);
}

fs::path checkpoint_dir(const Paths& paths, int64_t step) {
    return paths.checkpoints / cat("step-", step);
}

// Newest complete checkpoint (state.json present), -1 if none.
int64_t newest_checkpoint(const Paths& paths) {
    int64_t best = -1;
    std::error_code ec;
    if (!fs::is_directory(paths.checkpoints, ec)) return best;
    for (const auto& entry : fs::directory_iterator(paths.checkpoints)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind("step-", 0) != 0 || !fs::exists(entry.path() / "state.json")) continue;
        try {
            best = std::max<int64_t>(best, std::stoll(name.substr(5)));
        } catch (const std::exception&) {
        }
    }
    return best;
}

// The heads of the losses that are not GLaMM's (LossWeights::patch, sam_patch, region, seg): each a
// Linear from its features to shape classes + colour classes, empty when its weight is 0. They
// exist only in training: checkpoints keep them, releases do not.
struct AuxHeads {
    torch::nn::Linear patch{nullptr};     // CLIP patch features -> classes
    torch::nn::Linear sam_patch{nullptr}; // SAM embedding cells -> classes
    torch::nn::Linear region{nullptr};    // <bbox> embeddings -> classes
    torch::nn::Linear seg{nullptr};       // states before [SEG] -> classes
    torch::nn::Linear object{nullptr};    // CLIP features pooled per object -> classes

    AuxHeads(const GlammModel& model, const LossWeights& weights) {
        const int64_t classes = patch_shape_classes() + patch_colour_classes();
        if (weights.patch > 0) patch = torch::nn::Linear(model.clip_config.hidden_size, classes);
        if (weights.sam_patch > 0)
            sam_patch = torch::nn::Linear(model.config.grounding_encoder.prompt_embed_dim, classes);
        if (weights.region > 0) region = torch::nn::Linear(model.config.llama.hidden_size, classes);
        if (weights.seg > 0) seg = torch::nn::Linear(model.config.llama.hidden_size, classes);
        if (weights.object > 0) object = torch::nn::Linear(model.clip_config.hidden_size, classes);
        for (const auto& entry : files()) (*entry.first)->to(model.device);
    }
    // The heads that exist, with their checkpoint files.
    std::vector<std::pair<torch::nn::Linear*, const char*>> files() {
        std::vector<std::pair<torch::nn::Linear*, const char*>> out;
        if (!patch.is_empty()) out.emplace_back(&patch, kPatchHeadFile);
        if (!sam_patch.is_empty()) out.emplace_back(&sam_patch, kSamPatchHeadFile);
        if (!region.is_empty()) out.emplace_back(&region, kRegionHeadFile);
        if (!seg.is_empty()) out.emplace_back(&seg, kSegHeadFile);
        if (!object.is_empty()) out.emplace_back(&object, kObjectHeadFile);
        return out;
    }
};

void save_checkpoint(const GlammModel& model, torch::optim::AdamW& optimizer, AuxHeads& heads,
                     const Paths& paths, int64_t step) {
    const fs::path final_dir = checkpoint_dir(paths, step);
    const fs::path tmp       = paths.checkpoints / cat(".step-", step, ".tmp");
    fs::remove_all(tmp);
    fs::create_directories(tmp / "glamm");
    fs::create_directories(tmp / "clip");
    model.save_weights((tmp / "glamm" / "model.safetensors").string(),
                       (tmp / "clip" / "model.safetensors").string(), at::kFloat);
    torch::save(optimizer, (tmp / "optimizer.pt").string());
    for (const auto& [head, file] : heads.files()) torch::save(*head, (tmp / file).string());
    write_text(tmp / "state.json", nlohmann::json{{"step", step}}.dump());
    fs::remove_all(final_dir);
    fs::rename(tmp, final_dir);
}

// Every component's weights from DIR/glamm and DIR/clip (a checkpoint or a release), strictly.
void load_weights(GlammModel& model, const fs::path& dir) {
    const Checkpoint glamm_ckpt = Checkpoint::open((dir / "glamm").string());
    const Checkpoint clip_ckpt  = Checkpoint::open((dir / "clip").string());
    LoadReport glamm_report(glamm_ckpt), clip_report(clip_ckpt);
    for (const ComponentRef& ref : model.component_refs())
        (ref.in_vision_tower ? clip_report : glamm_report).load_module(*ref.module, ref.prefix);
    glamm_report.finish("the weights in " + (dir / "glamm").string());
    clip_report.finish("the weights in " + (dir / "clip").string());
}

// A stage's init (TrainConfig::init): DIR/glamm and DIR/clip hold the weights (a release, a run,
// or a checkpoint folder RUN/checkpoints/step-N, which also holds the training-only heads); the
// tokenizer is DIR/glamm's or, for a checkpoint folder, which has none of its own, its run's.
struct InitFolder {
    fs::path dir, tokenizer;
};

InitFolder resolve_init(const std::string& init) {
    InitFolder out;
    out.dir = fs::path(init);
    if (!out.dir.has_filename()) out.dir = out.dir.parent_path(); // a trailing '/'
    for (const char* part : {"glamm", "clip"})
        if (!fs::is_directory(out.dir / part))
            fail("the init ", init, " has no ", part,
                 "/ folder (a release, a run and a checkpoint folder hold glamm/ and clip/)");
    out.tokenizer = out.dir / "glamm" / "tokenizer.model";
    if (!fs::exists(out.tokenizer))
        out.tokenizer = out.dir.parent_path().parent_path() / "glamm" / "tokenizer.model";
    if (!fs::exists(out.tokenizer))
        fail("the init ", init,
             " has no glamm/tokenizer.model (nor has the run it would be a checkpoint of)");
    return out;
}

// A head or optimiser file of a checkpoint, its tensors put on `device` whichever device wrote
// them (a run trained on a GPU goes on on the CPU).
template <typename T>
void load_archive(T& value, const fs::path& path, const torch::Device& device) {
    try {
        torch::load(value, path.string(), device);
    } catch (const c10::Error& e) {
        fail("cannot read ", path.string(), ": ", e.what_without_backtrace());
    }
}

void load_checkpoint(GlammModel& model, torch::optim::AdamW& optimizer, AuxHeads& heads,
                     const fs::path& dir) {
    load_weights(model, dir);
    for (const auto& [head, file] : heads.files()) {
        if (!fs::exists(dir / file))
            fail(dir.string(), " has no ", file, ": not trained with the loss it belongs to");
        load_archive(*head, dir / file, model.device);
    }
    load_archive(optimizer, dir / "optimizer.pt", model.device);
}

// Linear warm-up, then cosine decay to min_learning_rate.
double learning_rate_at(const TrainConfig& c, int64_t step) {
    if (step < c.warmup_steps) return c.learning_rate * double(step + 1) / double(c.warmup_steps);
    const double progress =
        double(step - c.warmup_steps) / double(std::max<int64_t>(1, c.steps - c.warmup_steps));
    const double cosine = 0.5 * (1 + std::cos(M_PI * std::min(1.0, progress)));
    return c.min_learning_rate + (c.learning_rate - c.min_learning_rate) * cosine;
}

// ---------------------------------------------------------------------------------------------
// Loss curves

constexpr size_t kCsvLineBytes = 200; // a row is at most ~155 characters
const char* kCsvHeader =
    "step,learning_rate,loss,ce,bce,dice,masks,tokens,seconds,data_seconds,patch,sam_patch,region,"
    "seg,object";

std::string csv_row(const StepLog& s) {
    char line[kCsvLineBytes];
    std::snprintf(line, sizeof line,
                  "%lld,%.6g,%.6f,%.6f,%.6f,%.6f,%lld,%lld,%.3f,%.3f,%.6f,%.6f,%.6f,%.6f,%.6f",
                  static_cast<long long>(s.step), s.learning_rate, s.loss, s.ce, s.bce, s.dice,
                  static_cast<long long>(s.masks), static_cast<long long>(s.tokens), s.seconds,
                  s.data_seconds, s.patch, s.sam_patch, s.region, s.seg, s.object);
    return line;
}

// Keeps the CSV rows of steps up to `last_step` (a resumed run rewrites the rest).
std::vector<std::string> read_csv_rows(const fs::path& csv, int64_t last_step) {
    std::vector<std::string> rows;
    std::ifstream in(csv);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] < '0' || line[0] > '9') continue;
        if (std::stoll(line.substr(0, line.find(','))) <= last_step) rows.push_back(line);
    }
    return rows;
}

// A plain SVG of the loss terms against the step (moving average over `window` steps).
std::string loss_svg(const std::vector<std::string>& rows) {
    constexpr int kWidth = 800, kHeight = 400, kMargin = 50;
    constexpr int64_t kWindow = 50;
    struct Series {
        const char* name;
        int column;
        const char* colour;
    };
    const Series series[] = {{"loss", 2, "#000000"},
                             {"ce", 3, "#1f77b4"},
                             {"bce", 4, "#d62728"},
                             {"dice", 5, "#2ca02c"}};
    std::vector<std::vector<double>> values(std::size(series));
    std::vector<double> steps;
    for (const auto& row : rows) {
        std::vector<double> cells;
        std::stringstream ss(row);
        std::string cell;
        while (std::getline(ss, cell, ',')) cells.push_back(std::stod(cell));
        steps.push_back(cells[0]);
        for (size_t k = 0; k < std::size(series); ++k) values[k].push_back(cells[series[k].column]);
    }
    std::ostringstream svg;
    svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << kWidth << "' height='" << kHeight
        << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' "
           "fill='white'/>\n";
    if (steps.empty()) return svg.str() + "</svg>\n";
    double top = 0;
    for (const auto& v : values)
        for (double x : v) top = std::max(top, x);
    top                = std::max(top, 1e-6);
    const double x_max = std::max(1.0, steps.back());
    auto px = [&](double step) { return kMargin + (kWidth - 2 * kMargin) * step / x_max; };
    auto py = [&](double v) { return kHeight - kMargin - (kHeight - 2 * kMargin) * v / top; };
    svg << "<line x1='" << kMargin << "' y1='" << kHeight - kMargin << "' x2='" << kWidth - kMargin
        << "' y2='" << kHeight - kMargin << "' stroke='black'/>\n<line x1='" << kMargin << "' y1='"
        << kMargin << "' x2='" << kMargin << "' y2='" << kHeight - kMargin
        << "' stroke='black'/>\n";
    svg << "<text x='" << kWidth / 2 << "' y='" << kHeight - 15 << "'>step (0 .. " << x_max
        << ")</text>\n<text x='5' y='" << kMargin - 10 << "'>loss (0 .. " << top
        << "), moving average of " << kWindow << " steps</text>\n";
    for (size_t k = 0; k < std::size(series); ++k) {
        svg << "<polyline fill='none' stroke='" << series[k].colour << "' points='";
        double sum = 0;
        for (size_t i = 0; i < steps.size(); ++i) {
            sum += values[k][i];
            if (i >= size_t(kWindow)) sum -= values[k][i - kWindow];
            const double mean = sum / double(std::min<size_t>(i + 1, kWindow));
            svg << px(steps[i]) << "," << py(mean) << " ";
        }
        svg << "'/>\n<text x='" << kWidth - kMargin - 60 << "' y='" << kMargin + 15 * (k + 1)
            << "' fill='" << series[k].colour << "'>" << series[k].name << "</text>\n";
    }
    return svg.str() + "</svg>\n";
}

// ---------------------------------------------------------------------------------------------
// One step

struct BatchLoss {
    at::Tensor total;
    double ce = 0, bce = 0, dice = 0, patch = 0, sam_patch = 0, region = 0, seg = 0, object = 0;
    int64_t masks = 0, tokens = 0;
};

// [2, N]: the shape row and the colour row of N (shape, colour) pairs, for attribute_loss.
at::Tensor class_rows(const std::vector<AttributeClasses>& pairs) {
    std::vector<int64_t> flat;
    for (const AttributeClasses& c : pairs) flat.insert(flat.end(), c.begin(), c.end());
    return torch::tensor(flat, torch::kLong).view({-1, 2}).t();
}

// The shape and colour cross-entropies of one head, summed. features [N, C] (or [B, P, C]); head:
// C -> shape classes + colour classes; targets [2, N] (or [B, 2, P]): shape row, colour row.
at::Tensor attribute_loss(const at::Tensor& features, torch::nn::Linear& head,
                          const at::Tensor& targets) {
    const at::Tensor logits = head->forward(features); // [..., classes]
    const int64_t shapes = patch_shape_classes(), colours = patch_colour_classes();
    const at::Tensor rows          = targets.to(features.device());
    const int64_t row_dim          = rows.dim() - 2; // the shape/colour dimension
    namespace F                    = torch::nn::functional;
    const at::Tensor shape_logits  = logits.narrow(-1, 0, shapes).reshape({-1, shapes});
    const at::Tensor colour_logits = logits.narrow(-1, shapes, colours).reshape({-1, colours});
    return F::cross_entropy(shape_logits, rows.select(row_dim, 0).reshape(-1)) +
           F::cross_entropy(colour_logits, rows.select(row_dim, 1).reshape(-1));
}

// The losses on the tower's image features [B, P, C] (LossWeights::patch, object), added to
// out.total.
void add_tower_losses(const at::Tensor& features, const std::vector<PreparedSample>& batch,
                      const LossWeights& weights, AuxHeads& heads, BatchLoss& out) {
    if (!heads.patch.is_empty()) {
        std::vector<at::Tensor> labels;
        for (const PreparedSample& p : batch) labels.push_back(p.targets.patch_labels);
        const at::Tensor patch =
            attribute_loss(features, heads.patch, torch::stack(labels)); // [B, P, C]
        out.total = out.total + weights.patch * patch;
        out.patch = patch.item<double>();
    }
    if (!heads.object.is_empty()) {
        std::vector<at::Tensor> pooled, classes;
        for (size_t b = 0; b < batch.size(); ++b) {
            const ObjectViews& o = batch[b].targets.objects;
            if (o.coverage.size(0) == 0) continue;
            const at::Tensor w = o.coverage.to(features.device());             // [N, P]
            pooled.push_back(w.matmul(features[int64_t(b)]) / w.sum(1, true)); // [N, C]
            classes.push_back(o.classes);
        }
        if (pooled.empty()) return;
        const at::Tensor loss =
            attribute_loss(torch::cat(pooled), heads.object, torch::cat(classes, 1));
        out.total  = out.total + weights.object * loss;
        out.object = loss.item<double>();
    }
}

// The region loss (LossWeights::region) on every sample's <bbox> embeddings (K × [N_k, H]) and
// their boxed objects, added to out.total.
void add_region_loss(const GlammModel& model, const std::vector<at::Tensor>& regions,
                     const std::vector<AttributeClasses>& classes, const LossWeights& weights,
                     AuxHeads& heads, BatchLoss& out) {
    if (heads.region.is_empty() || regions.empty()) return;
    // The head reads the embeddings RMS-normalised, as the first decoder layer does (their
    // scale drifts far from the token embeddings' in training; the direction is what the
    // language model reads).
    const at::Tensor x = torch::cat(regions); // [N, H]
    const at::Tensor read =
        rms_norm(x, torch::ones({x.size(-1)}, x.options()), model.config.llama.rms_norm_eps);
    const at::Tensor loss = attribute_loss(read, heads.region, class_rows(classes));
    out.total             = out.total + weights.region * loss;
    out.region            = loss.item<double>();
}

// The <bbox> embeddings [N, H] of sample b's N boxes, from its CLIP levels in the batch.
at::Tensor encode_sample_boxes(const GlammModel& model, const ClipVisionFeatures& clip, int64_t b,
                               const Sample& s) {
    std::vector<at::Tensor> levels;
    for (const auto& level : clip.region_levels) levels.push_back(level.narrow(0, b, 1));
    return model.region_encoder->forward(
        levels, model.normalize_boxes(s.boxes, s.image.height, s.image.width));
}

// What a step runs (TrainConfig::tower_only, regions_only).
enum class StepScope { Whole, Tower, Regions };

StepScope step_scope(const TrainConfig& config) {
    if (config.tower_only) return StepScope::Tower;
    if (config.regions_only) return StepScope::Regions;
    return StepScope::Whole;
}

// Forward of B samples and GLaMM's loss (ref: model/GLaMM.py model_forward, training branch);
// with `heads`, the losses that are not GLaMM's on top (LossWeights::patch, sam_patch, region,
// seg, object). StepScope::Tower: the vision tower and its losses alone; Regions: the tower,
// the region encoder on every sample's boxes and the region loss alone.
BatchLoss batch_loss(const GlammModel& model, const std::vector<PreparedSample>& batch,
                     const LossWeights& weights, AuxHeads& heads, StepScope scope) {
    const Tokenizer& tok      = *model.tokenizer;
    const c10::Device device  = model.device;
    const int64_t num_samples = static_cast<int64_t>(batch.size());

    // Both image encoders on the whole batch: [B, 3, S, S] and [B, 3, S', S'].
    std::vector<at::Tensor> clip_pixels, sam_pixels;
    for (const PreparedSample& p : batch) {
        clip_pixels.push_back(p.clip_pixels);
        sam_pixels.push_back(p.sam.pixel_values);
    }
    const ClipVisionFeatures clip =
        model.clip->forward(torch::cat(clip_pixels).to(device), model.clip_selection);
    if (scope != StepScope::Whole) {
        BatchLoss out;
        out.total = torch::zeros({}, torch::kFloat).to(device);
        if (scope == StepScope::Tower) {
            add_tower_losses(clip.image_features, batch, weights, heads, out);
            return out;
        }
        std::vector<at::Tensor> regions;
        std::vector<AttributeClasses> classes;
        for (int64_t b = 0; b < num_samples; ++b) {
            const Sample& s = batch[b].sample;
            if (s.boxes.empty()) continue;
            regions.push_back(encode_sample_boxes(model, clip, b, s));
            classes.insert(classes.end(), s.box_classes.begin(), s.box_classes.end());
        }
        add_region_loss(model, regions, classes, weights, heads, out);
        return out;
    }
    const at::Tensor image_embeds = model.mm_projector->forward(clip.image_features); // [B, P, H]
    const at::Tensor sam_embeds =
        model.sam_image_encoder->forward(torch::cat(sam_pixels).to(device)); // [B, D, G, G]

    // Targets on the answer (shifted by one: the state at position t predicts token t+1).
    const int64_t num_image = model.num_image_tokens();
    std::vector<at::Tensor> embeds;
    std::vector<std::vector<int64_t>> targets;    // per expanded position
    std::vector<int64_t> seg_rows, seg_sample;    // state before each [SEG]: flat row, its sample
    std::vector<AttributeClasses> mask_classes;   // the object under each [SEG]'s mask
    std::vector<at::Tensor> regions;              // every sample's <bbox> embeddings [N, H]
    std::vector<AttributeClasses> region_classes; // their boxed objects, box by box
    int64_t longest = 0;
    for (int64_t b = 0; b < num_samples; ++b) {
        const PreparedSample& p = batch[b];
        const Sample& s         = p.sample;
        at::Tensor region; // [N, H]
        if (!s.boxes.empty()) {
            region = encode_sample_boxes(model, clip, b, s);
            regions.push_back(region);
            region_classes.insert(region_classes.end(), s.box_classes.begin(), s.box_classes.end());
        }
        at::Tensor e =
            assemble_embeddings(model.llama, torch::tensor(p.text.ids, torch::kLong),
                                s.hide_image ? torch::zeros_like(image_embeds[b]) : image_embeds[b],
                                region, kImageTokenIndex,
                                tok.bbox_id()); // [1, S_b, H]
        const int64_t length = e.size(1);
        const int64_t shift  = num_image - 1; // the image slot expands to num_image positions
        std::vector<int64_t> target(length, kIgnoreIndex);
        int64_t masks = 0;
        for (const auto& [begin, end] : p.text.answers) {
            for (int64_t j = begin; j < end; ++j) {
                const int64_t id  = p.text.ids[static_cast<size_t>(j)];
                const int64_t pos = j + shift; // answer token j
                target[pos - 1]   = id;
                if (id == tok.seg_id()) {
                    seg_rows.push_back(pos - 1); // row within the sample; made flat below
                    seg_sample.push_back(b);
                    ++masks;
                }
            }
        }
        if (masks != static_cast<int64_t>(s.masks.size()))
            fail("training sample has ", masks, " [SEG] tokens but ", s.masks.size(), " masks: \"",
                 s.turns.back().answer, "\"");
        mask_classes.insert(mask_classes.end(), s.mask_classes.begin(), s.mask_classes.end());
        embeds.push_back(e);
        targets.push_back(std::move(target));
        longest = std::max(longest, length);
    }

    // Right padding: causal attention keeps the padded rows out of every real row.
    std::vector<at::Tensor> padded;
    std::vector<int64_t> flat_targets;
    for (int64_t b = 0; b < num_samples; ++b) {
        const int64_t pad = longest - embeds[b].size(1);
        padded.push_back(pad ? torch::cat({embeds[b], torch::zeros({1, pad, embeds[b].size(2)},
                                                                   embeds[b].options())},
                                          1)
                             : embeds[b]);
        targets[b].resize(longest, kIgnoreIndex);
        flat_targets.insert(flat_targets.end(), targets[b].begin(), targets[b].end());
    }
    for (size_t k = 0; k < seg_rows.size(); ++k) seg_rows[k] += seg_sample[k] * longest;
    const at::Tensor hidden =
        model.llama->model->forward(torch::cat(padded), nullptr, 0); // [B, S, H]
    const at::Tensor logits        = model.llama->logits(hidden);    // [B, S, V]
    const at::Tensor target_tensor = torch::tensor(flat_targets, torch::kLong).to(device);

    BatchLoss out;
    out.tokens          = (target_tensor != kIgnoreIndex).sum().item<int64_t>();
    const at::Tensor ce = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}).to(torch::kFloat), target_tensor,
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex));

    // Masks: the state before each [SEG] -> text_hidden_fcs -> SAM prompt -> mask decoder, all
    // masks of the batch in one decoder call (mask k against its own sample's image).
    at::Tensor bce  = torch::zeros({}, torch::kFloat).to(device);
    at::Tensor dice = torch::zeros({}, torch::kFloat).to(device);
    at::Tensor seg_states; // [M, H]
    if (!seg_rows.empty()) {
        const at::Tensor rows = torch::tensor(seg_rows, torch::kLong).to(device);
        seg_states            = hidden.reshape({-1, hidden.size(-1)}).index_select(0, rows);
        const auto prompts =
            model.sam_prompt_encoder->forward(model.text_projection->forward(seg_states)); // [M, …]
        const at::Tensor images = sam_embeds.index_select(
            0, torch::tensor(seg_sample, torch::kLong).to(device)); // [M, D, G, G]
        const auto decoded = model.sam_mask_decoder->forward(
            images, model.sam_prompt_encoder->get_dense_pe(), prompts.sparse, prompts.dense);
        int64_t first = 0;
        for (int64_t b = 0; b < num_samples; ++b) {
            const PreparedSample& p = batch[b];
            const int64_t k         = static_cast<int64_t>(p.sample.masks.size());
            if (k == 0) continue;
            // ref: model_forward — predictions post-processed to the original size, compared
            // there.
            const at::Tensor mask_logits =
                postprocess_masks(decoded.low_res_masks.narrow(0, first, k),
                                  model.mask_geometry(p.sam, p.sample.image.height,
                                                      p.sample.image.width)); // [K, H0, W0]
            const at::Tensor targets_b = p.mask_targets.to(device);           // [K, H0, W0]
            bce                        = bce + bce_sum(mask_logits, targets_b);
            dice                       = dice + dice_sum(mask_logits, targets_b);
            out.masks += k;
            first += k;
        }
    }
    // ref: model_forward: bce_weight * Σ_k bce_k / (K + 1e-8), the same for dice.
    const double denominator   = double(out.masks) + kCountEps;
    const at::Tensor bce_mean  = bce / denominator;
    const at::Tensor dice_mean = dice / denominator;
    out.total = weights.ce * ce + weights.bce * bce_mean + weights.dice * dice_mean;
    add_tower_losses(clip.image_features, batch, weights, heads, out);
    if (!heads.sam_patch.is_empty()) {
        std::vector<at::Tensor> labels;
        for (const PreparedSample& p : batch) labels.push_back(p.targets.sam_patch_labels);
        const at::Tensor cells = sam_embeds.flatten(2).transpose(1, 2); // [B, G*G, D]
        const at::Tensor loss  = attribute_loss(cells, heads.sam_patch, torch::stack(labels));
        out.total              = out.total + weights.sam_patch * loss;
        out.sam_patch          = loss.item<double>();
    }
    add_region_loss(model, regions, region_classes, weights, heads, out);
    if (!heads.seg.is_empty() && seg_states.defined()) {
        const at::Tensor loss = attribute_loss(seg_states, heads.seg, class_rows(mask_classes));
        out.total             = out.total + weights.seg * loss;
        out.seg               = loss.item<double>();
    }
    out.ce   = ce.item<double>();
    out.bce  = bce_mean.item<double>();
    out.dice = dice_mean.item<double>();
    return out;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Recipe

int64_t patch_shape_classes() {
    return 1 + synth::kShapeCount;
}

int64_t patch_colour_classes() {
    return 1 + static_cast<int64_t>(synth::named_colours().size());
}

namespace {

// A grid of square cells over a view of the scene: the image resized to rh x rw, the grid's
// origin at (left, top) of the resized image (a centre crop's offset), `cell` resized pixels a
// side. Cells beyond the resized image (padding) are background.
struct GridView {
    int64_t grid = 0, cell = 0;
    int64_t rh = 0, rw = 0, top = 0, left = 0;
};

// Sample points per cell side: 4 x 4 points per cell decide what covers it.
constexpr int64_t kPoints = 4;

// The object owning each pixel of the scene (index in scene.objects; -1 background): visible
// masks do not overlap. One decode of the masks serves every grid view of the scene.
using PixelOwners = std::vector<int16_t>;
PixelOwners pixel_owners(const synth::SceneAnnotation& scene) {
    PixelOwners owner(static_cast<size_t>(scene.width * scene.height), -1);
    for (size_t k = 0; k < scene.objects.size(); ++k) {
        const std::vector<uint8_t> pixels = rle_decode(scene.objects[k].mask);
        for (size_t i = 0; i < pixels.size(); ++i)
            if (pixels[i]) owner[i] = static_cast<int16_t>(k);
    }
    return owner;
}

// [objects][grid*grid]: how many of each cell's kPoints² sample points fall on each object's
// visible mask.
using CellVotes = std::vector<std::vector<int>>;
CellVotes cell_votes(const synth::SceneAnnotation& scene, const PixelOwners& owner,
                     const GridView& view) {
    const int64_t width = scene.width, height = scene.height;
    const int64_t grid = view.grid, patch = view.cell, rh = view.rh, rw = view.rw;
    const int64_t top = view.top, left = view.left;
    // Continuous coordinates in the resized image, pixel edges at integers.
    CellVotes votes(scene.objects.size(), std::vector<int>(static_cast<size_t>(grid * grid)));
    for (int64_t gy = 0; gy < grid; ++gy) {
        for (int64_t gx = 0; gx < grid; ++gx) {
            for (int64_t j = 0; j < kPoints; ++j) {
                for (int64_t i = 0; i < kPoints; ++i) {
                    const double u = left + gx * patch + (i + 0.5) * patch / kPoints;
                    const double v = top + gy * patch + (j + 0.5) * patch / kPoints;
                    if (u >= double(rw) || v >= double(rh)) continue; // padding
                    const int64_t x =
                        std::clamp<int64_t>(int64_t(u * width / double(rw)), 0, width - 1);
                    const int64_t y =
                        std::clamp<int64_t>(int64_t(v * height / double(rh)), 0, height - 1);
                    const int16_t o = owner[static_cast<size_t>(y * width + x)];
                    if (o >= 0) ++votes[static_cast<size_t>(o)][size_t(gy * grid + gx)];
                }
            }
        }
    }
    return votes;
}

// [2, cells] shape and colour classes of the object covering most of each cell (at least a
// quarter of it; else background).
at::Tensor grid_labels(const synth::SceneAnnotation& scene, const CellVotes& votes, int64_t cells) {
    constexpr int kQuorum = kPoints * kPoints / 4;            // a quarter of the cell
    at::Tensor labels     = at::zeros({2, cells}, at::kLong); // [2, G*G]
    auto out              = labels.accessor<int64_t, 2>();
    for (int64_t c = 0; c < cells; ++c) {
        int best     = 0;
        size_t owner = 0;
        for (size_t k = 0; k < votes.size(); ++k)
            if (votes[k][size_t(c)] > best) best = votes[k][size_t(c)], owner = k;
        if (best < kQuorum) continue;
        const AttributeClasses classes = attribute_classes(scene.objects[owner].object);
        out[0][c]                      = classes[0];
        out[1][c]                      = classes[1];
    }
    return labels;
}

// The objects with any vote: their share of each cell's sample points and their classes.
ObjectViews objects_in(const synth::SceneAnnotation& scene, const CellVotes& votes, int64_t cells) {
    std::vector<at::Tensor> coverage;
    std::vector<int64_t> classes; // shape, colour per object
    for (size_t k = 0; k < votes.size(); ++k) {
        if (std::all_of(votes[k].begin(), votes[k].end(), [](int v) { return v == 0; })) continue;
        coverage.push_back(torch::tensor(votes[k], torch::kInt).to(torch::kFloat) /
                           double(kPoints * kPoints));
        const AttributeClasses c = attribute_classes(scene.objects[k].object);
        classes.insert(classes.end(), c.begin(), c.end());
    }
    ObjectViews out;
    out.coverage = coverage.empty() ? at::zeros({0, cells}) : torch::stack(coverage);   // [N, G*G]
    out.classes  = torch::tensor(classes, torch::kLong).view({-1, 2}).t().contiguous(); // [2, N]
    return out;
}

// The tower's view of a scene: resized to (rh, rw) with the short side `image_size`,
// centre-cropped (clip_resize_and_crop).
GridView clip_view(const synth::SceneAnnotation& scene, const ClipVisionConfig& clip) {
    const int64_t side  = clip.image_size;
    const auto [rh, rw] = clip_resize_hw(scene.height, scene.width, side);
    return {side / clip.patch_size, clip.patch_size, rh, rw, (rh - side) / 2, (rw - side) / 2};
}

// SAM's view: ResizeLongestSide(img_size) at the top left, padded right and below.
GridView sam_view(const synth::SceneAnnotation& scene, const SamConfig& sam) {
    const auto [rh, rw] = sam_resize_hw(scene.height, scene.width, sam.img_size);
    return {sam.img_size / sam.patch_size, sam.patch_size, rh, rw, 0, 0};
}

int64_t cells(const GridView& view) {
    return view.grid * view.grid;
}

} // namespace

at::Tensor patch_labels(const synth::SceneAnnotation& scene, const ClipVisionConfig& clip) {
    const GridView view = clip_view(scene, clip);
    return grid_labels(scene, cell_votes(scene, pixel_owners(scene), view), cells(view));
}

ObjectViews object_views(const synth::SceneAnnotation& scene, const ClipVisionConfig& clip) {
    const GridView view = clip_view(scene, clip);
    return objects_in(scene, cell_votes(scene, pixel_owners(scene), view), cells(view));
}

at::Tensor sam_patch_labels(const synth::SceneAnnotation& scene, const SamConfig& sam) {
    const GridView view = sam_view(scene, sam);
    return grid_labels(scene, cell_votes(scene, pixel_owners(scene), view), cells(view));
}

SceneTargets scene_targets(const synth::SceneAnnotation& scene, const ClipVisionConfig& clip,
                           const SamConfig& sam, const LossWeights& weights) {
    SceneTargets out;
    const bool tower = weights.patch > 0 || weights.object > 0;
    if (!tower && !(weights.sam_patch > 0)) return out;
    const PixelOwners owners = pixel_owners(scene);
    if (tower) {
        const GridView view   = clip_view(scene, clip);
        const CellVotes votes = cell_votes(scene, owners, view);
        if (weights.patch > 0) out.patch_labels = grid_labels(scene, votes, cells(view));
        if (weights.object > 0) out.objects = objects_in(scene, votes, cells(view));
    }
    if (weights.sam_patch > 0) {
        const GridView view  = sam_view(scene, sam);
        out.sam_patch_labels = grid_labels(scene, cell_votes(scene, owners, view), cells(view));
    }
    return out;
}

TrainConfig parse_train_config(const std::string& json_text, const std::string& where) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(json_text);
    } catch (const std::exception& e) {
        fail(where, ": not valid JSON: ", e.what());
    }
    auto section = [&](const char* key) -> const nlohmann::json& {
        if (!j.contains(key) || !j[key].is_object())
            fail(where, ": \"", key, "\" (an object) is required");
        return j[key];
    };
    auto number = [&](const nlohmann::json& obj, const char* section_name, const char* key,
                      double low) {
        if (!obj.contains(key) || !obj[key].is_number())
            fail(where, ": ", section_name, ".", key, " (a number) is required");
        const double v = obj[key].get<double>();
        if (!(v >= low))
            fail(where, ": ", section_name, ".", key, " must be at least ", low, ", got ", v);
        return v;
    };
    TrainConfig c;
    c.model        = section("model");
    c.vision_tower = section("vision_tower");
    // Validate the widths the way loading will (messages name the recipe).
    const GlammConfig glamm = parse_glamm_config(c.model.dump(), where + " (model)");
    const ClipVisionConfig tower =
        parse_clip_vision_config(c.vision_tower.dump(), where + " (vision_tower)");
    // Region boxes are normalised, times box_scale, on a tower grid of image_size pixels: a
    // larger scale puts boxes off the grid, where RoIAlign reads zeros (GLaMM's 224 on 336 only
    // uses two thirds of it; a model trained here should use all of it).
    if (glamm.with_region && glamm.region_encoder.box_scale > double(tower.image_size))
        fail(where, ": model.region_encoder.box_scale (", glamm.region_encoder.box_scale,
             c.model.contains("region_encoder") && c.model["region_encoder"].contains("box_scale")
                 ? ""
                 : ", the default",
             ") exceeds vision_tower.image_size (", tower.image_size,
             "): the boxes would fall off the tower's grid");

    const auto& tokenizer = section("tokenizer");
    c.tokenizer_vocab     = static_cast<int64_t>(number(tokenizer, "tokenizer", "vocab_size", 8));
    c.tokenizer_corpus = static_cast<int64_t>(number(tokenizer, "tokenizer", "corpus_scenes", 1));

    const auto& data = section("data");
    c.data.seed      = static_cast<uint64_t>(number(data, "data", "seed", 0));
    c.data.count     = static_cast<int64_t>(number(data, "data", "count", 1));
    c.data.min_size  = static_cast<int64_t>(number(data, "data", "min_size", 16));
    c.data.max_size =
        static_cast<int64_t>(number(data, "data", "max_size", double(c.data.min_size)));
    if (data.contains("min_objects")) {
        c.data.min_objects = static_cast<int64_t>(number(data, "data", "min_objects", 1));
        if (c.data.min_objects > synth::kMaxObjects)
            fail(where, ": data.min_objects must be at most ", synth::kMaxObjects,
                 " (the generator's most objects a scene), got ", c.data.min_objects);
    }
    if (data.contains("min_objects_share")) {
        c.data.min_objects_share = number(data, "data", "min_objects_share", 0);
        if (c.data.min_objects_share > 1.0)
            fail(where, ": data.min_objects_share must be at most 1 (every scene), got ",
                 c.data.min_objects_share);
    }

    const auto& opt     = section("optimizer");
    c.steps             = static_cast<int64_t>(number(opt, "optimizer", "steps", 1));
    c.batch_size        = static_cast<int64_t>(number(opt, "optimizer", "batch_size", 1));
    c.learning_rate     = number(opt, "optimizer", "learning_rate", 0);
    c.min_learning_rate = number(opt, "optimizer", "min_learning_rate", 0);
    c.warmup_steps      = static_cast<int64_t>(number(opt, "optimizer", "warmup_steps", 1));
    c.weight_decay      = number(opt, "optimizer", "weight_decay", 0);
    c.grad_clip         = number(opt, "optimizer", "grad_clip", 0);
    c.checkpoint_every  = static_cast<int64_t>(number(j, "recipe", "checkpoint_every", 1));
    c.log_every         = static_cast<int64_t>(number(j, "recipe", "log_every", 1));
    c.seed              = static_cast<uint64_t>(number(j, "recipe", "seed", 0));
    if (j.contains("loss")) {
        const auto& l = j["loss"];
        // The weights of the losses that are not GLaMM's are optional (0: off).
        auto optional = [&](const char* key) {
            return l.contains(key) ? number(l, "loss", key, 0) : 0.0;
        };
        c.loss = {number(l, "loss", "ce", 0),
                  number(l, "loss", "dice", 0),
                  number(l, "loss", "bce", 0),
                  optional("patch"),
                  optional("sam_patch"),
                  optional("region"),
                  optional("seg"),
                  optional("object")};
    }
    if (j.contains("tasks")) {
        const auto& t = j["tasks"];
        c.tasks       = {number(t, "tasks", "gcg", 0), number(t, "tasks", "refseg", 0),
                         number(t, "tasks", "regcap", 0), number(t, "tasks", "caption", 0)};
        if (c.tasks.gcg + c.tasks.refseg + c.tasks.regcap + c.tasks.caption <= 0)
            fail(where, ": tasks: at least one weight must be positive");
    }
    if (j.contains("device")) c.device = j["device"].get<std::string>();
    if (j.contains("threads")) c.threads = j["threads"].get<int>();
    if (j.contains("init")) c.init = j["init"].get<std::string>();
    if (j.contains("init_heads")) c.init_heads = j["init_heads"].get<std::string>();
    if (j.contains("tower_only")) {
        if (!j["tower_only"].is_boolean()) fail(where, ": tower_only must be true or false");
        c.tower_only = j["tower_only"].get<bool>();
        if (c.tower_only && !(c.loss.patch > 0) && !(c.loss.object > 0))
            fail(where, ": tower_only trains the tower on loss.patch and loss.object; give one of "
                        "them a positive weight");
    }
    if (j.contains("region_image_dropout")) {
        c.region_image_dropout = number(j, "recipe", "region_image_dropout", 0);
        if (c.region_image_dropout > 1)
            fail(where, ": region_image_dropout is a share of samples, at most 1, got ",
                 c.region_image_dropout);
    }
    if (j.contains("regcap_turns")) {
        if (!j["regcap_turns"].is_number_integer() || j["regcap_turns"].get<int64_t>() < 1)
            fail(where, ": regcap_turns is the number of boxes a region caption sample asks "
                        "about, an integer of at least 1");
        c.regcap_turns = j["regcap_turns"].get<int64_t>();
    }
    if (j.contains("regions_only")) {
        if (!j["regions_only"].is_boolean()) fail(where, ": regions_only must be true or false");
        c.regions_only = j["regions_only"].get<bool>();
        if (c.regions_only && !(c.loss.region > 0))
            fail(where, ": regions_only trains the region encoder on loss.region; give it a "
                        "positive weight");
        if (c.regions_only && c.tower_only)
            fail(where, ": tower_only and regions_only exclude each other");
    }
    auto names = [&](const char* key) {
        std::vector<std::string> out;
        const auto& list = j[key];
        if (!list.is_array()) fail(where, ": ", key, " must be a list of component names");
        for (const auto& name : list) {
            if (!name.is_string()) fail(where, ": ", key, " must be a list of component names");
            out.push_back(name.get<std::string>());
        }
        return out;
    };
    auto lists = [](const std::vector<std::string>& list, const char* name) {
        return std::find(list.begin(), list.end(), name) != list.end();
    };
    if (j.contains("frozen")) {
        c.frozen = names("frozen");
        check_component_names(glamm, c.frozen, "frozen");
        if (c.tower_only && lists(c.frozen, "clip_vision"))
            fail(where, ": tower_only trains the vision tower, which frozen keeps as it is");
        if (c.regions_only && lists(c.frozen, "region_encoder"))
            fail(where, ": regions_only trains the region encoder, which frozen keeps as it is");
    }
    if (j.contains("reinitialise")) {
        c.reinitialise = names("reinitialise");
        check_component_names(glamm, c.reinitialise, "reinitialise");
        if (c.init.empty())
            fail(where, ": reinitialise names components to start afresh in a stage with an init; "
                        "this recipe has none (everything starts afresh)");
        for (const std::string& name : c.reinitialise)
            if (lists(c.frozen, name.c_str()))
                fail(where, ": \"", name, "\" is both frozen and reinitialised");
    }
    return c;
}

namespace {

// A recipe file's JSON with its "base" chain resolved: the base (a path relative to the recipe's
// folder, itself possibly with a base) is read first and this recipe merged over it as an
// RFC 7386 merge patch (objects merge key by key, other values replace, null removes a key).
// `chain` holds the files being read, outermost first, to refuse a loop.
nlohmann::json read_recipe_json(const fs::path& path, std::vector<fs::path>& chain) {
    std::ifstream in(path);
    if (!in) {
        if (chain.empty()) fail("cannot open the training recipe ", path.string());
        fail(chain.back().string(), ": cannot open its base recipe ", path.string());
    }
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(ss.str());
    } catch (const std::exception& e) {
        fail(path.string(), ": not valid JSON: ", e.what());
    }
    if (!j.is_object()) fail(path.string(), ": a recipe is a JSON object");
    if (!j.contains("base")) return j;
    if (!j["base"].is_string())
        fail(path.string(), ": base names the recipe this one changes (a path relative to it)");
    const fs::path base = path.parent_path() / j["base"].get<std::string>();
    const fs::path self = fs::weakly_canonical(path);
    for (const fs::path& p : chain)
        if (fs::weakly_canonical(p) == self)
            fail(path.string(), ": its base recipes loop back to it");
    chain.push_back(path);
    nlohmann::json merged = read_recipe_json(base, chain);
    chain.pop_back();
    j.erase("base");
    merged.merge_patch(j);
    return merged;
}

} // namespace

std::string resolve_recipe(const std::string& path) {
    std::vector<fs::path> chain;
    return read_recipe_json(path, chain).dump(2);
}

TrainConfig load_train_config(const std::string& path) {
    return parse_train_config(resolve_recipe(path), path);
}

std::string tokenizer_corpus(const synth::SynthOptions& data, int64_t count) {
    std::ostringstream os;
    os << Conversation(true).prompt() << "\n";
    os << build_instruction(TaskPreset::GroundedCaption, "", 0, true) << "\n"
       << build_instruction(TaskPreset::GroundedCaption, "", 0, false) << "\n"
       << build_instruction(TaskPreset::RegionCaption, "", 1) << "\n"
       << build_instruction(TaskPreset::ImageCaption, "") << "\n"
       << kRefsegAnswer << "\n";
    for (int64_t i = 0; i < count; ++i) {
        auto [ann, image] = training_scene(data, i);
        os << synth::strip_gcg_markup(ann.gcg_caption) << "\n" << ann.caption << "\n";
        for (const auto& r : ann.referring)
            os << build_instruction(TaskPreset::ReferringSegmentation, r.text) << "\n";
        for (const auto& r : ann.regions) os << r.text << "\n";
    }
    return os.str();
}

ConversationIds conversation_ids(const Tokenizer& tokenizer, bool mm_use_im_start_end,
                                 const std::vector<Turn>& turns) {
    if (turns.empty()) fail("a training conversation needs at least one turn");
    Conversation conversation(mm_use_im_start_end);
    ConversationIds out;
    for (size_t k = 0; k < turns.size(); ++k) {
        // The prompt up to this turn's "ASSISTANT:", as the chat has it: the earlier turns' ids
        // must be its beginning, else their targets would not be what the model reads.
        conversation.add_user(turns[k].instruction);
        std::vector<int64_t> prompt = tokenizer.encode_with_image(conversation.prompt());
        if (prompt.size() < out.ids.size() ||
            !std::equal(out.ids.begin(), out.ids.end(), prompt.begin()))
            fail("turn ", k + 1, " of a training conversation changes how answer ", k, " (\"",
                 turns[k - 1].answer, "\") and the turns before it tokenise");
        out.ids           = std::move(prompt);
        const auto begin  = static_cast<int64_t>(out.ids.size());
        const auto answer = tokenizer.encode(turns[k].answer, /*add_bos=*/false);
        out.ids.insert(out.ids.end(), answer.begin(), answer.end());
        out.ids.push_back(tokenizer.eos_id());
        out.answers.emplace_back(begin, static_cast<int64_t>(out.ids.size()));
        conversation.add_assistant(turns[k].answer);
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Training loop

void train(const TrainConfig& config, const std::string& out_dir, bool resume,
           const TrainCallbacks& callbacks, int64_t max_steps) {
    auto message = [&](const std::string& text) {
        if (callbacks.on_message) callbacks.on_message(text);
    };
    // The component lists of a recipe made in code (load_train_config checked a file's).
    const GlammConfig glamm = parse_glamm_config(config.model.dump(), "recipe model");
    check_component_names(glamm, config.frozen, "frozen");
    check_component_names(glamm, config.reinitialise, "reinitialise");
    if (!config.init_heads.empty() && config.init.empty())
        fail("init_heads (", config.init_heads,
             ") gives the heads of a stage's init; there is no init");
    const Paths paths(out_dir);
    fs::create_directories(paths.out);
    nlohmann::json recipe = {
        {"model", config.model},
        {"vision_tower", config.vision_tower},
        {"tokenizer_vocab", config.tokenizer_vocab},
        {"tokenizer_corpus", config.tokenizer_corpus},
        {"data", {config.data.seed, config.data.count, config.data.min_size, config.data.max_size}},
        {"seed", config.seed},
        {"steps", config.steps},
        {"batch_size", config.batch_size}};
    if (!config.init.empty()) recipe["init"] = config.init;
    if (!config.init_heads.empty()) recipe["init_heads"] = config.init_heads;
    // Only when set, so that runs started before the key existed still resume.
    if (config.data.min_objects != 1) recipe["data_min_objects"] = config.data.min_objects;
    if (config.data.min_objects_share != 1.0)
        recipe["data_min_objects_share"] = config.data.min_objects_share;
    // Heads to resume.
    if (config.loss.patch > 0) recipe["patch_loss"] = config.loss.patch;
    if (config.loss.sam_patch > 0) recipe["sam_patch_loss"] = config.loss.sam_patch;
    if (config.loss.region > 0) recipe["region_loss"] = config.loss.region;
    if (config.loss.object > 0) recipe["object_loss"] = config.loss.object;
    if (config.tower_only) recipe["tower_only"] = true;
    if (config.regions_only) recipe["regions_only"] = true;
    if (config.region_image_dropout > 0)
        recipe["region_image_dropout"] = config.region_image_dropout;
    if (config.regcap_turns != 1) recipe["regcap_turns"] = config.regcap_turns;
    if (!config.frozen.empty()) recipe["frozen"] = config.frozen;
    if (!config.reinitialise.empty()) recipe["reinitialise"] = config.reinitialise;
    // The schedule, GLaMM's loss weights and the task mix: a resume with other ones would not be
    // the run that started (nor bit-identical to it).
    recipe["training"] = {
        {"learning_rate", config.learning_rate},
        {"min_learning_rate", config.min_learning_rate},
        {"warmup_steps", config.warmup_steps},
        {"weight_decay", config.weight_decay},
        {"grad_clip", config.grad_clip},
        {"loss", {config.loss.ce, config.loss.bce, config.loss.dice, config.loss.seg}},
        {"tasks",
         {config.tasks.gcg, config.tasks.refseg, config.tasks.regcap, config.tasks.caption}}};
    const int64_t start_checkpoint = resume ? newest_checkpoint(paths) : -1;
    // The init is read when the run starts (and for its tokenizer should a resumed run lack one).
    std::optional<InitFolder> init;
    if (!config.init.empty() &&
        (start_checkpoint < 0 || !fs::exists(paths.glamm / "tokenizer.model")))
        init = resolve_init(config.init);
    // Refused before anything is written, as a bad init is.
    if (init && start_checkpoint < 0 && !config.init_heads.empty() &&
        !fs::is_directory(config.init_heads))
        fail("the init_heads folder ", config.init_heads, " does not exist");
    if (start_checkpoint >= 0) {
        const nlohmann::json saved =
            nlohmann::json::parse(read_file(paths.recipe.string()), nullptr, false);
        nlohmann::json compared = recipe;
        // A run started before "training" was recorded is compared on what it recorded.
        if (saved.is_object() && !saved.contains("training")) compared.erase("training");
        if (saved != compared) {
            std::string differ;
            for (const auto& item : compared.items())
                if (!saved.is_object() || !saved.contains(item.key()) ||
                    saved[item.key()] != item.value())
                    differ += (differ.empty() ? "" : ", ") + item.key();
            if (saved.is_object())
                for (const auto& item : saved.items())
                    if (!compared.contains(item.key()))
                        differ += (differ.empty() ? "" : ", ") + item.key();
            fail(paths.recipe.string(), " differs from this recipe (", differ,
                 "): resume with the recipe that started the run, or train into a new folder");
        }
    } else {
        if (fs::exists(paths.checkpoints))
            fail(out_dir, " already holds a training run; pass --resume to continue it or choose "
                          "another folder");
        write_text(paths.recipe, recipe.dump(2));
    }
    set_threads(config.threads);
    // Every step reaches the same peak again: freed blocks stay in the heap for the next step
    // instead of being faulted in afresh (3x faster steps on this project's VM,
    // docs/benchmarks.md).
    keep_freed_memory(FreedMemory::kept);
    torch::manual_seed(config.seed);

    // Tokenizer (once per run).
    fs::create_directories(paths.glamm);
    if (!fs::exists(paths.glamm / "tokenizer.model") && init) {
        // Starting from trained weights: their tokenizer, whose ids the embeddings were learned on.
        message(cat("using the tokenizer ", init->tokenizer.string()));
        fs::copy_file(init->tokenizer, paths.glamm / "tokenizer.model");
    }
    if (!fs::exists(paths.glamm / "tokenizer.model")) {
        message(cat("training the tokenizer on the text of ", config.tokenizer_corpus, " scenes"));
        train_tokenizer(config, paths.glamm, paths.out);
    }

    // The model, built the way GlammModel::load builds it.
    auto model       = std::make_unique<GlammModel>();
    model->model_dir = paths.glamm.string();
    model->device    = parse_device(config.device);
    model->dtype     = at::kFloat;
    model->config    = parse_glamm_config(config.model.dump(), "recipe model");
    model->clip_config =
        parse_clip_vision_config(config.vision_tower.dump(), "recipe vision_tower");
    // The added tokens go right after the pieces sentencepiece ended up with (its vocabulary
    // may be smaller than asked for on a closed corpus).
    if (!fs::exists(paths.glamm / "added_tokens.json")) {
        write_text(paths.glamm / "added_tokens.json", "{}");
        write_text(paths.glamm / "special_tokens_map.json", "{}");
    }
    write_tokenizer_files(paths.glamm, Tokenizer::load(paths.glamm.string()).sp_vocab_size());
    model->tokenizer = Tokenizer::load(paths.glamm.string()); // now with the added tokens
    model->config.llama.vocab_size = model->tokenizer->vocab_size();
    model->clip_selection          = clip_selection_for(model->config, model->clip_config);
    model->build_components();
    initialise(*model);
    if (init && start_checkpoint < 0) {
        message(cat("starting from the weights in ", init->dir.string()));
        const auto fresh = snapshot_components(*model, config.reinitialise);
        load_weights(*model, init->dir);
        restore_components(*model, fresh);
        for (const std::string& name : config.reinitialise) message(cat(name, " starts afresh"));
    }
    for (const ComponentRef& ref : model->component_refs()) ref.module->to(model->device);

    std::vector<at::Tensor> params = trainable_parameters(*model, config.frozen);
    AuxHeads heads(*model, config.loss);
    for (const auto& [head, file] : heads.files())
        for (const at::Tensor& p : (*head)->parameters()) params.push_back(p);
    if (init && start_checkpoint < 0) {
        // A checkpoint folder as the init also holds the training-only heads, or init_heads does:
        // taking them saves the stage the first ~100 steps in which fresh heads send large
        // gradients into the trunk (stage 12u lost 12 points of region captions to a fresh one).
        const fs::path heads_dir =
            config.init_heads.empty() ? init->dir : fs::path(config.init_heads);
        for (const auto& [head, file] : heads.files()) {
            const fs::path path = heads_dir / file;
            if (fs::exists(path)) {
                load_archive(*head, path, model->device);
                message(cat("head ", file, " from ", heads_dir.string()));
            } else if (!config.init_heads.empty()) {
                message(cat("head ", file, " starts afresh (not in ", heads_dir.string(), ")"));
            }
        }
    }
    torch::optim::AdamW optimizer(
        params, torch::optim::AdamWOptions(config.learning_rate).weight_decay(config.weight_decay));
    int64_t step = 0;
    if (start_checkpoint >= 0) {
        message(cat("resuming from step ", start_checkpoint));
        load_checkpoint(*model, optimizer, heads, checkpoint_dir(paths, start_checkpoint));
        step = start_checkpoint;
    }
    int64_t params_total = 0;
    for (const auto& p : params) params_total += p.numel();
    message(cat("model: ", params_total, " parameters, vocabulary ", model->config.llama.vocab_size,
                ", ", model->num_image_tokens(), " image tokens"));

    std::vector<std::string> rows = read_csv_rows(paths.csv, step);
    auto flush_logs               = [&] {
        std::string csv = std::string(kCsvHeader) + "\n";
        for (const auto& r : rows) csv += r + "\n";
        write_text(paths.csv, csv);
        write_text(paths.svg, loss_svg(rows));
    };

    set_training(*model, true);
    int64_t skipped_in_a_row = 0;
    const int64_t end = max_steps > 0 ? std::min(config.steps, step + max_steps) : config.steps;
    // On a GPU the next batch is made on the CPU while the current step runs; on the CPU the
    // cores are the step's, so batches are made in turn.
    const bool prefetch = config.prefetch < 0 ? model->device.is_cuda() : config.prefetch > 0;
    auto make_batch     = [&](int64_t s) { return prepare_batch(config, *model, s); };
    std::future<std::vector<PreparedSample>> next;
    if (prefetch && step < end) next = std::async(std::launch::async, make_batch, step);
    int64_t saved_step = step;
    auto save          = [&] {
        set_training(*model, false);
        save_checkpoint(*model, optimizer, heads, paths, step);
        write_release(*model, config, paths);
        set_training(*model, true);
        saved_step = step;
        message(cat("checkpoint at step ", step));
    };
    while (step < end) {
        if (callbacks.should_stop && callbacks.should_stop()) {
            message(cat("stopped at step ", step));
            break;
        }
        const auto t0                           = std::chrono::steady_clock::now();
        const std::vector<PreparedSample> batch = prefetch ? next.get() : make_batch(step);
        const double data_seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (prefetch && step + 1 < end) next = std::async(std::launch::async, make_batch, step + 1);
        const double lr = learning_rate_at(config, step);
        for (auto& group : optimizer.param_groups())
            static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
        optimizer.zero_grad();
        BatchLoss loss = batch_loss(*model, batch, config.loss, heads, step_scope(config));
        // A tower-only batch can hold nothing to learn from (only an object loss, and the centre
        // crops cut every object away): then no gradient, and AdamW leaves the weights alone.
        if (loss.total.requires_grad()) loss.total.backward();
        // The global gradient norm (clipped to grad_clip when set) is one number to check: a step
        // whose gradients are not finite is skipped (as a loss scaler would), a run of them ends
        // the training with the parameters named.
        const double norm = torch::nn::utils::clip_grad_norm_(
            params,
            config.grad_clip > 0 ? config.grad_clip : std::numeric_limits<double>::infinity());
        if (!std::isfinite(norm)) {
            const std::string bad = nonfinite_gradients(*model);
            if (++skipped_in_a_row > kMaxSkippedSteps)
                fail("gradients are not finite for ", skipped_in_a_row, " steps in a row at step ",
                     step + 1, " (loss ", loss.total.item<double>(), "): ", bad);
            message(cat("step ", step + 1, ": gradients not finite (", bad, "), step skipped"));
            optimizer.zero_grad();
        } else {
            skipped_in_a_row = 0;
            optimizer.step();
        }
        ++step;

        StepLog log;
        log.step          = step;
        log.learning_rate = lr;
        log.loss          = loss.total.item<double>();
        log.ce            = loss.ce;
        log.bce           = loss.bce;
        log.dice          = loss.dice;
        log.patch         = loss.patch;
        log.sam_patch     = loss.sam_patch;
        log.region        = loss.region;
        log.seg           = loss.seg;
        log.object        = loss.object;
        log.masks         = loss.masks;
        log.tokens        = loss.tokens;
        log.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        log.data_seconds = data_seconds;
        if (!std::isfinite(log.loss)) fail("the loss is not finite at step ", step);
        rows.push_back(csv_row(log));
        if (callbacks.on_step) callbacks.on_step(log);
        if (step % config.log_every == 0) flush_logs();
        if (step % config.checkpoint_every == 0 || step == end) save();
    }
    if (step != saved_step) save(); // stopped between checkpoints: keep what was learned
    flush_logs();
    set_training(*model, false);
}

} // namespace glamm::train
