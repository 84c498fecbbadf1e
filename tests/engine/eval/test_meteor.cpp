// METEOR protocol with a fake `java` (a shell script speaking meteor-1.5.jar's -stdio protocol
// with known numbers and logging what it received). The real jar is not on this machine.
#include "core/error.h"
#include "eval/benchmark.h"
#include "eval/meteor.h"
#include "support/test_support.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace glamm;
namespace fs = std::filesystem;

namespace {

// SCORE line k -> stats "k.0 k.0 7"; EVAL -> 0.1, 0.2, ... per image, then 0.375.
const char* kFakeJava = R"SH(#!/bin/sh
log="$(dirname "$0")/log.txt"
echo "ARGS $*" > "$log"
echo "CWD $(pwd)" >> "$log"
n=0
while IFS= read -r line; do
  echo "IN $line" >> "$log"
  case "$line" in
    SCORE*) n=$((n+1)); echo "$n.0 $n.0 7" ;;
    EVAL*) i=1; while [ $i -le $n ]; do echo "0.$i"; i=$((i+1)); done; echo "0.375" ;;
  esac
done
)SH";

struct Fake {
    fs::path dir, java, jar;
};

Fake make_fake(const std::string& tag, const std::string& script) {
    Fake f;
    f.dir  = test::make_temp_dir(tag);
    f.java = f.dir / "java";
    fs::create_directories(f.dir / "meteor");
    f.jar = f.dir / "meteor" / "meteor-1.5.jar";
    test::write_bytes(f.java.string(), script);
    fs::permissions(f.java, fs::perms::owner_all);
    test::write_bytes(f.jar.string(), "not a real jar");
    return f;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

} // namespace

TEST(Meteor, SpeaksTheStdioProtocolAsMeteorPy) {
    const Fake f = make_fake("meteor-ok", kFakeJava);
    eval::MeteorOptions o;
    o.jar  = f.jar.string();
    o.java = f.java.string();
    // The hypothesis loses "|||" and then each "  " becomes " " once (Python str.replace):
    // "a dog |||  cat" -> "a dog   cat" -> "a dog  cat".
    const auto r = eval::meteor_score(o, {"a cat", "a dog |||  cat"},
                                      {{"the cat", "one cat"}, {"a dog and a cat"}});
    ASSERT_TRUE(r.available) << r.status;
    EXPECT_DOUBLE_EQ(r.score, 0.375);
    ASSERT_EQ(r.per_image.size(), 2u);
    EXPECT_DOUBLE_EQ(r.per_image[0], 0.1);
    EXPECT_DOUBLE_EQ(r.per_image[1], 0.2);
    const std::string expected = "ARGS -jar -Xmx2G " + fs::absolute(f.jar).string() +
                                 " - - -stdio -l en -norm\n"
                                 "CWD " +
                                 (f.dir / "meteor").string() +
                                 "\n"
                                 "IN SCORE ||| the cat ||| one cat ||| a cat\n"
                                 "IN SCORE ||| a dog and a cat ||| a dog  cat\n"
                                 "IN EVAL ||| 1.0 1.0 7 ||| 2.0 2.0 7\n";
    EXPECT_EQ(slurp(f.dir / "log.txt"), expected);
}

TEST(Meteor, UnavailableWithAReason) {
    eval::MeteorOptions o;
    auto r = eval::meteor_score(o, {"a"}, {{"a"}});
    EXPECT_FALSE(r.available);
    EXPECT_EQ(r.status, "unavailable: no --meteor-jar given");
    o.jar = "/nonexistent/meteor-1.5.jar";
    r     = eval::meteor_score(o, {"a"}, {{"a"}});
    EXPECT_FALSE(r.available);
    EXPECT_NE(r.status.find("does not exist"), std::string::npos) << r.status;
    const Fake f = make_fake("meteor-nojava", kFakeJava);
    o.jar        = f.jar.string();
    o.java       = (f.dir / "no-such-java").string();
    r            = eval::meteor_score(o, {"a"}, {{"a"}});
    EXPECT_FALSE(r.available);
    EXPECT_NE(r.status.find("unavailable: no Java runtime"), std::string::npos) << r.status;
}

TEST(Meteor, DeadOrConfusedProcessIsAnErrorWithContext) {
    const Fake dies =
        make_fake("meteor-dies", "#!/bin/sh\necho 'Error: Unable to access jarfile' >&2\nexit 3\n");
    eval::MeteorOptions o;
    o.jar               = dies.jar.string();
    o.java              = dies.java.string();
    const std::string m = test::expect_error(
        [&] { eval::meteor_score(o, {"a cat"}, {{"the cat"}}); },
        {"METEOR", "Unable to access jarfile", "exit status 3", "SCORE ||| the cat ||| a cat"});
    std::printf("  %s\n", m.c_str());
    const Fake garbage =
        make_fake("meteor-garbage", "#!/bin/sh\nwhile read -r l; do echo 'oops'; done\n");
    o.jar  = garbage.jar.string();
    o.java = garbage.java.string();
    test::expect_error([&] { eval::meteor_score(o, {"a cat"}, {{"the cat"}}); },
                       "expected a number, got \"oops\"");
}

TEST(Meteor, CaptionScoresCarryTheNumber) {
    const Fake f            = make_fake("meteor-regcap", kFakeJava);
    const nlohmann::json gt = nlohmann::json::parse(
        R"({"images": [{"id": 1}, {"id": 2}],
            "annotations": [{"image_id": 1, "caption": "A cat."}, {"image_id": 2, "caption": "A dog!"}]})");
    std::vector<eval::Prediction> preds(2);
    preds[0].image_id = "1";
    preds[0].caption  = "a cat";
    preds[1].image_id = "2";
    preds[1].caption  = "the dog";
    eval::MeteorOptions o;
    o.jar        = f.jar.string();
    o.java       = f.java.string();
    const auto s = eval::score_regcap({gt}, preds, o);
    EXPECT_DOUBLE_EQ(s["METEOR"].get<double>(), 0.375);
    EXPECT_NE(s["METEOR_status"].get<std::string>().find("meteor-1.5.jar via"), std::string::npos);
    // METEOR sees the PTB tokens (lower-cased, punctuation dropped), in GT image order.
    const std::string log = slurp(f.dir / "log.txt");
    EXPECT_NE(log.find("IN SCORE ||| a cat ||| a cat\nIN SCORE ||| a dog ||| the dog\n"),
              std::string::npos)
        << log;
}
