// `glamm convert`: a release folder converts to a loadable folder; a folder of weights alone (as a
// training checkpoint keeps them) converts with a note that the result is not a model folder.
#include "support/test_support.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace glamm;
namespace fs = std::filesystem;

TEST(CliConvert, AReleaseConvertsToAFolderInspectLoads) {
    const std::string dir = test::make_temp_dir("convert");
    auto r                = test::run_command(test::bin_path("glamm") + " convert --model " +
                                              test::tiny_clip_dir() + " --out " + dir + "/clip --dtype f16");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err.find("note:"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/clip/config.json"));
    r = test::run_command(test::bin_path("glamm") + " inspect " + test::tiny_model_dir() +
                          " --vision-tower " + dir + "/clip");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("F16"), std::string::npos) << r.out; // the converted tower's dtype
}

TEST(CliConvert, WeightsWithoutConfigConvertWithANote) {
    const std::string dir = test::make_temp_dir("convert");
    fs::create_directories(dir + "/weights");
    fs::copy_file(test::tiny_clip_dir() + "/model.safetensors", dir + "/weights/model.safetensors");
    auto r = test::run_command(test::bin_path("glamm") + " convert --model " + dir +
                               "/weights --out " + dir + "/out");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/out/model.safetensors"));
    EXPECT_FALSE(fs::exists(dir + "/out/config.json"));
    EXPECT_NE(r.err.find("has no config.json"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("not a model folder"), std::string::npos) << r.err;
}
