#include "cli/model_options.h"

#include "core/device.h"
#include "core/error.h"

#include <cstdio>
#include <sstream>
#include <unistd.h>

namespace glamm::cli {

const std::vector<std::string>& model_option_names() {
    static const std::vector<std::string> names = {"model", "vision-tower", "device",
                                                   "dtype", "quantize",     "threads"};
    return names;
}

const char* model_options_help() {
    return "  --model DIR          GLaMM release folder (config.json, tokenizer, weights);\n"
           "                       default: the bundled GLaMM-Shapes model\n"
           "  --vision-tower DIR   CLIP ViT-L/14-336 folder (default: mm_vision_tower of "
           "config.json,\n"
           "                       relative to the model folder)\n"
           "  --device D           cpu (default), cuda, cuda:N\n"
           "  --dtype T            f32 (default), bf16, f16\n"
           "  --quantize int8      the language model's linears as int8 rows (CPU): decoding\n"
           "                       reads half the bytes of bf16; close to, not exactly, GLaMM\n"
           "  --threads N          CPU threads (default: all cores)\n";
}

ModelOptions model_options_from(const Args& args, const std::string& model_dir) {
    ModelOptions options;
    options.model_dir = model_dir.empty() ? args.get_or("model", default_model_dir()) : model_dir;
    if (options.model_dir.empty())
        throw UsageError("--model DIR is required (no bundled model was found either)");
    options.vision_tower_dir = args.get_or("vision-tower", "");
    options.device           = args.get_or("device", "cpu");
    options.dtype            = args.get_or("dtype", "f32");
    options.quantize         = args.get_or("quantize", "");
    try { // a typo is a usage error (exit 2), not a failed load
        parse_int8_quantization(options.quantize);
    } catch (const Error& e) {
        throw UsageError(std::string("--quantize: ") + e.what());
    }
    options.threads          = static_cast<int>(args.get_int("threads", 0, 0, kIntMax));
    if (isatty(STDERR_FILENO)) {
        options.on_progress = [](const std::string& stage, double fraction) {
            std::fprintf(stderr, "\r\033[K[%3d%%] %s", static_cast<int>(fraction * 100),
                         stage.c_str());
            if (fraction >= 1.0) std::fprintf(stderr, "\r\033[K");
            std::fflush(stderr);
        };
    }
    return options;
}

std::shared_ptr<const Model> load_model_unless_interrupted(ModelOptions options,
                                                           const std::atomic<bool>& interrupted) {
    options.should_abort = [&interrupted] { return interrupted.load(); };
    try {
        return Model::load(options);
    } catch (const Cancelled&) {
        std::fprintf(stderr, "interrupted while loading the model\n");
        return nullptr;
    }
}

Box parse_box(const std::string& text) {
    std::stringstream ss(text);
    Box box;
    char c1 = 0, c2 = 0, c3 = 0;
    if (!(ss >> box.x1 >> c1 >> box.y1 >> c2 >> box.x2 >> c3 >> box.y2) || c1 != ',' || c2 != ',' ||
        c3 != ',' || !(ss >> std::ws).eof())
        throw UsageError("--box expects x1,y1,x2,y2 in image pixels, got \"" + text + "\"");
    return box;
}

} // namespace glamm::cli
