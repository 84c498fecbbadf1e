#include "cli/command.h"

#include <algorithm>

namespace glamm::cli {

namespace {
std::map<std::string, Command>& registry() {
    static std::map<std::string, Command> r;
    return r;
}
} // namespace

Registrar::Registrar(Command command) { registry()[command.name] = std::move(command); }
const std::map<std::string, Command>& commands() { return registry(); }

Args::Args(const std::vector<std::string>& argv, const std::vector<std::string>& flags,
           const std::vector<std::string>& known) {
    auto contains = [](const std::vector<std::string>& v, const std::string& s) {
        return std::find(v.begin(), v.end(), s) != v.end();
    };
    for (size_t i = 0; i < argv.size(); ++i) {
        const std::string& a = argv[i];
        if (a.size() > 2 && a.rfind("--", 0) == 0) {
            std::string key = a.substr(2), value;
            const auto eq   = key.find('=');
            const bool inline_value = eq != std::string::npos;
            if (inline_value) {
                value = key.substr(eq + 1);
                key   = key.substr(0, eq);
            }
            if (!known.empty() && !contains(known, key) && !contains(flags, key))
                throw UsageError("unknown option --" + key);
            if (contains(flags, key)) {
                values_[key].push_back(inline_value ? value : "1");
                continue;
            }
            if (!inline_value) {
                if (i + 1 >= argv.size()) throw UsageError("option --" + key + " needs a value");
                value = argv[++i];
            }
            values_[key].push_back(value);
        } else {
            positional_.push_back(a);
        }
    }
}

std::optional<std::string> Args::get(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) return std::nullopt;
    return it->second.back();
}

std::string Args::get_or(const std::string& key, const std::string& fallback) const {
    auto v = get(key);
    return v ? *v : fallback;
}

std::string Args::require(const std::string& key) const {
    auto v = get(key);
    if (!v) throw UsageError("missing required option --" + key);
    return *v;
}

std::vector<std::string> Args::all(const std::string& key) const {
    auto it = values_.find(key);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int64_t Args::get_int(const std::string& key, int64_t fallback) const {
    auto v = get(key);
    if (!v) return fallback;
    try {
        size_t used = 0;
        int64_t n   = std::stoll(*v, &used);
        if (used != v->size()) throw std::invalid_argument("trailing");
        return n;
    } catch (const std::exception&) {
        throw UsageError("--" + key + " expects an integer, got \"" + *v + "\"");
    }
}

int64_t Args::get_int(const std::string& key, int64_t fallback, int64_t min, int64_t max) const {
    const int64_t n = get_int(key, fallback);
    if (n < min || n > max)
        throw UsageError("--" + key + " must be in [" + std::to_string(min) + ", " +
                         std::to_string(max) + "], got " + std::to_string(n));
    return n;
}

void read_sampling(const Args& args, double& temperature, double& top_p) {
    temperature = args.get_double("temperature", 0.0);
    top_p       = args.get_double("top-p", 1.0);
    if (!(temperature >= 0)) throw UsageError("--temperature must be >= 0");
    if (!(top_p > 0 && top_p <= 1)) throw UsageError("--top-p must be in (0, 1]");
}

double Args::get_double(const std::string& key, double fallback) const {
    auto v = get(key);
    if (!v) return fallback;
    try {
        size_t used = 0;
        double d    = std::stod(*v, &used);
        if (used != v->size()) throw std::invalid_argument("trailing");
        return d;
    } catch (const std::exception&) {
        throw UsageError("--" + key + " expects a number, got \"" + *v + "\"");
    }
}

} // namespace glamm::cli
