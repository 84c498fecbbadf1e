// The memory budget a model load is checked against: /proc/meminfo parsed, the override, and the
// byte counts messages print.
#include "core/error.h"
#include "core/memory.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace glamm {
namespace {

// Sets GLAMM_MEMORY_LIMIT_MB for one scope.
struct MemoryLimit {
    explicit MemoryLimit(const char* value) { setenv("GLAMM_MEMORY_LIMIT_MB", value, 1); }
    ~MemoryLimit() { unsetenv("GLAMM_MEMORY_LIMIT_MB"); }
};

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
        MemoryLimit limit("1500");
        const MemoryBudget budget = available_memory();
        EXPECT_EQ(budget.bytes, 1500LL * 1000 * 1000);
        EXPECT_EQ(budget.source, "GLAMM_MEMORY_LIMIT_MB");
    }
    {
        MemoryLimit limit("0"); // no check
        EXPECT_EQ(available_memory().bytes, -1);
    }
    {
        MemoryLimit limit("12GB");
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

} // namespace
} // namespace glamm
