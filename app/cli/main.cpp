// `glamm`: the command-line face of the engine. Each subcommand lives in its own cmd_*.cpp.
#include "cli/command.h"
#include "core/memory.h"

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

namespace {

void print_help() {
    std::printf("glamm %s: GLaMM (grounding large multimodal model) on the command line\n\n"
                "usage: glamm COMMAND [options]      glamm COMMAND --help\n\ncommands:\n",
                GLAMM_VERSION);
    for (const auto& [name, command] : glamm::cli::commands())
        std::printf("  %-12s %s\n", name.c_str(), command.summary.c_str());
    std::printf("\nexit codes: 0 success, 1 error (bad model, image or input), 2 bad command line,\n"
                "            3 cancelled (partial results written)\n");
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        print_help();
        return args.empty() ? glamm::cli::kExitUsage : glamm::cli::kExitOk;
    }
    if (args[0] == "--version") {
        std::printf("glamm %s\n", GLAMM_VERSION);
        return 0;
    }
    const auto& commands = glamm::cli::commands();
    auto it              = commands.find(args[0]);
    if (it == commands.end()) {
        std::fprintf(stderr, "glamm: unknown command \"%s\" (see glamm --help)\n", args[0].c_str());
        return glamm::cli::kExitUsage;
    }
    std::vector<std::string> rest(args.begin() + 1, args.end());
    for (const auto& a : rest)
        if (a == "--help" || a == "-h") {
            std::printf("%s\n", it->second.usage.c_str());
            return 0;
        }
    try {
        // Inference allocates tensors of the same sizes again and again (each box, each token):
        // kept in the heap instead of faulted in afresh (`glamm train` keeps every block).
        glamm::keep_freed_memory(glamm::FreedMemory::kept_up_to_32mb);
        return it->second.run(rest);
    } catch (const glamm::cli::UsageError& e) {
        std::fprintf(stderr, "glamm %s: %s\n%s\n", args[0].c_str(), e.what(), it->second.usage.c_str());
        return glamm::cli::kExitUsage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "glamm %s: error: %s\n", args[0].c_str(), e.what());
        return glamm::cli::kExitFailure;
    }
}
