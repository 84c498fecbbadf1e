// `glamm batch`: one line per image, SIGKILL mid-run then resume (no lost or duplicated line, a
// torn last line dropped), and --shard I/N partitions the images.
#include "core/atomic_file.h"
#include "io/image_file.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace fs = std::filesystem;
using namespace glamm;

namespace {

const std::vector<std::string> kImages = {"img_0.png", "img_1.png", "sub/img_2.png"};

// A folder of small solid-colour PNGs (plus a file that is not an image, which is ignored).
std::string make_images() {
    const std::string dir = test::make_temp_dir("batch-images");
    for (size_t i = 0; i < kImages.size(); ++i) {
        const int64_t w = 64 + 8 * int64_t(i), h = 48;
        std::vector<uint8_t> rgb(size_t(w * h * 3));
        for (size_t p = 0; p < rgb.size(); ++p) rgb[p] = uint8_t((p % 3) * 60 + i * 30);
        fs::create_directories(fs::path(dir / fs::path(kImages[i])).parent_path());
        save_png(dir + "/" + kImages[i], rgb.data(), w, h, 3);
    }
    test::write_bytes(dir + "/notes.txt", "not an image");
    return dir;
}

std::string batch_command(const std::string& images, const std::string& out,
                          const std::string& extra = "") {
    return test::bin_path("glamm") + " batch --task gcg --max-new-tokens 4 --model " +
           test::tiny_model_dir() + " --vision-tower " + test::tiny_clip_dir() + " --images " +
           images + " --out " + out + extra;
}

// Every line of results.jsonl parsed; fails the test on a line that is not JSON.
std::vector<nlohmann::json> read_lines(const std::string& out) {
    const std::string text = read_file(out + "/results.jsonl");
    EXPECT_TRUE(text.empty() || text.back() == '\n') << "last line has no newline";
    std::vector<nlohmann::json> lines;
    size_t begin = 0;
    while (begin < text.size()) {
        size_t end = text.find('\n', begin);
        if (end == std::string::npos) end = text.size();
        const std::string line = text.substr(begin, end - begin);
        begin                  = end + 1;
        auto j                 = nlohmann::json::parse(line, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
        if (!j.is_discarded()) lines.push_back(j);
    }
    return lines;
}

std::multiset<std::string> images_of(const std::vector<nlohmann::json>& lines) {
    std::multiset<std::string> images;
    for (const auto& j : lines) images.insert(j.value("image", std::string("<none>")));
    return images;
}

} // namespace

TEST(CliBatch, ResumesAfterSigkillWithoutLosingOrDuplicatingALine) {
    const std::string images = make_images();
    const std::string out    = test::make_temp_dir("batch-out");

    // Start a run, SIGKILL it as soon as its first line is there.
    const std::string script =
        batch_command(images, out) +
        " > /dev/null 2>&1 & pid=$!; i=0; "
        "while [ ! -s " +
        out +
        "/results.jsonl ] && [ $i -lt 30000 ]; do sleep 0.005; i=$((i+1)); done; "
        "kill -9 $pid; wait $pid; echo \"rc=$?\"";
    const auto killed = test::run_command(script);
    EXPECT_NE(killed.out.find("rc=137"), std::string::npos) << killed.out << killed.err;
    const auto before = read_lines(out);
    std::printf("  lines when killed: %zu of %zu\n", before.size(), kImages.size());
    ASSERT_GE(before.size(), 1u);
    ASSERT_LT(before.size(), kImages.size()) << "the run finished before the kill";

    // A kill in the middle of an append leaves a line without its newline.
    {
        std::ofstream f(out + "/results.jsonl", std::ios::app | std::ios::binary);
        f << "{\"image\": \"sub/img_2.png\", \"text\": \"tor";
    }
    const auto resumed = test::run_command(batch_command(images, out));
    EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
    std::printf("%s", resumed.err.c_str());
    EXPECT_NE(resumed.err.find("dropped a torn last line"), std::string::npos);
    EXPECT_NE(resumed.err.find(std::to_string(before.size()) + " already done"), std::string::npos);
    EXPECT_NE(resumed.err.find("ETA"), std::string::npos);

    const auto lines = read_lines(out);
    ASSERT_EQ(lines.size(), kImages.size());
    const auto seen = images_of(lines);
    EXPECT_EQ(seen, std::multiset<std::string>(kImages.begin(), kImages.end()));
    for (size_t i = 0; i < before.size(); ++i)
        EXPECT_EQ(lines[i], before[i]) << "line " << i << " changed";
    for (const auto& j : lines) {
        EXPECT_FALSE(j.contains("error")) << j.dump();
        EXPECT_TRUE(j.contains("text") && j.contains("raw_text") && j.contains("phrases") &&
                    j.contains("masks") && j.contains("mask_files") && j.contains("timings"))
            << j.dump();
        EXPECT_EQ(j["timings"]["generated_tokens"], 4);
        for (const auto& f : j["mask_files"])
            EXPECT_TRUE(fs::exists(out + "/" + f.get<std::string>()));
    }

    // A third run has nothing left to do and changes nothing.
    const auto again = test::run_command(batch_command(images, out));
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(again.err.find("0 to do"), std::string::npos) << again.err;
    EXPECT_EQ(read_lines(out), lines);
}

TEST(CliBatch, ShardsPartitionTheImages) {
    const std::string images = make_images();
    std::multiset<std::string> together;
    std::map<int, std::set<std::string>> by_shard;
    for (int shard = 0; shard < 2; ++shard) {
        const std::string out = test::make_temp_dir("batch-shard");
        const auto r          = test::run_command(
                     batch_command(images, out, " --shard " + std::to_string(shard) + "/2"));
        ASSERT_EQ(r.exit_code, 0) << r.err;
        for (const auto& image : images_of(read_lines(out))) {
            together.insert(image);
            by_shard[shard].insert(image);
        }
    }
    EXPECT_EQ(together, std::multiset<std::string>(kImages.begin(), kImages.end()));
    // index % 2 over the sorted list.
    EXPECT_EQ(by_shard[0], (std::set<std::string>{"img_0.png", "sub/img_2.png"}));
    EXPECT_EQ(by_shard[1], (std::set<std::string>{"img_1.png"}));
}

TEST(CliBatch, BadImageGetsAnErrorLineAndBadOptionsAreUsageErrors) {
    const std::string images = make_images();
    test::write_bytes(images + "/broken.png", "\x89PNG\r\n\x1a\nthis is not really a png");
    const std::string out = test::make_temp_dir("batch-bad");
    const auto r          = test::run_command(batch_command(images, out, " --shard 0/7"));
    EXPECT_EQ(r.exit_code, 1) << r.err; // sorted: broken.png is index 0
    const auto lines = read_lines(out);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0]["image"], "broken.png");
    EXPECT_NE(lines[0]["error"].get<std::string>().find("broken.png"), std::string::npos)
        << lines[0];

    for (const std::string bad : {" --shard 2/2", " --shard 1", " --shard -1/2"}) {
        const auto u = test::run_command(batch_command(images, out, bad));
        EXPECT_EQ(u.exit_code, 2) << bad;
        EXPECT_NE(u.err.find("--shard expects I/N"), std::string::npos) << u.err;
    }
    auto u = test::run_command(test::bin_path("glamm") + " batch --task nope --images " + images +
                               " --out " + out);
    EXPECT_EQ(u.exit_code, 2);
    EXPECT_NE(u.err.find("--task must be gcg, caption, segment or region"), std::string::npos);
    u = test::run_command(test::bin_path("glamm") + " batch --task segment --images " + images +
                          " --out " + out + " --model x");
    EXPECT_EQ(u.exit_code, 2);
    EXPECT_NE(u.err.find("needs --prompt"), std::string::npos);
}

