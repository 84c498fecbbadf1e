// glamm::train on a tiny recipe (tests/data/train/tiny-recipe.json: widths 16-32, 4 steps of 2
// scenes, one thread): the release it writes loads strictly and answers; training is
// deterministic and a resumed run ends bit-identical to an uninterrupted one; misuse is refused.
#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "io/rle.h"
#include "model/glamm_model.h"
#include "session.h"
#include "support/test_support.h"
#include "text/conversation.h"
#include "text/tokenizer.h"
#include "train/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

namespace fs = std::filesystem;
using namespace glamm;

namespace {

// The training-only heads' files in a checkpoint (train::AuxHeads).
constexpr const char* kHeadFiles[] = {"patch_head.pt", "sam_patch_head.pt", "region_head.pt",
                                      "seg_head.pt", "object_head.pt"};

train::TrainConfig tiny_recipe() {
    return train::load_train_config(test::data_path("train/tiny-recipe.json"));
}

// A finished run of the tiny recipe, trained once per test process: the init of the stage tests.
const std::string& tiny_base_run() {
    static const std::string dir = [] {
        const std::string out = test::make_temp_dir("train-tiny-base");
        train::train(tiny_recipe(), out, false);
        return out;
    }();
    return dir;
}

// Every tensor of two safetensors files, compared bit for bit.
void expect_same_weights(const std::string& a_dir, const std::string& b_dir) {
    const Checkpoint a = Checkpoint::open(a_dir), b = Checkpoint::open(b_dir);
    ASSERT_EQ(a.names(), b.names());
    for (const auto& key : a.names())
        EXPECT_TRUE(torch::equal(a.tensor(key), b.tensor(key))) << key;
}

// Trains `recipe` into `out` and returns every step's log.
std::vector<train::StepLog> train_logged(const train::TrainConfig& recipe, const std::string& out) {
    std::vector<train::StepLog> logs;
    train::TrainCallbacks callbacks;
    callbacks.on_step = [&](const train::StepLog& s) { logs.push_back(s); };
    train::train(recipe, out, false, callbacks);
    return logs;
}

int csv_rows(const fs::path& csv) {
    std::ifstream in(csv);
    std::string line;
    int rows = 0;
    while (std::getline(in, line)) rows += !line.empty() && std::isdigit(line[0]);
    return rows;
}

// A scene of one object, a red square (colour index 0), given by its visible mask x0..x1, y0..y1.
synth::SceneAnnotation scene_with_box(int64_t width, int64_t height, int64_t x0, int64_t y0,
                                      int64_t x1, int64_t y1) {
    synth::SceneAnnotation scene;
    scene.width  = width;
    scene.height = height;
    std::vector<uint8_t> mask(static_cast<size_t>(width * height), 0);
    for (int64_t y = y0; y < y1; ++y)
        for (int64_t x = x0; x < x1; ++x) mask[static_cast<size_t>(y * width + x)] = 1;
    synth::ObjectInfo o;
    o.object.shape  = synth::Shape::Square;
    o.object.colour = 0;
    o.mask          = rle_encode(mask.data(), height, width);
    scene.objects.push_back(o);
    return scene;
}

// Labels of a 4 x 4 grid: the red square's classes on `covered`, background elsewhere.
void expect_cells(const at::Tensor& labels, const std::set<int64_t>& covered) {
    const int64_t square = 1 + static_cast<int64_t>(synth::Shape::Square), red = 1;
    ASSERT_EQ(labels.sizes(), (std::vector<int64_t>{2, 16}));
    for (int64_t k = 0; k < 16; ++k) {
        const bool in = covered.count(k) > 0;
        EXPECT_EQ(labels[0][k].item<int64_t>(), in ? square : 0) << "cell " << k;
        EXPECT_EQ(labels[1][k].item<int64_t>(), in ? red : 0) << "cell " << k;
    }
}

} // namespace

TEST(Trainer, WritesALoadableReleaseAndResumesBitIdentically) {
    const train::TrainConfig recipe = tiny_recipe();
    const std::string straight      = test::make_temp_dir("train-straight");
    const std::string resumed       = test::make_temp_dir("train-resumed");

    train::train(recipe, straight, false);
    // The same run in two sittings: 2 steps (a checkpoint), then --resume for the rest.
    train::train(recipe, resumed, false, {}, 2);
    EXPECT_EQ(csv_rows(fs::path(resumed) / "loss.csv"), 2);
    train::train(recipe, resumed, true);

    EXPECT_EQ(csv_rows(fs::path(straight) / "loss.csv"), recipe.steps);
    EXPECT_EQ(csv_rows(fs::path(resumed) / "loss.csv"), recipe.steps);
    expect_same_weights(straight + "/glamm", resumed + "/glamm");
    expect_same_weights(straight + "/clip", resumed + "/clip");
    EXPECT_TRUE(fs::exists(fs::path(straight) / "loss.svg"));
    EXPECT_TRUE(fs::exists(fs::path(straight) / "checkpoints" / "step-4" / "optimizer.pt"));

    // The release is what the engine loads (strictly), with GLaMM's seven added tokens after
    // the trained sentencepiece vocabulary, and it answers a question about an image.
    ModelOptions options;
    options.model_dir    = straight + "/glamm";
    auto model           = GlammModel::load(options);
    const Tokenizer& tok = *model->tokenizer;
    EXPECT_EQ(tok.vocab_size(), tok.sp_vocab_size() + 7);
    EXPECT_EQ(tok.seg_id(), tok.sp_vocab_size() + 4);
    EXPECT_EQ(model->config.llama.vocab_size, tok.vocab_size());
    EXPECT_EQ(model->num_image_tokens(), 16); // 56 / 14 squared
    // Scene text encodes without <unk> and decodes back.
    const std::vector<int64_t> ids = tok.encode("a large striped red circle", false);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.unk_id()), 0);
    EXPECT_EQ(tok.decode(ids), "a large striped red circle");
}

TEST(Trainer, AStopBetweenCheckpointsKeepsTheStepsAndResumesBitIdentically) {
    // Checkpoints every 2 steps; a stop (Ctrl-C, --time-limit) after step 3 writes step-3 and the
    // release there, and resuming finishes exactly as a run that never stopped.
    const train::TrainConfig recipe = tiny_recipe();
    const std::string straight      = test::make_temp_dir("train-nostop");
    const std::string stopped       = test::make_temp_dir("train-stopped");
    train::train(recipe, straight, false);

    int steps_done = 0;
    train::TrainCallbacks stop_after_three;
    stop_after_three.on_step     = [&](const train::StepLog&) { ++steps_done; };
    stop_after_three.should_stop = [&] { return steps_done == 3; };
    train::train(recipe, stopped, false, stop_after_three);
    EXPECT_EQ(steps_done, 3);
    EXPECT_TRUE(fs::exists(fs::path(stopped) / "checkpoints" / "step-3" / "state.json"));
    EXPECT_TRUE(fs::exists(fs::path(stopped) / "glamm" / "config.json"));
    EXPECT_EQ(csv_rows(fs::path(stopped) / "loss.csv"), 3);

    train::train(recipe, stopped, true);
    EXPECT_EQ(csv_rows(fs::path(stopped) / "loss.csv"), recipe.steps);
    expect_same_weights(straight + "/glamm", stopped + "/glamm");
}

