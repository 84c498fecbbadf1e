// The `glamm` CLI: subcommands register themselves here; main() dispatches.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace glamm::cli {

// Exit codes shared by every subcommand (listed by `glamm --help`).
enum ExitCode : int {
    kExitOk        = 0,
    kExitFailure   = 1, // the engine reported an error (bad model, bad image, ...)
    kExitUsage     = 2, // bad command line
    kExitCancelled = 3, // interrupted (Ctrl-C); partial results were written
};

// A parsed command line: --key value / --flag options (repeatable) and positional arguments.
class Args {
public:
    // `flags` are options that take no value. Throws UsageError on an unknown option when
    // `known` is non-empty.
    Args(const std::vector<std::string>& argv, const std::vector<std::string>& flags,
         const std::vector<std::string>& known);

    bool has(const std::string& key) const { return values_.count(key) != 0; }
    std::optional<std::string> get(const std::string& key) const;
    std::string get_or(const std::string& key, const std::string& fallback) const;
    // Throws UsageError naming the option when it is absent.
    std::string require(const std::string& key) const;
    std::vector<std::string> all(const std::string& key) const;
    int64_t get_int(const std::string& key, int64_t fallback) const;
    // The same, and a UsageError naming the option when the value is outside [min, max] (an
    // option read into an `int` passes kIntMax, so nothing is narrowed silently).
    int64_t get_int(const std::string& key, int64_t fallback, int64_t min, int64_t max) const;
    double get_double(const std::string& key, double fallback) const;
    const std::vector<std::string>& positional() const { return positional_; }

private:
    std::map<std::string, std::vector<std::string>> values_;
    std::vector<std::string> positional_;
};

// --temperature (>= 0; default 0, greedy) and --top-p (in (0, 1]; default 1), or a UsageError
// naming the option.
void read_sampling(const Args& args, double& temperature, double& top_p);

// The largest value of an option read into an `int`.
constexpr int64_t kIntMax = std::numeric_limits<int>::max();

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Command {
    std::string name;
    std::string summary; // one line for `glamm --help`
    std::string usage;   // full text for `glamm NAME --help`
    std::function<int(const std::vector<std::string>& argv)> run;
};

// Adds a command at static-initialisation time: `static Registrar r{Command{...}};`.
struct Registrar {
    explicit Registrar(Command command);
};
const std::map<std::string, Command>& commands();

} // namespace glamm::cli
