// glamm dump: every golden-named stage tensor for one input, as safetensors.
#include "cli/command.h"
#include "cli/model_options.h"
#include "io/image_file.h"
#include "model/dump.h"

#include <cstdio>
#include <sys/resource.h>

namespace glamm::cli {
namespace {

int run_dump(const std::vector<std::string>& argv) {
    auto known = model_option_names();
    known.insert(known.end(), {"image", "instruction", "answer", "box", "gen-steps", "out"});
    Args args(argv, {"timings"}, known);
    DumpRequest request;
    request.instruction = args.require("instruction");
    request.answer      = args.get_or("answer", "");
    request.gen_steps   = args.get_int("gen-steps", request.gen_steps);
    if (request.gen_steps < 0) throw UsageError("--gen-steps must be >= 0");
    for (const auto& b : args.all("box")) request.boxes.push_back(parse_box(b));
    const std::string out = args.require("out");
    const Image image     = load_image(args.require("image"));
    auto model            = GlammModel::load(model_options_from(args));
    StageTimings timings;
    const auto tensors = dump_stages(*model, image, request, &timings);
    write_tensors(out, tensors);
    std::fprintf(stderr, "wrote %zu tensors to %s\n", tensors.size(), out.c_str());
    if (args.has("timings")) {
        struct rusage usage {};
        getrusage(RUSAGE_SELF, &usage);
        std::printf("%speak RSS      %10.1f MiB\n", timings.table().c_str(), usage.ru_maxrss / 1024.0);
    }
    return kExitOk;
}

const Registrar registrar{Command{
    "dump", "write every stage's tensor (golden names) for one input, to compare with the reference",
    std::string(
        "usage: glamm dump --model DIR [--vision-tower DIR] --image IMG --instruction TEXT\n"
        "                  [--answer TEXT] [--box x1,y1,x2,y2]... [--gen-steps N] [--device D]\n"
        "                  [--dtype T] [--timings] --out FILE.safetensors\n\n"
        "Prompt = the first-turn llava_v1 prompt for TEXT; teacher-forced over prompt + answer\n"
        "(answer tokenised without BOS); greedy decoding of N steps (default 12) from the prompt.\n"
        "Tensor names, shapes and dtypes follow tests/data/golden/README.md.\n"
        "--timings prints the time of each stage and the peak resident memory.\n\n") +
        model_options_help(),
    run_dump}};

} // namespace
} // namespace glamm::cli
