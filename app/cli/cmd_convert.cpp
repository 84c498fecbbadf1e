// glamm convert: rewrite any checkpoint folder (PyTorch .bin shards or safetensors) as safetensors
// shards, so later loads map the files instead of unpickling them.
#include "cli/command.h"
#include "core/checkpoint.h"

#include <cstdio>
#include <filesystem>

namespace glamm::cli {
namespace {

int run_convert(const std::vector<std::string>& argv) {
    Args args(argv, {}, {"model", "out", "max-shard-mb", "dtype"});
    if (!args.positional().empty()) throw UsageError("convert takes no positional arguments");
    const std::string model = args.require("model");
    const std::string out   = args.require("out");
    const int64_t shard_mb  = args.get_int("max-shard-mb", 2048);
    if (shard_mb <= 0) throw UsageError("--max-shard-mb must be positive");

    const Checkpoint checkpoint = Checkpoint::open(model);
    std::printf("%s: %zu tensors in %zu %s file(s)\n", model.c_str(), checkpoint.size(),
                checkpoint.files().size(), checkpoint.format().c_str());
    ConvertOptions options;
    options.max_shard_bytes = static_cast<uint64_t>(shard_mb) << 20;
    if (args.has("dtype")) {
        const std::string d = args.require("dtype");
        if (d == "f32")
            options.float_dtype = DType::F32;
        else if (d == "f16")
            options.float_dtype = DType::F16;
        else if (d == "bf16")
            options.float_dtype = DType::BF16;
        else
            throw UsageError("--dtype must be f32, f16 or bf16 (got \"" + d + "\")");
    }
    options.progress = [&](const std::string& file, size_t done, size_t total) {
        std::printf("  wrote %s (%zu/%zu)\n", file.c_str(), done, total);
        std::fflush(stdout);
    };
    convert_checkpoint(checkpoint, out, options);
    std::printf("%s: done\n", out.c_str());
    // A folder of weights alone (a training checkpoint's glamm/ or clip/) converts to weights
    // alone: say so, rather than leave a folder that every other command refuses.
    if (std::filesystem::is_directory(model) &&
        !std::filesystem::exists(std::filesystem::path(model) / "config.json"))
        std::fprintf(stderr,
                     "note: %s has no config.json, so %s holds the weights only, not a model "
                     "folder; copy config.json (and the tokenizer files of a GLaMM folder) beside "
                     "them (a training checkpoint's are in its run's glamm/ and clip/)\n",
                     model.c_str(), out.c_str());
    return kExitOk;
}

const Registrar registrar{Command{
    "convert", "convert a checkpoint folder (.bin or safetensors) to safetensors shards",
    "usage: glamm convert --model DIR --out DIR [--max-shard-mb N] [--dtype f32|f16|bf16]\n\n"
    "Reads every tensor of DIR (pytorch_model*.bin with its index, or safetensors) and writes\n"
    "them to OUT with the same names and dtypes: model.safetensors, or\n"
    "model-0000N-of-0000M.safetensors + model.safetensors.index.json when they exceed one shard\n"
    "(--max-shard-mb, default 2048). The folder's other files (config.json, tokenizer files, ...)\n"
    "are copied. Every file is written atomically; OUT must not already hold weights.\n"
    "--dtype writes the floating-point tensors in that dtype (round to nearest) and updates\n"
    "config.json's torch_dtype; integer tensors are kept.\n"
    "PyTorch files are read with a restricted unpickler: only tensors, storages and plain\n"
    "containers can be built, so a .bin cannot run code.",
    run_convert}};

} // namespace
} // namespace glamm::cli
