// glamm train: trains a GLaMM of small widths from scratch on synthetic scenes (GLaMM-Shapes;
// docs/training.md), with GLaMM's losses, into the release layout the engine loads.
#include "cli/command.h"
#include "train/trainer.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>

namespace glamm::cli {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

int run_train(const std::vector<std::string>& argv) {
    Args args(argv, {"resume", "quiet", "print-recipe"},
              {"config", "out", "steps", "threads", "device", "time-limit", "init", "init-heads"});
    if (!args.positional().empty()) throw UsageError("unexpected argument " + args.positional()[0]);
    if (args.has("print-recipe")) {
        // The recipe as trained (its base chain merged in), checked, on stdout; nothing is run.
        const std::string path = args.require("config");
        const std::string text = train::resolve_recipe(path);
        train::parse_train_config(text, path);
        std::printf("%s\n", text.c_str());
        return kExitOk;
    }
    train::TrainConfig config = train::load_train_config(args.require("config"));
    if (args.has("threads"))
        config.threads = static_cast<int>(args.get_int("threads", 0, 0, kIntMax));
    if (args.has("device")) config.device = args.require("device");
    if (args.has("init")) config.init = args.require("init");
    if (args.has("init-heads")) config.init_heads = args.require("init-heads");
    const int64_t max_steps = args.get_int("steps", 0);
    if (max_steps < 0) throw UsageError("--steps must be positive");
    const bool quiet         = args.has("quiet");
    const int64_t time_limit = args.get_int("time-limit", 0);
    if (time_limit < 0) throw UsageError("--time-limit must be positive (seconds)");
    const auto started = std::chrono::steady_clock::now();

    // Ctrl-C, or SIGTERM (a scheduler pre-empting the job), stops after the current step with a
    // checkpoint and the release there, and exits 3; --resume goes on from it.
    std::signal(SIGINT, [](int) { g_interrupted = 1; });
    std::signal(SIGTERM, [](int) { g_interrupted = 1; });
    train::TrainCallbacks callbacks;
    callbacks.should_stop = [&] {
        const auto elapsed = std::chrono::steady_clock::now() - started;
        return g_interrupted != 0 ||
               (time_limit > 0 && elapsed >= std::chrono::seconds(time_limit));
    };
    callbacks.on_message = [](const std::string& m) { std::fprintf(stderr, "%s\n", m.c_str()); };
    callbacks.on_step    = [&](const train::StepLog& s) {
        if (quiet || s.step % config.log_every != 0) return;
        // The losses that are not GLaMM's, those the recipe has.
        char extra[96] = "";
        int used       = 0;
        auto add       = [&](double weight, const char* name, double value) {
            if (weight > 0)
                used += std::snprintf(extra + used, sizeof extra - size_t(used), "  %s %.4f", name,
                                               value);
        };
        add(config.loss.patch, "patch", s.patch);
        add(config.loss.sam_patch, "sam_patch", s.sam_patch);
        add(config.loss.region, "region", s.region);
        add(config.loss.seg, "seg", s.seg);
        add(config.loss.object, "object", s.object);
        std::fprintf(stderr,
                        "step %lld/%lld  loss %.4f  ce %.4f  bce %.4f  dice %.4f%s  lr %.2e  %.2f s\n",
                        static_cast<long long>(s.step), static_cast<long long>(config.steps), s.loss,
                        s.ce, s.bce, s.dice, extra, s.learning_rate, s.seconds);
    };
    train::train(config, args.require("out"), args.has("resume"), callbacks, max_steps);
    std::printf("model written to %s/glamm (vision tower %s/clip)\n", args.require("out").c_str(),
                args.require("out").c_str());
    if (g_interrupted) {
        std::fprintf(stderr, "interrupted: --resume goes on from the checkpoint just written\n");
        return kExitCancelled;
    }
    return kExitOk; // finished, or stopped by --steps / --time-limit
}

const Registrar registrar{Command{
    "train", "train GLaMM-Shapes (a small GLaMM) from scratch on synthetic scenes",
    "usage: glamm train --config RECIPE.json --out DIR [--resume] [--steps N] [--threads N]\n"
    "                   [--device cpu|cuda] [--time-limit SECONDS] [--init DIR]\n"
    "                   [--init-heads DIR] [--quiet]\n"
    "       glamm train --config RECIPE.json --print-recipe\n\n"
    "Trains the tokenizer (sentencepiece) on the scenes' text, then the whole GLaMM with\n"
    "next-token cross-entropy + mask BCE + DICE. Writes DIR/glamm and DIR/clip (the release\n"
    "layout; `glamm gcg --model DIR/glamm` runs it), DIR/checkpoints/step-N, DIR/loss.csv and\n"
    "DIR/loss.svg. --resume continues from the newest checkpoint; --steps N runs at most N\n"
    "steps now (the schedule still follows the recipe). Ctrl-C or SIGTERM (exit code 3), or\n"
    "--time-limit seconds after the start (exit code 0), stops after the current step and\n"
    "writes a checkpoint and the release there.\n"
    "--init DIR starts from the weights and tokenizer of DIR/glamm + DIR/clip (a release, a\n"
    "run or a checkpoint, whose training-only heads come too) instead of a fresh\n"
    "initialisation: a second stage with its own schedule; --init-heads DIR takes those heads\n"
    "from DIR instead (a release has none: resources/train/heads/ keeps the shipped model's).\n"
    "--print-recipe checks the recipe and prints it as trained (its base chain merged in),\n"
    "and trains nothing.\n"
    "Recipe format: docs/training.md (resources/train/glamm-shapes.json is the shipped one).",
    run_train}};

} // namespace
} // namespace glamm::cli
