// Options every model-using subcommand shares (--model, --vision-tower, --device, --dtype,
// --quantize, --threads) and the progress line they print while loading.
#pragma once

#include "cli/command.h"
#include "session.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace glamm::cli {

// The option names, to list as known in Args.
const std::vector<std::string>& model_option_names();
// Help text for them.
const char* model_options_help();
// Builds ModelOptions from parsed arguments; `model_dir` overrides --model (inspect's positional).
ModelOptions model_options_from(const Args& args, const std::string& model_dir = "");
// Loads the model, stopping between two tensors once `interrupted` is set (Ctrl-C / SIGTERM):
// null then, after saying so on stderr.
std::shared_ptr<const Model> load_model_unless_interrupted(ModelOptions options,
                                                           const std::atomic<bool>& interrupted);
// Parses "x1,y1,x2,y2"; throws UsageError.
Box parse_box(const std::string& text);

} // namespace glamm::cli
