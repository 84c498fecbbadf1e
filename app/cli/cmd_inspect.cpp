// glamm inspect: load a release strictly and print what it is.
#include "cli/command.h"
#include "cli/model_options.h"
#include "model/glamm_model.h"

#include <cstdio>

namespace glamm::cli {
namespace {

int run_inspect(const std::vector<std::string>& argv) {
    Args args(argv, {}, model_option_names());
    if (args.positional().size() > 1) throw UsageError("inspect takes one model folder");
    // MODEL_DIR, else --model, else the bundled model (as every command).
    const std::string dir = args.positional().empty() ? "" : args.positional()[0];
    auto model            = GlammModel::load(model_options_from(args, dir));
    std::printf("%s", model->describe().c_str());
    return kExitOk;
}

const Registrar registrar{Command{
    "inspect",
    "load a GLaMM release strictly; print its config, parameters, dtypes and special ids",
    std::string(
        "usage: glamm inspect [MODEL_DIR] [--vision-tower DIR] [--device D] [--dtype T]\n\n"
        "Loads every tensor of the release and of its vision tower, checking names, shapes\n"
        "and dtypes against config.json; prints one line per component. Without MODEL_DIR\n"
        "(or --model): the bundled GLaMM-Shapes.\n\n") +
        model_options_help(),
    run_inspect}};

} // namespace
} // namespace glamm::cli