TEST(Trainer, PrefetchingBatchesChangesNothing) {
    // Batches made ahead on another thread (as on a GPU) are the batches made in turn: the same
    // weights bit for bit after the whole run.
    train::TrainConfig in_turn = tiny_recipe(), ahead = tiny_recipe();
    in_turn.prefetch    = 0;
    ahead.prefetch      = 1;
    const std::string a = test::make_temp_dir("train-inturn"),
                      b = test::make_temp_dir("train-ahead");
    train::train(in_turn, a, false);
    train::train(ahead, b, false);
    expect_same_weights(a + "/glamm", b + "/glamm");
    expect_same_weights(a + "/clip", b + "/clip");
}

TEST(Trainer, ASecondStageStartsFromTrainedWeightsAndTheirTokenizer) {
    // Stage 1: 12 steps from scratch. Stage 2 (--init stage 1): its first step sees the trained
    // weights (loss near stage 1's end, far below a fresh model's first step) and keeps stage 1's
    // tokenizer byte for byte; the recipe records where it started.
    train::TrainConfig first = tiny_recipe();
    first.steps              = 12;
    first.checkpoint_every   = 12;
    first.learning_rate      = 3e-3;
    const std::string a      = test::make_temp_dir("train-stage1"),
                      b      = test::make_temp_dir("train-stage2");
    std::vector<double> first_losses, second_losses;
    train::TrainCallbacks on_first, on_second;
    on_first.on_step  = [&](const train::StepLog& s) { first_losses.push_back(s.loss); };
    on_second.on_step = [&](const train::StepLog& s) { second_losses.push_back(s.loss); };
    train::train(first, a, false, on_first);

    train::TrainConfig second = tiny_recipe();
    second.init               = a;
    second.data.seed          = first.data.seed + 1; // new scenes
    train::train(second, b, false, on_second);
    ASSERT_EQ(second_losses.size(), static_cast<size_t>(second.steps));
    std::printf("fresh first step %.4f, stage 1 last %.4f, stage 2 first %.4f\n", first_losses[0],
                first_losses.back(), second_losses[0]);
    EXPECT_LT(second_losses[0], first_losses[0] - 0.5);
    EXPECT_EQ(read_file(a + "/glamm/tokenizer.model"), read_file(b + "/glamm/tokenizer.model"));
    EXPECT_NE(read_file(b + "/recipe.json").find(a), std::string::npos);
}

TEST(Trainer, LossFallsOnAFixedBatchSchedule) {
    // Twelve steps on the tiny model: the mean loss of the last four is below the first four
    // (the model learns the answer templates first). Deterministic: the numbers are printed.
    train::TrainConfig recipe = tiny_recipe();
    recipe.steps              = 12;
    recipe.checkpoint_every   = 12;
    recipe.learning_rate      = 3e-3;
    const std::string out     = test::make_temp_dir("train-loss");
    std::vector<double> losses;
    train::TrainCallbacks callbacks;
    callbacks.on_step = [&](const train::StepLog& s) { losses.push_back(s.loss); };
    train::train(recipe, out, false, callbacks);
    ASSERT_EQ(losses.size(), 12u);
    double first = 0, last = 0;
    for (int i = 0; i < 4; ++i) first += losses[i] / 4, last += losses[8 + i] / 4;
    std::printf("mean loss, steps 1-4: %.4f, steps 9-12: %.4f\n", first, last);
    EXPECT_LT(last, first);
}

TEST(Trainer, RefusesMisuse) {
    const train::TrainConfig recipe = tiny_recipe();
    const std::string out           = test::make_temp_dir("train-misuse");
    train::train(recipe, out, false, {}, 2);
    // Training again into a run without --resume would overwrite it.
    test::expect_error([&] { train::train(recipe, out, false); }, "--resume");
    // Resuming with another recipe is refused.
    train::TrainConfig other = recipe;
    other.batch_size         = 3;
    test::expect_error([&] { train::train(other, out, true); }, "differs from this recipe");
    // data.min_objects is part of the run's identity, written only when set (so that runs from
    // before the key resume): this run's recipe.json lacks it, and resuming with it is refused.
    const nlohmann::json saved =
        nlohmann::json::parse(std::ifstream(fs::path(out) / "recipe.json"));
    EXPECT_FALSE(saved.contains("data_min_objects"));
    train::TrainConfig crowded = recipe;
    crowded.data.min_objects   = 3;
    test::expect_error([&] { train::train(crowded, out, true); }, "differs from this recipe");
    EXPECT_FALSE(saved.contains("data_min_objects_share"));
    train::TrainConfig mixed     = recipe;
    mixed.data.min_objects_share = 0.3;
    test::expect_error([&] { train::train(mixed, out, true); }, "differs from this recipe");
    // So are the schedule, GLaMM's loss weights and the task mix (recorded under "training"),
    // and the message names what differs.
    ASSERT_TRUE(saved.contains("training"));
    train::TrainConfig faster = recipe;
    faster.learning_rate *= 2;
    test::expect_error([&] { train::train(faster, out, true); },
                       "differs from this recipe (training)");
    train::TrainConfig mix = recipe;
    mix.tasks.gcg += 0.1;
    test::expect_error([&] { train::train(mix, out, true); }, "(training)");
    // A damaged optimiser file in the checkpoint is named, not thrown as LibTorch's error.
    const fs::path optimizer = fs::path(out) / "checkpoints" / "step-2" / "optimizer.pt";
    write_file_atomic(optimizer.string(), "not an archive");
    test::expect_error([&] { train::train(recipe, out, true); },
                       "cannot read " + optimizer.string());
    // A run recorded before "training" existed is compared on what it recorded: it gets past the
    // recipe check (to the damaged optimiser file) with any schedule.
    nlohmann::json old_run = saved;
    old_run.erase("training");
    write_file_atomic((fs::path(out) / "recipe.json").string(), old_run.dump(2));
    test::expect_error([&] { train::train(faster, out, true); },
                       "cannot read " + optimizer.string());
    // A tower-only stage needs a loss that reads the tower.
    std::ifstream tiny(test::data_path("train/tiny-recipe.json"));
    nlohmann::json tower_only = nlohmann::json::parse(tiny);
    tower_only["tower_only"]  = true;
    test::expect_error([&] { train::parse_train_config(tower_only.dump(), "r.json"); },
                       "r.json: tower_only");
    tower_only["loss"]["object"] = 1.0;
    EXPECT_TRUE(train::parse_train_config(tower_only.dump(), "r.json").tower_only);
    // … and a tower it may train.
    tower_only["frozen"] = {"clip_vision"};
    test::expect_error([&] { train::parse_train_config(tower_only.dump(), "r.json"); },
                       "which frozen keeps");
    // data.min_objects: read when given, within the generator's [1, kMaxObjects].
    tower_only.erase("frozen");
    tower_only["data"]["min_objects"] = 4;
    EXPECT_EQ(train::parse_train_config(tower_only.dump(), "r.json").data.min_objects, 4);
    tower_only["data"]["min_objects"] = synth::kMaxObjects + 1;
    test::expect_error([&] { train::parse_train_config(tower_only.dump(), "r.json"); },
                       "r.json: data.min_objects must be at most");
    // data.min_objects_share: in [0, 1] when given, 1 (every scene) when not.
    tower_only["data"]["min_objects"] = 4;
    EXPECT_EQ(train::parse_train_config(tower_only.dump(), "r.json").data.min_objects_share, 1.0);
    tower_only["data"]["min_objects_share"] = 0.25;
    EXPECT_EQ(train::parse_train_config(tower_only.dump(), "r.json").data.min_objects_share, 0.25);
    for (const double bad : {-0.5, 1.5}) {
        tower_only["data"]["min_objects_share"] = bad;
        test::expect_error([&] { train::parse_train_config(tower_only.dump(), "r.json"); },
                           "r.json: data.min_objects_share must be");
    }
    tower_only["data"].erase("min_objects_share");
    // init_heads are the heads of an init (the recipe's or --init's): without one, refused.
    train::TrainConfig heads_alone = recipe;
    heads_alone.init_heads         = "heads";
    test::expect_error(
        [&] { train::train(heads_alone, test::make_temp_dir("train-heads-alone"), false); },
        "there is no init");
    // A recipe with a bad field names it.
    EXPECT_THROW(train::parse_train_config(R"({"model": {}})", "r.json"), Error);
    test::expect_error(
        [] { train::parse_train_config("{\"model\": {}, \"vision_tower\": {}}", "r.json"); },
        "r.json");
}

