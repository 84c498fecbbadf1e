// Where the bundled GLaMM-Shapes model lives (engine/session.h default_model_dir).
#include "session.h"

#include <cstdlib>
#include <filesystem>

namespace fs = std::filesystem;

namespace glamm {

namespace {

// The release folder inside resources/models (or its installed copy).
constexpr char kDefaultModelSubdir[] = "glamm-shapes/glamm";

bool is_model_folder(const fs::path& dir) {
    std::error_code ec;
    return fs::is_regular_file(dir / "config.json", ec);
}

} // namespace

std::string default_model_dir() {
    std::vector<fs::path> candidates;
    if (const char* env = std::getenv("GLAMM_DEFAULT_MODEL"); env && *env)
        candidates.emplace_back(env);
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec)
        candidates.push_back(exe.parent_path().parent_path() / "share" / "glamm-studio" / "models" /
                             kDefaultModelSubdir);
#ifdef GLAMM_PKGDATADIR
    candidates.push_back(fs::path(GLAMM_PKGDATADIR) / "models" / kDefaultModelSubdir);
#endif
#ifdef GLAMM_SOURCE_MODELS_DIR
    candidates.push_back(fs::path(GLAMM_SOURCE_MODELS_DIR) / kDefaultModelSubdir);
#endif
    for (const auto& dir : candidates)
        if (is_model_folder(dir)) return dir.lexically_normal().string();
    return "";
}

} // namespace glamm
