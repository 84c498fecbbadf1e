#include "support/test_support.h"

#include "core/atomic_file.h"
#include "core/checkpoint.h"

#include <torch/torch.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace glamm::test {

std::string data_path(const std::string& relative) {
    return (fs::path(GLAMM_TEST_DATA_DIR) / relative).string();
}
std::string tiny_model_dir() {
    return data_path("golden/tiny/glamm");
}
std::string tiny_clip_dir() {
    return data_path("golden/tiny/clip");
}
std::string tiny_case_path(const std::string& file) {
    return data_path("golden/tiny/cases/" + file);
}
std::string bin_path(const std::string& name) {
    return (fs::path(GLAMM_BIN_DIR) / name).string();
}

namespace {

// The folders make_temp_dir made, removed when the program that made them exits (not by a forked
// child that exits: a death test's or a subprocess helper's).
class TempDirs {
public:
    void add(const fs::path& dir) {
        std::lock_guard<std::mutex> lock(mutex_);
        dirs_.push_back(dir);
    }
    ~TempDirs() {
        if (getpid() != owner_ || std::getenv("GLAMM_KEEP_TEST_DIRS")) return;
        std::error_code ec; // best effort: a folder a test left read-only stays
        for (const fs::path& dir : dirs_) fs::remove_all(dir, ec);
    }

private:
    const pid_t owner_ = getpid();
    std::mutex mutex_;
    std::vector<fs::path> dirs_;
};

TempDirs& temp_dirs() {
    static TempDirs dirs;
    return dirs;
}

} // namespace

long resident_file_kb() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("RssFile:", 0) == 0) return std::stol(line.substr(8));
    return -1;
}

std::string make_temp_dir(const std::string& tag) {
    static std::atomic<int> counter{0};
    fs::path dir =
        fs::temp_directory_path() /
        ("glamm-test-" + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(dir);
    fs::create_directories(dir);
    temp_dirs().add(dir);
    return dir.string();
}

std::map<std::string, at::Tensor> load_tensors(const std::string& path) {
    Checkpoint ckpt = Checkpoint::open(path);
    std::map<std::string, at::Tensor> out;
    for (const auto& name : ckpt.names()) out[name] = ckpt.tensor(name).clone();
    return out;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
    return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

::testing::AssertionResult close_to_reference(const std::string& name, const at::Tensor& got,
                                              const at::Tensor& ref, double rel_tol) {
    if (got.sizes() != ref.sizes())
        return ::testing::AssertionFailure()
               << name << ": shape " << got.sizes() << " vs reference " << ref.sizes();
    auto g                = got.detach().to(torch::kCPU, torch::kFloat);
    auto r                = ref.detach().to(torch::kCPU, torch::kFloat);
    const double max_ref  = r.numel() ? r.abs().max().item<double>() : 0.0;
    const double max_diff = r.numel() ? (g - r).abs().max().item<double>() : 0.0;
    const double tol      = rel_tol * std::max(1.0, max_ref);
    std::printf("  %-28s max|diff| %.3e  (tolerance %.3e, max|ref| %.3e)\n", name.c_str(), max_diff,
                tol, max_ref);
    if (!(max_diff <= tol))
        return ::testing::AssertionFailure() << name << ": max |diff| " << max_diff << " > " << tol;
    return ::testing::AssertionSuccess();
}

CommandResult run_command(const std::string& command_line) {
    const std::string dir = make_temp_dir("cmd");
    const std::string out = dir + "/out", err = dir + "/err";
    const std::string full = "(" + command_line + ") >" + out + " 2>" + err + " </dev/null";
    int status             = std::system(full.c_str());
    CommandResult result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.out       = read_file(out);
    result.err       = read_file(err);
    fs::remove_all(dir);
    return result;
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

} // namespace glamm::test