// A recipe that names a base is the base with its keys merged over (RFC 7386): objects key by
// key, other values replace, null removes; bases chain, a loop or a missing base is refused.
TEST(Trainer, ARecipeChangesItsBaseKeyByKey) {
    const fs::path dir = test::make_temp_dir("recipe-base");
    fs::copy_file(test::data_path("train/tiny-recipe.json"), dir / "tiny.json");
    auto write = [&](const char* name, const nlohmann::json& j) {
        std::ofstream(dir / name) << j.dump(2);
    };
    // stage.json: a deeper folder, its base named relative to it.
    fs::create_directories(dir / "stages");
    write("stages/stage.json", {{"base", "../tiny.json"},
                                {"optimizer", {{"steps", 7}, {"learning_rate", 2e-4}}},
                                {"model", {{"region_encoder", {{"box_scale", 48}}}}},
                                {"frozen", {"clip_vision", "region_encoder"}},
                                {"init", "somewhere"}});
    // next.json: a base that has a base; drops the frozen list, takes another init.
    write("next.json", {{"base", "stages/stage.json"},
                        {"frozen", nullptr},
                        {"init", "elsewhere"},
                        {"tasks", {{"gcg", 0}}}});
    const train::TrainConfig tiny  = tiny_recipe();
    const train::TrainConfig stage = train::load_train_config((dir / "stages/stage.json").string());
    EXPECT_EQ(stage.steps, 7);
    EXPECT_DOUBLE_EQ(stage.learning_rate, 2e-4);
    EXPECT_EQ(stage.batch_size, tiny.batch_size); // the rest of "optimizer" is the base's
    EXPECT_DOUBLE_EQ(stage.min_learning_rate, tiny.min_learning_rate);
    EXPECT_EQ(stage.model["region_encoder"]["box_scale"], 48);
    EXPECT_EQ(stage.model["region_encoder"]["gn_groups"],
              tiny.model["region_encoder"]["gn_groups"]);
    EXPECT_EQ(stage.model["hidden_size"], tiny.model["hidden_size"]);
    EXPECT_EQ(stage.vision_tower, tiny.vision_tower);
    EXPECT_EQ(stage.frozen, (std::vector<std::string>{"clip_vision", "region_encoder"}));
    EXPECT_EQ(stage.init, "somewhere");
    EXPECT_EQ(stage.data.seed, tiny.data.seed);

    const train::TrainConfig next = train::load_train_config((dir / "next.json").string());
    EXPECT_EQ(next.steps, 7);
    EXPECT_EQ(next.model["region_encoder"]["box_scale"], 48);
    EXPECT_TRUE(next.frozen.empty());
    EXPECT_EQ(next.init, "elsewhere");
    EXPECT_DOUBLE_EQ(next.tasks.gcg, 0);
    EXPECT_DOUBLE_EQ(next.tasks.refseg, tiny.tasks.refseg);

    auto expect_refused = [&](const char* name, const std::string& what) {
        test::expect_error([&] { train::load_train_config((dir / name).string()); }, what);
    };
    write("a.json", {{"base", "b.json"}});
    write("b.json", {{"base", "a.json"}});
    expect_refused("a.json", "a.json: its base recipes loop back to it");
    write("orphan.json", {{"base", "gone.json"}});
    expect_refused("orphan.json", "orphan.json: cannot open its base recipe");
    write("number.json", {{"base", 3}});
    expect_refused("number.json", "number.json: base names the recipe this one changes");
    // The merged recipe is checked as a whole: the message names the recipe given.
    write("bad.json", {{"base", "tiny.json"}, {"optimizer", {{"steps", 0}}}});
    expect_refused("bad.json", "bad.json: optimizer.steps must be at least 1");
}

// The shipped stage recipes are written as changes of their bases: each resolves to a full
// recipe, and the last one (stage 12n) to the configuration that trained the shipped model.
TEST(Trainer, TheShippedRecipesResolveThroughTheirBases) {
    const fs::path dir = fs::path(GLAMM_SOURCE_DIR) / "resources/train";
    int recipes        = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().extension() != ".json") continue;
        EXPECT_NO_THROW(train::load_train_config(entry.path().string())) << entry.path();
        ++recipes;
    }
    EXPECT_GE(recipes, 30);
    const train::TrainConfig n =
        train::load_train_config((dir / "glamm-shapes-stage12n.json").string());
    EXPECT_EQ(n.model["hidden_size"], 256);
    EXPECT_EQ(n.model["region_encoder"]["box_scale"], 168); // the tower's image_size
    EXPECT_EQ(n.vision_tower["image_size"], 168);
    EXPECT_EQ(n.steps, 3200);
    EXPECT_DOUBLE_EQ(n.learning_rate, 1.5e-4);
    EXPECT_EQ(n.data.seed, 30000u);
    EXPECT_DOUBLE_EQ(n.tasks.gcg, 0.5);
    EXPECT_DOUBLE_EQ(n.loss.region, 2.0);
    EXPECT_EQ(n.regcap_turns, 6);
    EXPECT_EQ(n.frozen, std::vector<std::string>{"clip_vision"});
    EXPECT_EQ(n.init, "runs/shapes-stage12l/checkpoints/step-450");
}