// A mistake in the request is a usage error before any image is touched (it used to become an
// "error" line on every image, which a rerun then skipped as done); a rerun into the same folder
// with other settings is refused instead of reporting the old results as done.
TEST(CliBatch, RequestMistakesAndChangedSettingsAreRefusedUpFront) {
    const std::string images = make_images();
    const std::string out    = test::make_temp_dir("batch-settings");
    for (const auto& [extra, needle] : std::vector<std::pair<std::string, std::string>>{
             {" --top-p 0", "--top-p must be in (0, 1]"},
             {" --temperature -1", "--temperature must be >= 0"},
             {" --prompt 'compare <bbox> and <bbox>'", "the prompt has 2 <bbox> token(s)"}}) {
        const auto u = test::run_command(batch_command(images, out, extra));
        EXPECT_EQ(u.exit_code, 2) << extra << ": " << u.err;
        EXPECT_NE(u.err.find(needle), std::string::npos) << u.err;
        EXPECT_FALSE(fs::exists(out + "/results.jsonl")) << extra;
    }
    auto segment =
        test::run_command(test::bin_path("glamm") + " batch --task segment --prompt '  '" +
                          " --images " + images + " --out " + out + " --model x");
    EXPECT_EQ(segment.exit_code, 2) << segment.err;
    EXPECT_NE(segment.err.find("needs an expression"), std::string::npos) << segment.err;

    auto r = test::run_command(batch_command(images, out, " --shard 0/3"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto settings = nlohmann::json::parse(read_file(out + "/batch.json"));
    EXPECT_EQ(settings["max_new_tokens"], 4);
    // The same command resumes (nothing left to do); another prompt is refused, naming it.
    r = test::run_command(batch_command(images, out, " --shard 0/3"));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    r = test::run_command(batch_command(images, out, " --shard 0/3 --prompt 'Describe it.'"));
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("were made with other settings (prompt"), std::string::npos) << r.err;
    EXPECT_EQ(read_lines(out).size(), 1u);
}

// Mask folders are the image paths without extension, unless two would meet: a.png and a.jpg
// (both "a") keep their whole paths, and then so does a.png.jpg (its "a.png" is a.png's now);
// c.png is "masks/c".
TEST(CliBatch, MaskFoldersNeverMeet) {
    const std::string images = test::make_temp_dir("batch-names");
    std::vector<uint8_t> rgb(32 * 32 * 3, 90);
    for (const char* name : {"a.png", "a.jpg", "a.png.jpg", "c.png"})
        save_png(images + "/" + name, rgb.data(), 32, 32, 3);
    const std::string out = test::make_temp_dir("batch-names-out");
    const auto r          = test::run_command(batch_command(images, out));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, std::string> folder_of;
    for (const auto& line : read_lines(out)) folder_of[line["image"]] = line["mask_folder"];
    EXPECT_EQ(folder_of, (std::map<std::string, std::string>{{"a.jpg", "masks/a.jpg"},
                                                             {"a.png", "masks/a.png"},
                                                             {"a.png.jpg", "masks/a.png.jpg"},
                                                             {"c.png", "masks/c"}}));
}
