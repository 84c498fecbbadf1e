// glamm make-weights: random weights in a release's layout and sizes (no download needed for
// real-size benchmarks).
#include "cli/command.h"
#include "model/make_weights.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <unistd.h>

namespace fs = std::filesystem;

namespace glamm::cli {
namespace {

// The tokenizer fixture of the source tree, found from the executable (build*/bin/glamm) or the
// working directory; empty when neither holds it.
std::string default_tokenizer_dir(const std::string& like) {
    const std::string relative =
        like == "tiny" ? "tests/data/golden/tiny/glamm" : "tests/data/golden/llama-tokenizer";
    std::vector<fs::path> roots = {fs::current_path()};
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) roots.push_back(exe.parent_path().parent_path().parent_path());
    for (const auto& root : roots)
        if (fs::exists(root / relative / "tokenizer.model")) return (root / relative).string();
    return "";
}

int run_make_weights(const std::vector<std::string>& argv) {
    Args args(argv, {}, {"like", "out", "dtype", "seed", "tokenizer", "max-shard-mb"});
    if (!args.positional().empty()) throw UsageError("make-weights takes no positional arguments");
    MakeWeightsOptions options;
    options.like            = args.require("like");
    options.out_dir         = args.require("out");
    const std::string dtype = args.get_or("dtype", "bf16");
    if (dtype != "bf16" && dtype != "f32") throw UsageError("--dtype must be bf16 or f32");
    options.bf16           = dtype == "bf16";
    options.seed           = static_cast<uint64_t>(args.get_int("seed", 0));
    const int64_t shard_mb = args.get_int("max-shard-mb", 4096);
    if (shard_mb <= 0) throw UsageError("--max-shard-mb must be positive");
    options.max_shard_bytes = static_cast<uint64_t>(shard_mb) << 20;
    options.tokenizer_dir   = args.get_or("tokenizer", default_tokenizer_dir(options.like));
    const auto start        = std::chrono::steady_clock::now();
    options.progress        = [&](const std::string& file, uint64_t done, uint64_t total) {
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("  wrote %s (%.2f of %.2f GB, %.0f s)\n", file.c_str(), done / 1e9, total / 1e9,
                           s);
        std::fflush(stdout);
    };
    const MakeWeightsResult result = make_weights(options);
    for (const auto& folder : result.folders) std::printf("%s\n", folder.c_str());
    std::printf("%llu tensors, %.2f GB\n", static_cast<unsigned long long>(result.tensors),
                result.bytes / 1e9);
    return kExitOk;
}

const Registrar registrar{Command{
    "make-weights", "write random weights in a release's layout and sizes (for benchmarks)",
    "usage: glamm make-weights --like glamm-7b|vicuna-7b|sam-vit-h|clip-vit-l-336|tiny --out DIR\n"
    "                          [--dtype bf16|f32] [--seed S] [--tokenizer DIR] [--max-shard-mb "
    "N]\n\n"
    "glamm-7b: a GLaMM release folder (config.json with the real widths, vocab 32007, the LLaMA\n"
    "tokenizer + GLaMM's added tokens, sharded safetensors + index; bf16 except the SAM\n"
    "grounding_encoder and text_hidden_fcs in f32, as the releases) and beside it DIR-clip\n"
    "(CLIPVisionModel, ViT-L/14-336), which config.json's mm_vision_tower points to.\n"
    "tiny: the same at the widths of tests/data/golden/tiny. vicuna-7b: the LLaMA only.\n"
    "sam-vit-h: SAM ViT-H (image_encoder./prompt_encoder./mask_decoder. keys, f32).\n"
    "clip-vit-l-336: the CLIP folder only. Values: normal(0, 0.02) from a generator seeded with\n"
    "--seed (same seed, same bytes); norm scales 1, norm shifts 0. Tensors are generated and\n"
    "written one at a time. --tokenizer defaults to the source tree's test fixtures.",
    run_make_weights}};

} // namespace
} // namespace glamm::cli