TEST(Trainer, RegionsOnlyAndReinitialiseRecipesAreChecked) {
    std::ifstream tiny(test::data_path("train/tiny-recipe.json"));
    const nlohmann::json base = nlohmann::json::parse(tiny);
    auto expect_refused       = [](const nlohmann::json& recipe, const std::string& what) {
        test::expect_error([&] { train::parse_train_config(recipe.dump(), "r.json"); }, what);
    };
    // regions_only needs the region loss, excludes tower_only and a frozen region encoder.
    nlohmann::json regions  = base;
    regions["regions_only"] = true;
    expect_refused(regions, "r.json: regions_only trains the region encoder on loss.region");
    regions["loss"]["region"] = 1.0;
    EXPECT_TRUE(train::parse_train_config(regions.dump(), "r.json").regions_only);
    nlohmann::json both    = regions;
    both["tower_only"]     = true;
    both["loss"]["object"] = 1.0;
    expect_refused(both, "exclude each other");
    regions["frozen"] = {"clip_vision", "region_encoder"};
    expect_refused(regions, "regions_only trains the region encoder, which frozen keeps");
    // reinitialise: only with an init, never of a frozen component.
    nlohmann::json fresh  = base;
    fresh["reinitialise"] = {"region_encoder"};
    expect_refused(fresh, "this recipe has none");
    fresh["init"] = "somewhere";
    EXPECT_EQ(train::parse_train_config(fresh.dump(), "r.json").reinitialise,
              std::vector<std::string>{"region_encoder"});
    fresh["frozen"] = {"region_encoder"};
    expect_refused(fresh, "\"region_encoder\" is both frozen and reinitialised");
    fresh["frozen"]       = nlohmann::json::array();
    fresh["reinitialise"] = "region_encoder";
    expect_refused(fresh, "reinitialise must be a list of component names");
}

TEST(Trainer, AuxiliaryLossesTrainHeadsThatCheckpointsKeepAndReleasesLeaveOut) {
    // The losses that are not GLaMM's (LossWeights::patch, sam_patch, region, seg, object): each is
    // logged,
    // a run resumed from a checkpoint ends bit-identical (the heads and their optimiser state are
    // in the checkpoint), the release holds exactly the keys GLaMM's architecture has, and the
    // weights differ from the same run without them.
    train::TrainConfig plain_recipe        = tiny_recipe();
    plain_recipe.tasks.regcap              = 1.0; // boxes in most samples, for the region loss
    train::TrainConfig recipe              = plain_recipe;
    recipe.loss.patch                      = 1.0;
    recipe.loss.sam_patch                  = 1.0;
    recipe.loss.region                     = 1.0;
    recipe.loss.seg                        = 1.0;
    recipe.loss.object                     = 1.0;
    const std::string straight             = test::make_temp_dir("train-aux"),
                      resumed              = test::make_temp_dir("train-aux-resumed"),
                      plain                = test::make_temp_dir("train-aux-none");
    const std::vector<train::StepLog> logs = train_logged(recipe, straight);
    ASSERT_EQ(logs.size(), static_cast<size_t>(recipe.steps));
    // Two cross-entropies over 9 shape and 13 colour classes start near ln 9 + ln 13 = 4.8.
    EXPECT_GT(logs[0].patch, 1.0);
    EXPECT_GT(logs[0].sam_patch, 1.0);
    EXPECT_GT(logs[0].object, 1.0);
    double region_max = 0, seg_max = 0;
    for (const auto& s : logs) {
        region_max = std::max(region_max, s.region);
        seg_max    = std::max(seg_max, s.seg);
        if (s.masks == 0) EXPECT_EQ(s.seg, 0.0) << "step " << s.step;
    }
    EXPECT_GT(region_max, 1.0); // logged on the steps with a box
    EXPECT_GT(seg_max, 1.0);    // and on those with a mask
    for (const char* head : kHeadFiles)
        EXPECT_TRUE(fs::exists(fs::path(straight) / "checkpoints" / "step-4" / head)) << head;

    train::train(recipe, resumed, false, {}, 2);
    train::train(recipe, resumed, true);
    expect_same_weights(straight + "/glamm", resumed + "/glamm");
    expect_same_weights(straight + "/clip", resumed + "/clip");

    train::train(plain_recipe, plain, false);
    for (const char* part : {"/glamm", "/clip"}) {
        const Checkpoint with    = Checkpoint::open(straight + part),
                         without = Checkpoint::open(plain + part);
        EXPECT_EQ(with.names(), without.names());
        bool any_different = false;
        for (const auto& key : with.names())
            any_different |= !torch::equal(with.tensor(key), without.tensor(key));
        EXPECT_TRUE(any_different) << part;
    }
    ModelOptions options;
    options.model_dir = straight + "/glamm";
    EXPECT_NO_THROW(GlammModel::load(options)); // strict: no stray head keys

    // A second stage from a checkpoint folder takes its heads too (at learning rate 0 they end
    // as they started); from a release (no heads there) they start afresh.
    train::TrainConfig frozen = recipe;
    frozen.learning_rate = frozen.min_learning_rate = 0;

    const std::string from_checkpoint = test::make_temp_dir("train-aux-init-ckpt");
    const std::string from_release    = test::make_temp_dir("train-aux-init-release");

    frozen.init = straight + "/checkpoints/step-4";
    train::train(frozen, from_checkpoint, false);
    frozen.init = straight;
    train::train(frozen, from_release, false);
    // From a release with init_heads naming a folder that holds them (as resources/train/heads/
    // keeps the shipped model's), they are taken from there.
    const std::string from_release_heads = test::make_temp_dir("train-aux-init-heads");
    frozen.init_heads                    = straight + "/checkpoints/step-4";
    train::train(frozen, from_release_heads, false);
    // A missing heads folder is refused before anything is written.
    frozen.init_heads               = straight + "/no-such-folder";
    const std::string missing_heads = test::make_temp_dir("train-aux-init-heads-missing");
    test::expect_error([&] { train::train(frozen, missing_heads, false); },
                       "the init_heads folder " + frozen.init_heads + " does not exist");
    EXPECT_FALSE(fs::exists(fs::path(missing_heads) / "recipe.json"));
    auto head_weight = [](const fs::path& file) {
        torch::nn::Linear head(1, 1);
        torch::load(head, file.string());
        return head->weight.detach().clone();
    };
    for (const char* head : kHeadFiles) {
        const at::Tensor init = head_weight(fs::path(straight) / "checkpoints/step-4" / head);
        EXPECT_TRUE(torch::equal(
            init, head_weight(fs::path(from_checkpoint) / "checkpoints/step-4" / head)))
            << head;
        EXPECT_FALSE(
            torch::equal(init, head_weight(fs::path(from_release) / "checkpoints/step-4" / head)))
            << head;
        EXPECT_TRUE(torch::equal(
            init, head_weight(fs::path(from_release_heads) / "checkpoints/step-4" / head)))
            << head;
    }
}

