// glamm gcg/segment/region/caption on bad input: each failure exits with its documented code and
// says what is wrong; results are written whole (no temporary files left behind).
#include "support/test_support.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <set>

namespace fs = std::filesystem;
using namespace glamm;

namespace {

std::string task(const std::string& name, const std::string& args) {
    return test::bin_path("glamm") + " " + name + " --model " + test::tiny_model_dir() +
           " --vision-tower " + test::tiny_clip_dir() + " --max-new-tokens 3 " + args;
}

void expect_failure(const test::CommandResult& r, int code, const std::string& message) {
    EXPECT_EQ(r.exit_code, code) << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos)
        << "stderr: " << r.err << "\nexpected to contain: " << message;
}

const std::string kImage =
    " --image " + std::string(GLAMM_TEST_DATA_DIR) + "/golden/tiny/cases/gcg.png";

} // namespace

TEST(CliTasks, HelpDocumentsExitCodes) {
    const auto r = test::run_command(test::bin_path("glamm") + " --help");
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("exit codes: 0 success, 1 error"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("2 bad command line"), std::string::npos);
    EXPECT_NE(r.out.find("3 cancelled"), std::string::npos);
    for (const char* command : {"gcg", "segment", "region", "caption", "chat", "batch"})
        EXPECT_NE(r.out.find(std::string("  ") + command + " "), std::string::npos) << command;
}

TEST(CliTasks, UnreadableImage) {
    const std::string out = test::make_temp_dir("tasks");
    expect_failure(test::run_command(task("gcg", "--image /no/such/picture.png --out " + out)), 1,
                   "/no/such/picture.png");
    const std::string dir = test::make_temp_dir("tasks-dir");
    expect_failure(test::run_command(task("caption", "--image " + dir + " --out " + out)), 1, dir);
}

TEST(CliTasks, CorruptImageFile) {
    const std::string dir = test::make_temp_dir("tasks-corrupt");
    std::mt19937 rng(7);
    std::string bytes(4096, '\0');
    for (auto& b : bytes) b = static_cast<char>(rng() & 0xff);
    test::write_bytes(dir + "/noise.png", bytes);
    expect_failure(
        test::run_command(task("gcg", "--image " + dir + "/noise.png --out " + dir + "/o")), 1,
        dir + "/noise.png");
    // A PNG signature followed by garbage.
    test::write_bytes(dir + "/truncated.png", std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16));
    expect_failure(
        test::run_command(task("gcg", "--image " + dir + "/truncated.png --out " + dir + "/o")), 1,
        dir + "/truncated.png");
    EXPECT_FALSE(fs::exists(dir + "/o/result.json"));
}

TEST(CliTasks, MalformedBoxIsACommandLineError) {
    for (const std::string box : {"1,2,3", "a,b,c,d", "1,2,3,4,5", "1;2;3;4"}) {
        expect_failure(test::run_command(task("region", kImage + " --box '" + box + "'")), 2,
                       "--box expects x1,y1,x2,y2 in image pixels, got \"" + box + "\"");
    }
}

TEST(CliTasks, BoxCountMismatchAndBadBoxes) {
    const std::string out = test::make_temp_dir("tasks-box");
    expect_failure(
        test::run_command(task("region", kImage +
                                             " --prompt 'what is <bbox>?' --box 1,1,20,20 "
                                             "--box 30,30,60,60 --out " +
                                             out)),
        1, "the prompt has 1 <bbox> token(s) but 2 box(es) were given");
    expect_failure(test::run_command(task("region", kImage +
                                                        " --prompt 'compare <bbox> and <bbox>' "
                                                        "--box 1,1,20,20 --out " +
                                                        out)),
                   1, "the prompt has 2 <bbox> token(s) but 1 box(es) were given");
    expect_failure(test::run_command(task("region", kImage + " --box 600,10,700,50 --out " + out)),
                   1, "lies outside the 640x480 image");
    expect_failure(test::run_command(task("region", kImage + " --box 10,10,10,50 --out " + out)), 1,
                   "has no area");
    // Integer options are range-checked before anything narrows them to an int.
    expect_failure(test::run_command(task("gcg", kImage + " --max-new-tokens 0 --out " + out)), 2,
                   "--max-new-tokens must be in [1, 2147483647], got 0");
    expect_failure(
        test::run_command(task("gcg", kImage + " --max-new-tokens 4294967296 --out " + out)), 2,
        "--max-new-tokens must be in [1, 2147483647], got 4294967296");
    expect_failure(test::run_command(task("gcg", kImage + " --threads -1 --out " + out)), 2,
                   "--threads must be in [0, 2147483647], got -1");
    // Command-line mistakes are usage errors (exit 2) before the model loads.
    expect_failure(test::run_command(task("segment", kImage + " --out " + out)), 2,
                   "segment needs an expression");
    expect_failure(test::run_command(task("gcg", kImage + " extra.png --out " + out)), 2,
                   "unexpected argument \"extra.png\"");
    expect_failure(test::run_command(task("gcg", kImage + " --top-p 0 --out " + out)), 2,
                   "--top-p must be in (0, 1]");
    expect_failure(test::run_command(task("gcg", kImage + " --temperature -1 --out " + out)), 2,
                   "--temperature must be >= 0");
    EXPECT_FALSE(fs::exists(out + "/result.json"));
}

TEST(CliTasks, ResultFilesAreWrittenWhole) {
    const std::string out = test::make_temp_dir("tasks-ok");
    const auto r =
        test::run_command(task("region", kImage + " --box 10,20,200,150 --labelme --out " + out));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::set<std::string> files;
    for (const auto& e : fs::directory_iterator(out)) files.insert(e.path().filename().string());
    EXPECT_EQ(files, (std::set<std::string>{"result.json", "overlay.png", "labelme.json"}));
}
