// How much memory the process may still take: a model load that cannot fit is refused before it
// starts, with the numbers, instead of the kernel's OOM killer ending the process minutes later.
#pragma once

#include <cstdint>
#include <string>

namespace glamm {

struct MemoryBudget {
    int64_t bytes = -1; // what may still be allocated; -1: unknown or unchecked
    std::string source; // where the figure comes from, for messages
};

// MemAvailable + SwapFree of /proc/meminfo, capped by the process's cgroup v2 limit
// (memory.max - memory.current) where it has one. GLAMM_MEMORY_LIMIT_MB=N replaces both (N
// megabytes; 0: no check).
MemoryBudget available_memory();

// Parses the text of /proc/meminfo: MemAvailable + SwapFree in bytes, -1 without MemAvailable.
int64_t meminfo_available_bytes(const std::string& meminfo);

// Bytes as people read them: "812 MB", "27.0 GB" (decimal units, as `df -H` and disk makers).
std::string format_bytes(int64_t bytes);

} // namespace glamm