TEST(PatchLabels, FollowTheTowersResizeAndCropByHand) {
    // A 4 x 4 grid of 14-pixel patches over a 56-pixel tower input.
    ClipVisionConfig clip;
    clip.image_size = 56;
    clip.patch_size = 14;
    // Already the tower's size: columns 1-2 of rows 0-1 (x 14..42, y 0..28).
    expect_cells(train::patch_labels(scene_with_box(56, 56, 14, 0, 42, 28), clip), {1, 2, 5, 6});
    // 112 x 56: no resize, the crop starts at x = 28, so x 42..56, y 42..56 is patch (1, 3).
    expect_cells(train::patch_labels(scene_with_box(112, 56, 42, 42, 56, 56), clip), {13});
    // 112 x 112 halves: x 56..112, y 0..56 becomes columns 2-3 of rows 0-1.
    expect_cells(train::patch_labels(scene_with_box(112, 112, 56, 0, 112, 56), clip), {2, 3, 6, 7});
    // Less than a quarter of a patch is background: a 4 x 4 block in patch 0 holds one of its
    // 16 sample points (at 1.75, 5.25, 8.75, 12.25 along each side).
    expect_cells(train::patch_labels(scene_with_box(56, 56, 4, 4, 8, 8), clip), {});
    // Half a patch is the object's: x 0..7 of patch 0, all rows.
    expect_cells(train::patch_labels(scene_with_box(56, 56, 0, 0, 7, 56), clip), {0, 4, 8, 12});
    EXPECT_EQ(train::patch_shape_classes(), 1 + synth::kShapeCount);
}

TEST(PatchLabels, SamCellsFollowResizeLongestSideAndPaddingByHand) {
    // A 4 x 4 grid of 16-pixel cells over a 64-pixel SAM input.
    SamConfig sam;
    sam.img_size   = 64;
    sam.patch_size = 16;
    // Already SAM's size: x 16..48, y 0..32 is columns 1-2 of rows 0-1.
    expect_cells(train::sam_patch_labels(scene_with_box(64, 64, 16, 0, 48, 32), sam), {1, 2, 5, 6});
    // 128 x 64 halves to 64 x 32 at the top: rows 2-3 are padding, background although the
    // object fills the whole image.
    expect_cells(train::sam_patch_labels(scene_with_box(128, 64, 0, 0, 128, 64), sam),
                 {0, 1, 2, 3, 4, 5, 6, 7});
    // ...and x 96..128, y 32..64 becomes x 48..64, y 16..32: cell (1, 3).
    expect_cells(train::sam_patch_labels(scene_with_box(128, 64, 96, 32, 128, 64), sam), {7});
    // 64 x 128 halves to 32 x 64 at the left: columns 2-3 are padding.
    expect_cells(train::sam_patch_labels(scene_with_box(64, 128, 0, 0, 64, 128), sam),
                 {0, 1, 4, 5, 8, 9, 12, 13});
}

