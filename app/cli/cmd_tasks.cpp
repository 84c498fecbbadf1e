// glamm gcg | segment | region | caption: one question about one image, streamed to stdout,
// results written to --out.
#include "cli/command.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "io/image_file.h"
#include "io/result_writer.h"
#include "session.h"

#include <atomic>
#include <csignal>
#include <cstdio>

namespace glamm::cli {
namespace {

std::atomic<bool> g_interrupted{false};
void on_sigint(int) {
    g_interrupted = true;
}

const char* kTaskOptionsHelp =
    "  --image IMG           the image (PNG, JPEG, ...)\n"
    "  --box x1,y1,x2,y2     a box in image pixels (repeatable; one per <bbox>)\n"
    "  --prompt TEXT         override the task's instruction\n"
    "  --answer TEXT         teacher-forced: masks for the [SEG]s of TEXT, no generation\n"
    "  --max-new-tokens N    default 512\n"
    "  --temperature T       0 (default) = greedy, as the reference\n"
    "  --top-p P             nucleus sampling mass (with --temperature)\n"
    "  --seed S              sampling seed\n"
    "  --out DIR             write result.json, overlay.png, mask_NNN.png (default: glamm-out)\n"
    "  --labelme             also write labelme.json\n"
    "  --timings             print the time of each stage\n"
    "  --embedding-cache DIR keep the image's CLIP/SAM encodings in DIR and reuse them\n";

int run_task(Task task, const std::vector<std::string>& argv) {
    auto known = model_option_names();
    known.insert(known.end(), {"image", "box", "prompt", "answer", "max-new-tokens", "temperature",
                               "top-p", "seed", "out", "embedding-cache"});
    Args args(argv, {"labelme", "timings"}, known);
    Request request;
    request.task = task;
    request.text = args.get_or("prompt", "");
    // segment takes its expression as --prompt or as the one positional argument.
    const auto& positional = args.positional();
    if (task == Task::ReferringSegmentation && request.text.empty() && positional.size() == 1)
        request.text = positional[0];
    else if (!positional.empty())
        throw UsageError("unexpected argument \"" + positional[0] + "\"");
    if (task == Task::ReferringSegmentation &&
        request.text.find_first_not_of(" \t") == std::string::npos)
        throw UsageError("segment needs an expression: --prompt TEXT (or TEXT as the argument)");
    for (const auto& b : args.all("box")) request.boxes.push_back(parse_box(b));
    request.generation.max_new_tokens =
        static_cast<int>(args.get_int("max-new-tokens", 512, 1, kIntMax));
    read_sampling(args, request.generation.temperature, request.generation.top_p);
    request.generation.seed           = static_cast<uint64_t>(args.get_int("seed", 0));
    const std::string image_path      = args.require("image");
    const std::string out_dir         = args.get_or("out", "glamm-out");

    // Ctrl-C / SIGTERM from here on (a large model loads for minutes): stop, exit 3, write
    // nothing unless an answer has begun (then the partial answer is written).
    std::signal(SIGINT, on_sigint);
    std::signal(SIGTERM, on_sigint);
    const Image image = load_image(image_path);
    const auto model  = load_model_unless_interrupted(model_options_from(args), g_interrupted);
    if (!model) return kExitCancelled;
    Session session(model);
    session.set_embedding_cache(args.get_or("embedding-cache", ""));
    const auto interrupted = [] { return g_interrupted.load(); };
    try {
        session.set_image(image, interrupted);
    } catch (const Cancelled&) {
        std::fprintf(stderr, "interrupted\n");
        return kExitCancelled;
    }
    Callbacks callbacks;
    callbacks.on_token = [](const std::string& delta) {
        std::fwrite(delta.data(), 1, delta.size(), stdout);
        std::fflush(stdout);
    };
    callbacks.should_abort = interrupted;
    GroundedAnswer answer;
    if (auto forced = args.get("answer")) {
        answer = session.score(request, *forced, callbacks);
        std::printf("%s", answer.text.c_str());
    } else {
        answer = session.ask(request, callbacks);
    }
    std::printf("\n");
    if (answer.cancelled && answer.timings.generated_tokens == 0 && answer.masks.empty()) {
        std::fprintf(stderr, "interrupted before the answer began: nothing written\n");
        return kExitCancelled;
    }
    for (const auto& p : answer.phrases) std::printf("  [%s] -> mask %d\n", p.text.c_str(), p.mask);
    write_result(out_dir, image, answer, model->model_dir(), image_path, args.has("labelme"));
    std::fprintf(stderr, "wrote %s/result.json, overlay.png and %zu mask(s)%s\n", out_dir.c_str(),
                 answer.masks.size(), answer.cancelled ? " (cancelled: partial answer)" : "");
    if (args.has("timings")) {
        const Timings& t = answer.timings;
        std::printf(
            "preprocess %.1f ms, clip %.1f ms, sam encoder %.1f ms, region %.1f ms,\n"
            "prefill %.1f ms (%lld positions), decode %.1f ms (%lld tokens, %.1f ms/token),\n"
            "mask decoder %.1f ms, postprocess %.1f ms, total %.1f ms, embedding cache %.1f ms\n",
            t.preprocess_ms, t.clip_ms, t.sam_encoder_ms, t.region_ms, t.prefill_ms,
            static_cast<long long>(t.prompt_tokens), t.decode_ms,
            static_cast<long long>(t.generated_tokens),
            t.generated_tokens > 1 ? t.decode_ms / double(t.generated_tokens - 1) : 0.0,
            t.mask_decoder_ms, t.postprocess_ms, t.total_ms, t.embedding_cache_ms);
    }
    return answer.cancelled ? kExitCancelled : kExitOk;
}

std::string usage(const char* name, const char* what) {
    return std::string("usage: glamm ") + name + " --model DIR --image IMG [options]\n\n" + what +
           "\n\n" + model_options_help() + kTaskOptionsHelp;
}

const Registrar gcg{Command{
    "gcg", "grounded caption: a description with a mask per phrase",
    usage("gcg", "Grounded conversation generation with the official instruction (or --prompt)."),
    [](const std::vector<std::string>& a) { return run_task(Task::GroundedCaption, a); }}};
const Registrar segment{Command{
    "segment", "referring segmentation: \"segment EXPRESSION\"",
    usage("segment",
          "Referring segmentation; the expression (\"the red car\") is --prompt TEXT or\n"
          "the one argument: glamm segment --image IMG \"the red car\"."),
    [](const std::vector<std::string>& a) { return run_task(Task::ReferringSegmentation, a); }}};
const Registrar region{
    Command{"region", "describe the regions given with --box",
            usage("region", "Region captioning: each --box becomes a <bbox> token in order."),
            [](const std::vector<std::string>& a) { return run_task(Task::RegionCaption, a); }}};
const Registrar caption{
    Command{"caption", "a plain image description",
            usage("caption", "Image captioning with the reference instruction (or --prompt)."),
            [](const std::vector<std::string>& a) { return run_task(Task::ImageCaption, a); }}};

} // namespace
} // namespace glamm::cli
