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

// What the C allocator keeps of the memory a tensor frees (LibTorch's CPU tensors come from
// malloc). glibc's defaults give blocks above a threshold back to the kernel as they are freed and
// trim the heap's top, so the next tensor of that size faults in fresh zeroed pages: on this
// project's VM they took 72 % of GLaMM-Shapes training's time, 60 % of its region encoder's first
// box and 41 % of SAM-H's encoder (docs/benchmarks.md, "Freed memory kept for reuse").
enum class FreedMemory {
    returned,        // the C library's defaults
    kept_up_to_32mb, // blocks below 32 MiB come from the heap, 1 GiB of its free top is kept;
                     // larger blocks (a big model's weights) still go back to the kernel
    kept,            // every block from the heap, never trimmed: a process that reaches the
                     // same peak again and again (training)
};

// Applies `policy` to this process (glibc; elsewhere nothing) and returns what was applied.
// GLAMM_ALLOCATOR=returned|kept_up_to_32mb|kept replaces `policy`; a GLIBC_TUNABLES that sets
// malloc options is left in charge (nothing is changed and `returned` is returned).
FreedMemory keep_freed_memory(FreedMemory policy);

// Gives the heap's free memory back to the kernel (malloc_trim), so that what this process holds
// but does not use counts as available (before a load's memory check).
void release_free_heap();

// Bytes as people read them: "812 MB", "27.0 GB" (decimal units, as `df -H` and disk makers).
std::string format_bytes(int64_t bytes);

} // namespace glamm
