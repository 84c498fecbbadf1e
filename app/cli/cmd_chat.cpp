// glamm chat: a read-eval-print loop over one Session. Lines from stdin are questions about the
// current image (streamed to stdout) or commands: /image PATH, /box x1,y1,x2,y2, /reset,
// /save DIR, /help, /quit.
#include "cli/command.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "io/image_file.h"
#include "io/result_writer.h"
#include "session.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <unistd.h>

namespace glamm::cli {
namespace {

std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_at_prompt{false};
// Ctrl-C at the prompt leaves at once (nothing is being written); while an answer is written it
// stops that answer; during a command it leaves once the command is done, so no file is left
// half written (/image's encode stops between two encoder layers).
void on_sigint(int) {
    if (g_at_prompt) _exit(kExitCancelled);
    g_interrupted = true;
}

const char* kChatHelp =
    "commands:\n"
    "  /image PATH           open an image (starts a new conversation)\n"
    "  /box x1,y1,x2,y2      queue a box (image pixels) for the next question; the question's\n"
    "                        <bbox> tokens take the boxes in order, or \"region1 <bbox>\", ... is\n"
    "                        appended when it has none\n"
    "  /reset                forget the conversation (keeps the image)\n"
    "  /save DIR             write the last answer: result.json, overlay.png, mask_NNN.png\n"
    "  /help                 this list\n"
    "  /quit                 leave (so does end of input)\n"
    "any other line is a question about the current image.\n";

std::string trim(const std::string& s) {
    const size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    const size_t e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

int run_chat(const std::vector<std::string>& argv) {
    auto known = model_option_names();
    known.insert(known.end(), {"image", "max-new-tokens", "temperature", "top-p", "seed"});
    Args args(argv, {"labelme"}, known);
    GenerationSettings generation;
    generation.max_new_tokens = static_cast<int>(args.get_int("max-new-tokens", 512, 1, kIntMax));
    read_sampling(args, generation.temperature, generation.top_p);
    generation.seed           = static_cast<uint64_t>(args.get_int("seed", 0));

    auto model = Model::load(model_options_from(args));
    Session session(model);
    std::optional<Image> image;
    std::string image_path;
    std::vector<Box> pending_boxes;
    std::optional<GroundedAnswer> last;
    const bool interactive = isatty(STDIN_FILENO);

    auto open_image = [&](const std::string& path) {
        Image loaded = load_image(path);
        session.set_image(loaded, [] { return g_interrupted.load(); });
        image      = std::move(loaded);
        image_path = path;
        pending_boxes.clear();
        last.reset();
        std::fprintf(stderr, "image %s: %lldx%lld\n", path.c_str(),
                     static_cast<long long>(image->width), static_cast<long long>(image->height));
    };
    if (auto path = args.get("image")) open_image(*path);

    std::signal(SIGINT, on_sigint);
    Callbacks callbacks;
    callbacks.on_token = [](const std::string& delta) {
        std::fwrite(delta.data(), 1, delta.size(), stdout);
        std::fflush(stdout);
    };
    callbacks.should_abort = [] { return g_interrupted.load(); };

    if (interactive) std::fprintf(stderr, "%s", kChatHelp);
    std::string line;
    int failures = 0;
    while (true) {
        if (interactive) std::fprintf(stderr, "> ");
        g_at_prompt    = true;
        const bool got = static_cast<bool>(std::getline(std::cin, line));
        g_at_prompt    = false;
        if (!got) break;
        g_interrupted = false; // a Ctrl-C now is about this line
        line = trim(line);
        if (line.empty()) continue;
        try {
            if (line[0] == '/') {
                const size_t space        = line.find(' ');
                const std::string command = line.substr(0, space);
                const std::string rest = space == std::string::npos ? "" : trim(line.substr(space));
                if (command == "/quit" || command == "/exit") break;
                if (command == "/help") {
                    std::fprintf(stderr, "%s", kChatHelp);
                } else if (command == "/image") {
                    if (rest.empty()) fail("/image needs a path");
                    open_image(rest);
                } else if (command == "/box") {
                    pending_boxes.push_back(parse_box(rest));
                    std::fprintf(stderr, "box %zu queued for the next question\n",
                                 pending_boxes.size());
                } else if (command == "/reset") {
                    session.reset();
                    pending_boxes.clear();
                    last.reset();
                    std::fprintf(stderr, "conversation reset\n");
                } else if (command == "/save") {
                    if (rest.empty()) fail("/save needs a folder");
                    if (!last || !image) fail("nothing to save yet: ask a question first");
                    write_result(rest, *image, *last, model->model_dir(), image_path,
                                 args.has("labelme"));
                    std::fprintf(stderr, "wrote %s/result.json, overlay.png and %zu mask(s)\n",
                                 rest.c_str(), last->masks.size());
                } else {
                    fail("unknown command ", command, " (try /help)");
                }
                if (g_interrupted) {
                    std::fprintf(stderr, "interrupted\n");
                    return kExitCancelled;
                }
                continue;
            }
            if (!image) fail("no image yet: open one with /image PATH");
            Request request;
            request.task       = Task::Chat;
            request.text       = line;
            request.boxes      = pending_boxes;
            request.generation = generation;
            GroundedAnswer answer = session.ask(request, callbacks);
            pending_boxes.clear();
            std::printf("\n");
            for (const auto& p : answer.phrases)
                std::printf("  [%s] -> mask %d\n", p.text.c_str(), p.mask);
            std::fflush(stdout);
            if (answer.cancelled)
                std::fprintf(stderr,
                             "(cancelled: the partial answer is not part of the conversation)\n");
            last = std::move(answer);
        } catch (const Cancelled&) { // Ctrl-C while /image encodes: leave, as after a command
            std::fprintf(stderr, "interrupted\n");
            return kExitCancelled;
        } catch (const UsageError& e) {
            ++failures;
            std::fprintf(stderr, "error: %s\n", e.what());
        } catch (const std::exception& e) {
            ++failures;
            std::fprintf(stderr, "error: %s\n", e.what());
        }
    }
    // Input that ended with errors (a script) reports them in the exit code.
    return failures != 0 && !interactive ? kExitFailure : kExitOk;
}

const Registrar chat{Command{
    "chat", "interactive conversation about an image (/image, /box, /reset, /save)",
    std::string("usage: glamm chat --model DIR [--image IMG] [options] < questions\n\n"
                "A conversation with GLaMM: each line read from stdin is a question about the\n"
                "current image (answers stream to stdout, earlier turns stay in context), or a\n"
                "command.\n\n") +
        kChatHelp + "\noptions:\n" + model_options_help() +
        "  --image IMG           the first image\n"
        "  --max-new-tokens N    per answer (default 512)\n"
        "  --temperature T       0 (default) = greedy\n"
        "  --top-p P             nucleus sampling mass (with --temperature)\n"
        "  --seed S              sampling seed\n"
        "  --labelme             /save also writes labelme.json\n\n"
        "Errors in a line are reported on stderr and the loop goes on; when stdin is not a\n"
        "terminal, the exit code is 1 if any line failed.\n",
    run_chat}};

} // namespace
} // namespace glamm::cli
