// glamm bench: per-stage timings against the machine's own limits, optionally with GLaMM's own
// (cache-less) decoding for a ratio; table on stdout, JSON with --json.
#include "cli/command.h"
#include "cli/model_options.h"
#include "core/atomic_file.h"
#include "io/image_file.h"
#include "model/bench.h"

#include <cstdio>

namespace glamm::cli {
namespace {

int run_bench_command(const std::vector<std::string>& argv) {
    auto known = model_option_names();
    known.insert(known.end(), {"image", "tokens", "prompt-tokens", "warmup", "repeat", "json",
                               "matmul-size", "copy-mib", "clip", "sam"});
    Args args(argv, {"reference"}, known);
    BenchOptions options;
    options.tokens        = args.get_int("tokens", options.tokens);
    options.prompt_tokens = args.get_int("prompt-tokens", options.prompt_tokens);
    options.warmup        = static_cast<int>(args.get_int("warmup", options.warmup, 0, kIntMax));
    options.repeat        = static_cast<int>(args.get_int("repeat", options.repeat, 1, kIntMax));
    options.reference     = args.has("reference");
    options.matmul_size   = args.get_int("matmul-size", options.matmul_size);
    options.copy_mib      = args.get_int("copy-mib", options.copy_mib);
    if (options.tokens < 1) throw UsageError("--tokens must be at least 1");
    if (options.repeat < 1 || options.warmup < 0) throw UsageError("--repeat >= 1, --warmup >= 0");
    if (options.matmul_size < 1 || options.copy_mib < 1)
        throw UsageError("--matmul-size and --copy-mib must be positive");
    Image image;
    if (args.has("image")) image = load_image(args.require("image"));

    BenchResult result;
    if (args.has("clip") || args.has("sam")) {
        if (args.has("model")) throw UsageError("give --model, or --clip/--sam, not both");
        result =
            run_encoder_bench(args.get_or("clip", ""), args.get_or("sam", ""), image,
                              args.get_or("device", "cpu"), args.get_or("dtype", "f32"),
                              static_cast<int>(args.get_int("threads", 0, 0, kIntMax)), options);
    } else {
        auto model = GlammModel::load(model_options_from(args));
        result     = run_bench(*model, image, options);
    }
    std::printf("%s", result.table().c_str());
    if (args.has("json")) write_file_atomic(args.require("json"), result.to_json());
    return kExitOk;
}

const Registrar registrar{Command{
    "bench", "time every stage against the machine's measured limits (JSON + table)",
    std::string(
        "usage: glamm bench --model DIR [--vision-tower DIR] [--image IMG] [--tokens N]\n"
        "                   [--prompt-tokens N] [--warmup 1] [--repeat 3] [--reference]\n"
        "                   [--device D] [--dtype T] [--threads N] [--json FILE]\n"
        "                   [--matmul-size 4096] [--copy-mib 512]\n"
        "       glamm bench --clip DIR [--sam DIR] ...   (the vision encoders alone)\n\n"
        "Stages: preprocess, clip, region (one box), prefill (to the first token), decode (N - 1\n"
        "steps with the KV cache; EOS ignored, N = --tokens, default 100), sam_encoder,\n"
        "mask_decoder and postprocess (one mask). Min and median over --repeat runs after\n"
        "--warmup. Measured in the same run: bf16/f32 matmul GFLOP/s (n = --matmul-size) and copy\n"
        "GB/s; each stage's bound: prefill, CLIP and SAM = FLOPs / matmul rate, decode = weight\n"
        "bytes / (copy GB/s / 2). --reference also runs GLaMM's algorithm (no KV cache: the whole\n"
        "sequence again for every token) on the same weights and reports the ratio and whether "
        "the\n"
        "greedy ids agree. Without --image a synthetic 640x480 image is used.\n"
        "--sam DIR: a SAM checkpoint folder (image_encoder.* keys, ViT-H).\n\n") +
        model_options_help(),
    run_bench_command}};

} // namespace
} // namespace glamm::cli
