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

// SIGTERM (a scheduler pre-empting the job) stops training after the current step like Ctrl-C:
// a checkpoint and the release are written, and the exit code (3) says it did not finish.
TEST(CliTrain, SigtermStopsWithACheckpointAndExitCode3) {
    const std::string dir = glamm::test::make_temp_dir("cli_train_term");
    auto recipe =
        nlohmann::json::parse(glamm::read_file(glamm::test::data_path("train/tiny-recipe.json")));
    recipe["optimizer"]["steps"] = 100000; // never finishes by itself
    glamm::write_file_atomic(dir + "/long.json", recipe.dump());
    const std::string script =
        glamm_cmd("train --config " + dir + "/long.json --out " + dir + "/run") + " > " + dir +
        "/log 2>&1 & pid=$!; i=0; "
        "while ! grep -q '^step 3/' " +
        dir +
        "/log && [ $i -lt 60000 ]; do sleep 0.005; "
        "i=$((i+1)); done; kill -TERM $pid; wait $pid; echo \"rc=$?\"";
    const auto r = glamm::test::run_command(script);
    EXPECT_NE(r.out.find("rc=3"), std::string::npos) << r.out << glamm::read_file(dir + "/log");
    EXPECT_TRUE(std::filesystem::exists(dir + "/run/glamm/config.json"));
    EXPECT_FALSE(std::filesystem::is_empty(dir + "/run/checkpoints"));
}
