// glamm synth: writes a GLaMM-Shapes dataset (synthetic scenes with GranD-style annotations:
// GCG ground truth, referring expressions, region captions; docs/synth.md).
#include "cli/command.h"
#include "train/synth.h"

#include <cstdio>
#include <string>

namespace glamm::cli {
namespace {

int run_synth(const std::vector<std::string>& argv) {
    Args args(argv, {"quiet"},
              {"seed", "count", "out", "min-size", "max-size", "min-objects", "min-objects-share"});
    if (!args.positional().empty()) throw UsageError("unexpected argument " + args.positional()[0]);
    synth::SynthOptions options;
    const std::string seed = args.require("seed");
    try {
        size_t used  = 0;
        options.seed = std::stoull(seed, &used);
        if (used != seed.size() || seed.front() == '-') throw std::invalid_argument(seed);
    } catch (const std::exception&) {
        throw UsageError("--seed must be a non-negative integer (got \"" + seed + "\")");
    }
    options.count       = args.get_int("count", 1);
    options.min_size    = args.get_int("min-size", options.min_size);
    options.max_size    = args.get_int("max-size", options.max_size);
    options.min_objects = args.get_int("min-objects", options.min_objects);
    options.min_objects_share = args.get_double("min-objects-share", options.min_objects_share);
    if (options.count < 1) throw UsageError("--count must be at least 1");
    if (options.min_size < 32 || options.max_size < options.min_size)
        throw UsageError("need 32 <= --min-size <= --max-size");
    if (options.min_objects < 1 || options.min_objects > synth::kMaxObjects)
        throw UsageError("--min-objects must be in [1, " + std::to_string(synth::kMaxObjects) +
                         "] (got " + std::to_string(options.min_objects) + ")");
    if (!(options.min_objects_share >= 0.0 && options.min_objects_share <= 1.0))
        throw UsageError("--min-objects-share must be in [0, 1] (got " +
                         args.get_or("min-objects-share", "") + ")");
    const std::string out = args.require("out");
    const bool quiet      = args.has("quiet");
    const auto sum        = synth::write_synth_dataset(options, out, [&](int64_t done) {
        if (!quiet && (done % 100 == 0 || done == options.count))
            std::fprintf(stderr, "\r%lld / %lld scenes", static_cast<long long>(done),
                                static_cast<long long>(options.count));
    });
    if (!quiet) std::fprintf(stderr, "\n");
    std::printf("wrote %lld images, %lld objects, %lld caption phrases, %lld referring "
                "expressions, %lld regions to %s\n",
                static_cast<long long>(sum.images), static_cast<long long>(sum.objects),
                static_cast<long long>(sum.phrases), static_cast<long long>(sum.referring),
                static_cast<long long>(sum.regions), out.c_str());
    return kExitOk;
}

const Registrar registrar{Command{
    "synth", "generate a synthetic GLaMM-Shapes dataset (scenes + GranD-style annotations)",
    "usage: glamm synth --seed S --count N --out DIR [--min-size 256] [--max-size 640] "
    "[--min-objects 1] [--min-objects-share 1] [--quiet]\n\n"
    "Writes DIR/images/*.png, DIR/annotations.json (GCG ground truth that `glamm eval score gcg\n"
    "--gt` reads, plus every scene's objects, relations, caption, referring expressions and\n"
    "regions under \"scenes\"), DIR/refseg.json, DIR/regcap.json and DIR/manifest.json.\n"
    "The same seed, count, sizes, min-objects and share give identical files. Images have the\n"
    "longer side in [min-size, max-size] and the shorter side at least min-size. Each scene\n"
    "draws between min-objects and 6 objects (fewer may show: hidden ones are dropped), so\n"
    "a higher --min-objects gives crowded scenes. With --min-objects-share P below 1, only\n"
    "that share of the scenes (picked per scene) draws so; the others are the scenes of\n"
    "--min-objects 1, so crowded scenes are mixed into the usual stream. Formats: docs/synth.md.",
    run_synth}};

} // namespace
} // namespace glamm::cli
