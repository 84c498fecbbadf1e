// `glamm train --print-recipe`: the recipe as the trainer reads it (its base chain merged in),
// which scripts read instead of merging the chain themselves.
#include "core/atomic_file.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace {
std::string glamm_cmd(const std::string& args) {
    return glamm::test::bin_path("glamm") + " " + args;
}
} // namespace

TEST(CliTrain, PrintRecipeMergesTheBaseChainAndTrainsNothing) {
    const std::string dir = glamm::test::make_temp_dir("cli_train");
    const auto tiny =
        nlohmann::json::parse(glamm::read_file(glamm::test::data_path("train/tiny-recipe.json")));
    glamm::write_file_atomic(dir + "/root.json", tiny.dump());
    // A middle recipe changes one optimiser key and removes the device (cpu by default); the top
    // one changes the data seed over it.
    glamm::write_file_atomic(dir + "/mid.json",
                             R"({"base": "root.json", "optimizer": {"steps": 9}, "device": null})");
    glamm::write_file_atomic(dir + "/top.json", R"({"base": "mid.json", "data": {"seed": 77}})");

    auto r = glamm::test::run_command(
        glamm_cmd("train --print-recipe --config " + dir + "/top.json --out " + dir + "/run"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto printed             = nlohmann::json::parse(r.out);
    nlohmann::json expected        = tiny;
    expected["optimizer"]["steps"] = 9;
    expected["data"]["seed"]       = 77;
    expected.erase("device");
    EXPECT_EQ(printed, expected) << r.out;
    EXPECT_FALSE(std::filesystem::exists(dir + "/run")) << "--print-recipe trains nothing";

    // A recipe the trainer would refuse is refused here too, naming the file.
    glamm::write_file_atomic(dir + "/bad.json",
                             R"({"base": "mid.json", "optimizer": {"steps": 0}})");
    r = glamm::test::run_command(glamm_cmd("train --print-recipe --config " + dir + "/bad.json"));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("bad.json"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}
