#include "core/memory.h"

#include "core/error.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace glamm {

namespace {

constexpr int64_t kKiB = 1024;
constexpr int64_t kMB  = 1000 * 1000;

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    if (!in) return "";
    std::ostringstream os;
    os << in.rdbuf();
    return os.str();
}

// The first line of a cgroup file as a number; -1 for "max", absent or unreadable.
int64_t cgroup_value(const std::string& path) {
    std::ifstream in(path);
    std::string word;
    if (!(in >> word) || word == "max") return -1;
    try {
        return std::stoll(word);
    } catch (const std::exception&) {
        return -1;
    }
}

// The process's cgroup v2 folder ("0::/path" in /proc/self/cgroup), or "" without one.
std::string cgroup_dir() {
    std::istringstream lines(read_text("/proc/self/cgroup"));
    for (std::string line; std::getline(lines, line);)
        if (line.rfind("0::", 0) == 0) return "/sys/fs/cgroup" + line.substr(3);
    return "";
}

} // namespace

int64_t meminfo_available_bytes(const std::string& meminfo) {
    int64_t available = -1, swap_free = 0;
    std::istringstream lines(meminfo);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream fields(line);
        std::string key;
        int64_t kib = 0;
        if (!(fields >> key >> kib)) continue;
        if (key == "MemAvailable:") available = kib * kKiB;
        if (key == "SwapFree:") swap_free = kib * kKiB;
    }
    return available < 0 ? -1 : available + swap_free;
}

MemoryBudget available_memory() {
    if (const char* limit = std::getenv("GLAMM_MEMORY_LIMIT_MB")) {
        char* end         = nullptr;
        const long long n = std::strtoll(limit, &end, 10);
        if (end == limit || *end != '\0' || n < 0)
            fail("GLAMM_MEMORY_LIMIT_MB must be a number of megabytes (0: no check), got \"",
                 limit, "\"");
        if (n == 0) return {};
        return {n * kMB, "GLAMM_MEMORY_LIMIT_MB"};
    }
    MemoryBudget budget{meminfo_available_bytes(read_text("/proc/meminfo")),
                        "available memory and swap"};
    const std::string dir = cgroup_dir();
    if (!dir.empty()) {
        const int64_t max = cgroup_value(dir + "/memory.max");
        const int64_t now = cgroup_value(dir + "/memory.current");
        if (max >= 0 && now >= 0 && (budget.bytes < 0 || max - now < budget.bytes))
            budget = {std::max<int64_t>(0, max - now), "this cgroup's memory.max"};
    }
    return budget;
}

FreedMemory keep_freed_memory(FreedMemory policy) {
    if (const char* name = std::getenv("GLAMM_ALLOCATOR")) {
        const std::string text = name;
        if (text == "returned")
            policy = FreedMemory::returned;
        else if (text == "kept_up_to_32mb")
            policy = FreedMemory::kept_up_to_32mb;
        else if (text == "kept")
            policy = FreedMemory::kept;
        else
            fail("GLAMM_ALLOCATOR must be returned, kept_up_to_32mb or kept, got \"", text, "\"");
    }
    if (const char* tunables = std::getenv("GLIBC_TUNABLES");
        tunables && std::string(tunables).find("glibc.malloc.") != std::string::npos)
        return FreedMemory::returned;
#ifdef __GLIBC__
    // glibc's documented defaults (mallopt(3)); setting them ends the adaptive threshold, which is
    // what `returned` after another policy can do at best.
    constexpr int kDefaultMmapThreshold = 128 * kKiB;
    constexpr int kDefaultTrimThreshold = 128 * kKiB;
    constexpr int kDefaultMmapMax       = 65536;
    // The largest threshold glibc accepts on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX).
    constexpr int kMaxMmapThreshold = 32 * kKiB * kKiB;
    constexpr int kKeptHeapTop      = kKiB * kKiB * kKiB;
    static bool tuned               = false;
    switch (policy) {
    case FreedMemory::returned:
        if (!tuned) break; // the defaults, adaptive threshold included, are still in place
        mallopt(M_MMAP_MAX, kDefaultMmapMax);
        mallopt(M_MMAP_THRESHOLD, kDefaultMmapThreshold);
        mallopt(M_TRIM_THRESHOLD, kDefaultTrimThreshold);
        break;
    case FreedMemory::kept_up_to_32mb:
        mallopt(M_MMAP_MAX, kDefaultMmapMax);
        mallopt(M_MMAP_THRESHOLD, kMaxMmapThreshold);
        mallopt(M_TRIM_THRESHOLD, kKeptHeapTop);
        tuned = true;
        break;
    case FreedMemory::kept:
        mallopt(M_MMAP_MAX, 0);
        mallopt(M_TRIM_THRESHOLD, -1); // -1: never trim (mallopt(3))
        tuned = true;
        break;
    }
#endif
    return policy;
}

void release_free_heap() {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

std::string format_bytes(int64_t bytes) {
    char text[32];
    if (bytes >= 1000 * kMB)
        std::snprintf(text, sizeof text, "%.1f GB", double(bytes) / (1000.0 * kMB));
    else
        std::snprintf(text, sizeof text, "%lld MB", static_cast<long long>((bytes + kMB / 2) / kMB));
    return text;
}

} // namespace glamm