TEST(ObjectViews, CoverThePatchesOfEachObjectInTheTowersViewByHand) {
    // A 4 x 4 grid of 14-pixel patches over a 56-pixel tower input; a patch's coverage is the
    // share of its 4 x 4 sample points (at 1.75, 5.25, 8.75, 12.25 along each side) on the mask.
    ClipVisionConfig clip;
    clip.image_size      = 56;
    clip.patch_size      = 14;
    const int64_t square = 1 + static_cast<int64_t>(synth::Shape::Square), red = 1;
    auto expect_coverage = [](const train::ObjectViews& v, const std::vector<float>& want) {
        ASSERT_EQ(v.coverage.sizes(), (std::vector<int64_t>{1, 16}));
        for (int64_t k = 0; k < 16; ++k)
            EXPECT_FLOAT_EQ(v.coverage[0][k].item<float>(), want[size_t(k)]) << "patch " << k;
    };
    // x 14..42, y 0..28: all of patches 1, 2, 5, 6.
    const train::ObjectViews whole =
        train::object_views(scene_with_box(56, 56, 14, 0, 42, 28), clip);
    expect_coverage(whole, {0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    ASSERT_EQ(whole.classes.sizes(), (std::vector<int64_t>{2, 1}));
    EXPECT_EQ(whole.classes[0][0].item<int64_t>(), square);
    EXPECT_EQ(whole.classes[1][0].item<int64_t>(), red);
    // x 0..7 of every row: two of four sample columns of patches 0, 4, 8, 12.
    expect_coverage(train::object_views(scene_with_box(56, 56, 0, 0, 7, 56), clip),
                    {0.5, 0, 0, 0, 0.5, 0, 0, 0, 0.5, 0, 0, 0, 0.5, 0, 0, 0});
    // A 4 x 4 block at 4..8: one sample point of patch 0 (which the patch loss calls background).
    expect_coverage(train::object_views(scene_with_box(56, 56, 4, 4, 8, 8), clip),
                    {1.0f / 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    // 112 x 56 is centre-cropped to x 28..84: an object at x 0..28 is out of the view.
    const train::ObjectViews cut = train::object_views(scene_with_box(112, 56, 0, 0, 28, 56), clip);
    EXPECT_EQ(cut.coverage.sizes(), (std::vector<int64_t>{0, 16}));
    EXPECT_EQ(cut.classes.sizes(), (std::vector<int64_t>{2, 0}));
}

TEST(SceneTargets, AreWhatTheSeparateFunctionsGiveFromOneDecode) {
    // The step's targets come from one decode of the masks; they must be exactly those of
    // patch_labels, sam_patch_labels and object_views, on scenes with several overlapping objects
    // and a centre crop that cuts some away.
    ClipVisionConfig clip;
    clip.image_size = 56;
    clip.patch_size = 14;
    SamConfig sam;
    sam.img_size   = 64;
    sam.patch_size = 16;
    synth::SynthOptions options;
    options.seed     = 7;
    options.min_size = 64;
    options.max_size = 96;
    train::LossWeights all;
    all.patch = all.sam_patch = all.object = 1.0;
    int64_t objects                        = 0;
    for (int64_t i = 0; i < 6; ++i) {
        const synth::SceneAnnotation scene = synth::generate_scene(options, i).annotation;
        const train::SceneTargets t        = train::scene_targets(scene, clip, sam, all);
        EXPECT_TRUE(torch::equal(t.patch_labels, train::patch_labels(scene, clip))) << i;
        EXPECT_TRUE(torch::equal(t.sam_patch_labels, train::sam_patch_labels(scene, sam))) << i;
        const train::ObjectViews v = train::object_views(scene, clip);
        EXPECT_TRUE(torch::equal(t.objects.coverage, v.coverage)) << i;
        EXPECT_TRUE(torch::equal(t.objects.classes, v.classes)) << i;
        objects += v.classes.size(1);
    }
    EXPECT_GT(objects, 6); // several objects a scene on average
    // Losses that are off leave their targets empty.
    train::LossWeights patch_only;
    patch_only.patch = 1.0;
    const train::SceneTargets t =
        train::scene_targets(synth::generate_scene(options, 0).annotation, clip, sam, patch_only);
    EXPECT_TRUE(t.patch_labels.defined());
    EXPECT_FALSE(t.sam_patch_labels.defined());
    EXPECT_FALSE(t.objects.coverage.defined());
}

TEST(Trainer, AnInitWithoutWeightsOrTokenizerIsRefusedBeforeAnythingIsWritten) {
    train::TrainConfig recipe = tiny_recipe();
    const fs::path init       = test::make_temp_dir("train-bad-init");
    fs::create_directories(init / "glamm");
    auto expect_refused = [&](const std::string& what) {
        const fs::path out = test::make_temp_dir("train-bad-init-out");
        test::expect_error([&] { train::train(recipe, out.string(), false); }, what);
        EXPECT_FALSE(fs::exists(out / "recipe.json"));
    };
    recipe.init = init.string() + "/"; // a trailing '/' is the same folder
    expect_refused("has no clip/ folder");
    fs::create_directories(init / "clip");
    expect_refused("has no glamm/tokenizer.model");
}

TEST(Trainer, FrozenComponentsKeepTheInitsWeightsWhileTheRestLearn) {
    // frozen: the named components end bit-identical to the init's (out of the optimiser, no
    // backward through them); every other component trains.
    const std::string& base   = tiny_base_run();
    const std::string frozen  = test::make_temp_dir("train-frozen");
    train::TrainConfig recipe = tiny_recipe();
    recipe.init               = base;
    recipe.frozen             = {"clip_vision", "sam_image_encoder"};
    train::train(recipe, frozen, false);
    expect_same_weights(base + "/clip", frozen + "/clip");
    const Checkpoint before = Checkpoint::open(base + "/glamm"),
                     after  = Checkpoint::open(frozen + "/glamm");
    ASSERT_EQ(before.names(), after.names());
    int sam_encoder = 0, changed = 0;
    for (const auto& key : before.names()) {
        const bool same = torch::equal(before.tensor(key), after.tensor(key));
        if (key.rfind(kSamImageEncoderPrefix, 0) == 0) {
            ++sam_encoder;
            EXPECT_TRUE(same) << key;
        } else {
            changed += !same;
        }
    }
    EXPECT_GT(sam_encoder, 0);
    EXPECT_GT(changed, 0); // the language model, projector, mask decoder… learned
    // A name that is no component of the model is refused, naming it, before anything is
    // written.
    recipe.frozen             = {"clip_vision", "sam"};
    const std::string bad_out = test::make_temp_dir("train-frozen-bad");
    test::expect_error([&] { train::train(recipe, bad_out, false); }, "no component \"sam\"");
    EXPECT_FALSE(fs::exists(fs::path(bad_out) / "recipe.json"));
    EXPECT_FALSE(fs::exists(fs::path(bad_out) / "glamm"));
}

TEST(Trainer, ATowerOnlyStageTrainsTheTowerAndLeavesTheRestAsItWas) {
    // tower_only: the step runs the vision tower and its losses alone; every weight outside
    // the tower ends bit-identical to the init's, the tower's do not.
    const std::string& base                = tiny_base_run();
    const std::string tower                = test::make_temp_dir("train-tower-only");
    train::TrainConfig recipe              = tiny_recipe();
    recipe.init                            = base;
    recipe.tower_only                      = true;
    recipe.loss.object                     = 1.0;
    const std::vector<train::StepLog> logs = train_logged(recipe, tower);
    ASSERT_EQ(logs.size(), static_cast<size_t>(recipe.steps));
    for (const auto& s : logs) {
        EXPECT_GT(s.object, 1.0) << "step " << s.step; // near ln 9 + ln 13 = 4.8 at the start
        EXPECT_EQ(s.ce, 0.0) << "step " << s.step;
        EXPECT_EQ(s.masks, 0) << "step " << s.step;
    }
    expect_same_weights(base + "/glamm", tower + "/glamm");
    const Checkpoint before = Checkpoint::open(base + "/clip"),
                     after  = Checkpoint::open(tower + "/clip");
    ASSERT_EQ(before.names(), after.names());
    bool tower_changed = false;
    for (const auto& key : before.names())
        tower_changed |= !torch::equal(before.tensor(key), after.tensor(key));
    EXPECT_TRUE(tower_changed);
}

TEST(Trainer, ARegionsOnlyStageTrainsTheRegionEncoderOnEveryObjectsBox) {
    // regions_only with the tower frozen: the step runs the tower, the region encoder on a box
    // around every object and the region loss alone; every weight but the region encoder's ends
    // bit-identical to the init's, the region encoder's do not.
    const std::string& base                = tiny_base_run();
    const std::string regions              = test::make_temp_dir("train-regions-only");
    train::TrainConfig recipe              = tiny_recipe();
    recipe.init                            = base;
    recipe.regions_only                    = true;
    recipe.loss.region                     = 1.0;
    recipe.frozen                          = {"clip_vision"};
    const std::vector<train::StepLog> logs = train_logged(recipe, regions);
    ASSERT_EQ(logs.size(), static_cast<size_t>(recipe.steps));
    for (const auto& s : logs) {
        EXPECT_GT(s.region, 1.0) << "step " << s.step; // near ln 9 + ln 13 = 4.8 at the start
        EXPECT_EQ(s.ce, 0.0) << "step " << s.step;
        EXPECT_EQ(s.masks, 0) << "step " << s.step;
    }
    expect_same_weights(base + "/clip", regions + "/clip");
    const Checkpoint before = Checkpoint::open(base + "/glamm"),
                     after  = Checkpoint::open(regions + "/glamm");
    ASSERT_EQ(before.names(), after.names());
    int encoder = 0;
    for (const auto& key : before.names()) {
        const bool same = torch::equal(before.tensor(key), after.tensor(key));
        if (key.rfind(kRegionEncoderPrefix, 0) == 0) {
            ++encoder;
            EXPECT_FALSE(same) << key; // the fuse module too: RoIAlign passes the gradient on
        } else {
            EXPECT_TRUE(same) << key;
        }
    }
    EXPECT_GT(encoder, 0);
}

TEST(Trainer, AReinitialisedComponentStartsAsARunFromScratchWouldWhileTheRestKeepTheInit) {
    // With the learning rate at 0 nothing moves: the reinitialised projector must equal a
    // from-scratch run's (same seed, same tokenizer, so the same draws), everything else the
    // init's, and the projector must differ from the init's (the base run trained it).
    const std::string& base   = tiny_base_run();
    train::TrainConfig still  = tiny_recipe();
    still.learning_rate       = 0;
    still.min_learning_rate   = 0;
    const std::string scratch = test::make_temp_dir("train-reinit-scratch");
    train::train(still, scratch, false);
    train::TrainConfig stage = still;
    stage.init               = base;
    stage.reinitialise       = {"mm_projector"};
    const std::string fresh  = test::make_temp_dir("train-reinit");
    train::train(stage, fresh, false);
    expect_same_weights(base + "/clip", fresh + "/clip");
    const Checkpoint init = Checkpoint::open(base + "/glamm"),
                     zero = Checkpoint::open(scratch + "/glamm"),
                     out  = Checkpoint::open(fresh + "/glamm");
    ASSERT_EQ(init.names(), out.names());
    int projector = 0;
    for (const auto& key : out.names()) {
        if (key.rfind("model.mm_projector.", 0) == 0) {
            ++projector;
            EXPECT_TRUE(torch::equal(out.tensor(key), zero.tensor(key))) << key;
            EXPECT_FALSE(torch::equal(out.tensor(key), init.tensor(key))) << key;
        } else {
            EXPECT_TRUE(torch::equal(out.tensor(key), init.tensor(key))) << key;
        }
    }
    EXPECT_EQ(projector, 4); // two Linear layers, weight and bias
    // A name that is no component of the model is refused, naming it.
    stage.reinitialise = {"projector"};
    test::expect_error([&] { train::train(stage, test::make_temp_dir("train-reinit-bad"), false); },
                       "reinitialise: no component \"projector\"");
}

TEST(Trainer, EveryParameterGlammReadsLearns) {
    // A training step must reach every weight the forward reads: a path without a backward (as
    // RoIAlign once was, which left the region encoder's fuse module at its initialisation) shows
    // up as tensors that end bit-identical to a learning-rate-0 run's. What stays must be exactly
    // what GLaMM's tasks never read.
    train::TrainConfig recipe = tiny_recipe();
    recipe.tasks              = {1.0, 1.0, 2.0, 0.0}; // GCG, referring segmentation, regions
    train::TrainConfig still  = recipe;
    still.learning_rate = still.min_learning_rate = 0;
    const std::string moved                       = test::make_temp_dir("train-every"),
                      fixed                       = test::make_temp_dir("train-every-still");
    train::train(recipe, moved, false);
    train::train(still, fixed, false);
    const nlohmann::json tower   = recipe.vision_tower;
    const std::string last_layer = "vision_model.encoder.layers." +
                                   std::to_string(tower["num_hidden_layers"].get<int>() - 1) + ".";
    const std::string decoder                 = "model.grounding_encoder.mask_decoder.",
                      prompt                  = "model.grounding_encoder.prompt_encoder.";
    const std::vector<std::string> never_read = {
        last_layer, // mm_vision_select_layer -2: the tower's last layer is unused
        "vision_model.post_layernorm.",   // and so is its final norm
        decoder + "iou_prediction_head.", // GLaMM's loss reads the masks, not their IoU score
        decoder + "output_hypernetworks_mlps.1.", // multimask_output false: mask 0 only
        decoder + "output_hypernetworks_mlps.2.",
        decoder + "output_hypernetworks_mlps.3.",
        prompt + "point_embeddings.",  // the only prompt is the [SEG] embedding: no points,
        prompt + "not_a_point_embed.", // boxes or mask prompts
        prompt + "mask_downscaling.",
        prompt + "pe_layer.positional_encoding_gaussian_matrix", // SAM's fixed random features
    };
    auto never = [&](const std::string& key) {
        return std::any_of(never_read.begin(), never_read.end(),
                           [&](const std::string& p) { return key.rfind(p, 0) == 0; });
    };
    int unread = 0;
    for (const char* part : {"/glamm", "/clip"}) {
        const Checkpoint a = Checkpoint::open(moved + part), b = Checkpoint::open(fixed + part);
        ASSERT_EQ(a.names(), b.names());
        for (const auto& key : a.names()) {
            const bool same = torch::equal(a.tensor(key), b.tensor(key));
            unread += never(key);
            EXPECT_EQ(same, never(key)) << key << (same ? " did not learn" : " learned");
        }
    }
    EXPECT_GT(unread, 20);
}

TEST(Trainer, ARecipeWhoseBoxesFallOffTheTowersGridIsRefused) {
    std::ifstream tiny(test::data_path("train/tiny-recipe.json"));
    nlohmann::json recipe = nlohmann::json::parse(tiny);
    recipe["model"]["region_encoder"].erase("box_scale"); // GLaMM's 224 on a 56-pixel tower
    test::expect_error([&] { train::parse_train_config(recipe.dump(), "r.json"); },
                       "box_scale (224, the default) exceeds vision_tower.image_size (56)");
}

TEST(Trainer, RegionImageDropoutHidesTheImageFromRegionCaptionSamples) {
    // Region captions only: with every sample's image tokens zeroed, nothing reaches the
    // projector (the loss sees the image through the <bbox> embedding alone) and it ends as the
    // init has it; with none zeroed it learns.
    const std::string& base   = tiny_base_run();
    train::TrainConfig recipe = tiny_recipe();
    recipe.init               = base;
    recipe.tasks              = {0.0, 0.0, 1.0, 0.0};
    auto projector_learned    = [&](double dropout) {
        recipe.region_image_dropout = dropout;
        const std::string out       = test::make_temp_dir("train-image-dropout");
        train::train(recipe, out, false);
        const Checkpoint before = Checkpoint::open(base + "/glamm"),
                         after  = Checkpoint::open(out + "/glamm");
        int projector = 0, changed = 0, others_changed = 0;
        for (const auto& key : before.names()) {
            const bool same = torch::equal(before.tensor(key), after.tensor(key));
            if (key.rfind("model.mm_projector.", 0) == 0) {
                ++projector;
                changed += !same;
            } else {
                others_changed += !same;
            }
        }
        EXPECT_EQ(projector, 4);
        EXPECT_GT(others_changed, 0) << "dropout " << dropout; // the rest trains either way
        return changed;
    };
    EXPECT_EQ(projector_learned(1.0), 0);
    EXPECT_EQ(projector_learned(0.0), 4);
    // A share above 1 is refused.
    std::ifstream tiny(test::data_path("train/tiny-recipe.json"));
    nlohmann::json bad          = nlohmann::json::parse(tiny);
    bad["region_image_dropout"] = 1.5;
    test::expect_error([&] { train::parse_train_config(bad.dump(), "r.json"); },
                       "region_image_dropout is a share");
}

TEST(Trainer, ComponentNamesAreTheBuiltModelsAndListsNamingOthersAreRefusedOnReading) {
    // GlammModel::component_names (what recipe lists are checked against before anything is
    // built) gives the names a built model's component_refs() has, and a recipe file naming
    // another component is refused as it is read.
    ModelOptions options;
    options.model_dir = tiny_base_run() + "/glamm";
    const auto model  = GlammModel::load(options);
    std::vector<std::string> built;
    for (const ComponentRef& ref : model->component_refs()) built.push_back(ref.name);
    EXPECT_EQ(GlammModel::component_names(model->config), built);
    EXPECT_EQ(built.size(), 8u);
    GlammConfig plain                      = model->config;
    plain.with_region                      = false;
    const std::vector<std::string> without = GlammModel::component_names(plain);
    EXPECT_EQ(std::count(without.begin(), without.end(), "region_encoder"), 0);
    EXPECT_EQ(without.size(), 7u);

    std::ifstream tiny(test::data_path("train/tiny-recipe.json"));
    const nlohmann::json base = nlohmann::json::parse(tiny);
    for (const char* key : {"frozen", "reinitialise"}) {
        nlohmann::json recipe = base;
        recipe["init"]        = "somewhere";
        recipe[key]           = {"llama", "vision"};
        test::expect_error([&] { train::parse_train_config(recipe.dump(), "r.json"); },
                           std::string("recipe ") + key + ": no component \"vision\"");
    }
}

TEST(Trainer, AConversationsIdsAreTheChatPromptsWithEveryAnswerTargeted) {
    // conversation_ids gives the ids the engine's chat tokenises the same conversation to, and
    // each answer's span is exactly its tokens and the "</s>" closing it.
    ModelOptions options;
    options.model_dir                    = tiny_base_run() + "/glamm";
    const auto model                     = GlammModel::load(options);
    const Tokenizer& tok                 = *model->tokenizer;
    const std::string asked              = build_instruction(TaskPreset::RegionCaption, "", 1);
    const std::vector<train::Turn> turns = {
        {asked, "a large striped red star"}, {asked, "a small blue circle"}, {asked, "a ring"}};
    const train::ConversationIds got = train::conversation_ids(tok, true, turns);

    Conversation chat(true);
    for (const auto& t : turns) {
        chat.add_user(t.instruction);
        chat.add_assistant(t.answer);
    }
    EXPECT_EQ(got.ids, tok.encode_with_image(chat.prompt()));
    ASSERT_EQ(got.answers.size(), turns.size());
    int64_t previous_end = 0;
    for (size_t k = 0; k < turns.size(); ++k) {
        const auto [begin, end] = got.answers[k];
        EXPECT_GT(begin, previous_end) << "turn " << k; // a question comes between answers
        previous_end                  = end;
        std::vector<int64_t> expected = tok.encode(turns[k].answer, false);
        expected.push_back(tok.eos_id());
        EXPECT_EQ(std::vector<int64_t>(got.ids.begin() + begin, got.ids.begin() + end), expected)
            << "turn " << k;
    }
    EXPECT_EQ(previous_end, static_cast<int64_t>(got.ids.size()));
    // One turn: the first-turn prompt, the answer and EOS (what every sample was before turns).
    const train::ConversationIds one = train::conversation_ids(tok, true, {turns[0]});
    std::vector<int64_t> single      = tok.encode_with_image(model->first_turn_prompt(asked));
    const auto first_begin           = static_cast<int64_t>(single.size());
    const std::vector<int64_t> first = tok.encode(turns[0].answer, false);
    single.insert(single.end(), first.begin(), first.end());
    single.push_back(tok.eos_id());
    EXPECT_EQ(one.ids, single);
    EXPECT_EQ(one.answers, (std::vector<std::pair<int64_t, int64_t>>{
                               {first_begin, static_cast<int64_t>(single.size())}}));
    EXPECT_THROW(train::conversation_ids(tok, true, {}), Error);
}

TEST(Trainer, RegionCaptionSamplesWithTurnsAskAboutEveryBoxOfTheScene) {
    // Region captions only, up to 6 turns: scenes have at most 6 objects, so every sample asks
    // about every region of its scene, and a step's targets are each region caption's tokens
    // and its "</s>" — nothing of the questions.
    train::TrainConfig recipe              = tiny_recipe();
    recipe.init                            = tiny_base_run();
    recipe.tasks                           = {0.0, 0.0, 1.0, 0.0};
    recipe.regcap_turns                    = 6;
    recipe.steps                           = 2;
    const std::string out                  = test::make_temp_dir("train-regcap-turns");
    const std::vector<train::StepLog> logs = train_logged(recipe, out);
    ASSERT_EQ(logs.size(), 2u);
    ModelOptions options;
    options.model_dir    = out + "/glamm";
    const auto model     = GlammModel::load(options);
    const Tokenizer& tok = *model->tokenizer;
    for (const train::StepLog& log : logs) {
        int64_t expected = 0, regions = 0;
        for (int64_t i = 0; i < recipe.batch_size; ++i) {
            const int64_t index = ((log.step - 1) * recipe.batch_size + i) % recipe.data.count;
            const auto scene    = synth::generate_scene(recipe.data, index);
            for (const auto& r : scene.annotation.regions)
                expected += static_cast<int64_t>(tok.encode(r.text, false).size()) + 1;
            regions += static_cast<int64_t>(scene.annotation.regions.size());
        }
        EXPECT_GT(regions, recipe.batch_size) << "step " << log.step; // some scene has two
        EXPECT_EQ(log.tokens, expected) << "step " << log.step;
    }
    // The recipe key: a whole number of at least 1.
    std::ifstream tiny(test::data_path("train/tiny-recipe.json"));
    const nlohmann::json base = nlohmann::json::parse(tiny);
    for (const nlohmann::json& bad :
         {nlohmann::json(0), nlohmann::json(2.5), nlohmann::json("4")}) {
        nlohmann::json r  = base;
        r["regcap_turns"] = bad;
        test::expect_error([&] { train::parse_train_config(r.dump(), "r.json"); },
                           "regcap_turns is the number of boxes");
    }
    nlohmann::json good  = base;
    good["regcap_turns"] = 4;
    EXPECT_EQ(train::parse_train_config(good.dump(), "r.json").regcap_turns, 4);
}
