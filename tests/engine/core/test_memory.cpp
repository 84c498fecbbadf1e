// The memory budget a model load is checked against: /proc/meminfo parsed, the override, and the
// byte counts messages print; what the allocator keeps of freed memory.
#include "core/error.h"
#include "core/memory.h"
#include "support/test_support.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace glamm {
namespace {

TEST(Memory, MeminfoAvailableIsMemAvailablePlusSwapFree) {
    const std::string meminfo = "MemTotal:       24576000 kB\n"
                                "MemFree:          100000 kB\n"
                                "MemAvailable:   20000000 kB\n"
                                "SwapTotal:       2000000 kB\n"
                                "SwapFree:        1500000 kB\n";
    EXPECT_EQ(meminfo_available_bytes(meminfo), (20000000LL + 1500000LL) * 1024);
    EXPECT_EQ(meminfo_available_bytes("MemAvailable: 4 kB\n"), 4096); // no swap line
    EXPECT_EQ(meminfo_available_bytes("MemTotal: 4 kB\nMemFree: 1 kB\n"), -1);
}

TEST(Memory, TheOverrideReplacesWhatTheSystemSays) {
    {
        test::ScopedEnv limit("GLAMM_MEMORY_LIMIT_MB", "1500");
        const MemoryBudget budget = available_memory();
        EXPECT_EQ(budget.bytes, 1500LL * 1000 * 1000);
        EXPECT_EQ(budget.source, "GLAMM_MEMORY_LIMIT_MB");
    }
    {
        test::ScopedEnv limit("GLAMM_MEMORY_LIMIT_MB", "0"); // no check
        EXPECT_EQ(available_memory().bytes, -1);
    }
    {
        test::ScopedEnv limit("GLAMM_MEMORY_LIMIT_MB", "12GB");
        EXPECT_THROW(available_memory(), Error);
    }
    EXPECT_GT(available_memory().bytes, 0); // this machine's /proc/meminfo
}

TEST(Memory, BytesAsPeopleReadThem) {
    EXPECT_EQ(format_bytes(0), "0 MB");
    EXPECT_EQ(format_bytes(812'400'000), "812 MB");
    EXPECT_EQ(format_bytes(999'400'000), "999 MB");
    EXPECT_EQ(format_bytes(1'000'000'000), "1.0 GB");
    EXPECT_EQ(format_bytes(27'040'000'000), "27.0 GB");
}

#ifdef __GLIBC__
constexpr size_t kMiB = 1024 * 1024;

// Called through volatile pointers: the compiler may not drop a malloc whose block is only freed.
void* (*volatile allocate)(size_t) = std::malloc;
void (*volatile release)(void*)    = std::free;

// Whether malloc maps a block of `bytes` on its own (rather than serving it from its heap), with
// the heap's free top given back first so that it cannot serve the block by chance.
bool block_is_mapped(size_t bytes) {
    release_free_heap();
    const size_t before = mallinfo2().hblkhd;
    void* block         = allocate(bytes);
    const bool mapped   = mallinfo2().hblkhd >= before + bytes;
    release(block);
    return mapped;
}

TEST(Memory, KeptUpTo32MbServesSmallerBlocksFromTheHeapAndMapsLargerOnes) {
    ASSERT_TRUE(block_is_mapped(16 * kMiB)); // glibc's default threshold: 128 KiB
    EXPECT_EQ(keep_freed_memory(FreedMemory::kept_up_to_32mb), FreedMemory::kept_up_to_32mb);
    EXPECT_FALSE(block_is_mapped(16 * kMiB));
    EXPECT_TRUE(block_is_mapped(64 * kMiB));
    EXPECT_EQ(keep_freed_memory(FreedMemory::returned), FreedMemory::returned);
    EXPECT_TRUE(block_is_mapped(16 * kMiB));
}

TEST(Memory, KeptServesEveryBlockFromTheHeapAndKeepsItUntilReleased) {
    EXPECT_EQ(keep_freed_memory(FreedMemory::kept), FreedMemory::kept);
    EXPECT_FALSE(block_is_mapped(64 * kMiB));
    void* block = allocate(64 * kMiB);
    std::memset(block, 1, 64 * kMiB);
    const size_t heap = mallinfo2().arena;
    release(block);
    EXPECT_EQ(mallinfo2().arena, heap); // not trimmed
    EXPECT_GE(mallinfo2().fordblks, 64 * kMiB);
    release_free_heap();
    EXPECT_LE(mallinfo2().arena + 60 * kMiB, heap); // less the heap's top pad
    keep_freed_memory(FreedMemory::returned);
}

TEST(Memory, TheEnvironmentOverridesThePolicyAndTunablesStayInCharge) {
    {
        test::ScopedEnv allocator("GLAMM_ALLOCATOR", "kept");
        EXPECT_EQ(keep_freed_memory(FreedMemory::kept_up_to_32mb), FreedMemory::kept);
        EXPECT_FALSE(block_is_mapped(64 * kMiB));
    }
    {
        test::ScopedEnv allocator("GLAMM_ALLOCATOR", "returned");
        EXPECT_EQ(keep_freed_memory(FreedMemory::kept), FreedMemory::returned);
        EXPECT_TRUE(block_is_mapped(16 * kMiB));
    }
    {
        test::ScopedEnv allocator("GLAMM_ALLOCATOR", "jemalloc");
        EXPECT_THROW(keep_freed_memory(FreedMemory::kept), Error);
    }
    test::ScopedEnv tunables("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0");
    EXPECT_EQ(keep_freed_memory(FreedMemory::kept), FreedMemory::returned);
    EXPECT_TRUE(block_is_mapped(16 * kMiB)); // not kept: the tunables' settings stand
}
#endif

} // namespace
} // namespace glamm
