// `glamm chat` fed a script on stdin: /image, /box, questions, /save, /reset, errors that do not
// end the loop, /quit.
#include "core/atomic_file.h"
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

using namespace glamm;

namespace {

std::string model_args() {
    return " --model " + test::tiny_model_dir() + " --vision-tower " + test::tiny_clip_dir();
}

size_t count(const std::string& text, const std::string& needle) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
        ++n;
    return n;
}

// Shell lines that start `chat` in the background reading the fifo `in` (its pid in $pid) and
// keep fd 3 open on the fifo as a writer that stays: chat waits for the lines written there.
std::string chat_on_fifo(const std::string& chat, const std::string& in, const std::string& out,
                         const std::string& err) {
    return "mkfifo " + in + "\n" + chat + " < " + in + " > " + out + " 2> " + err + " &\n" +
           "pid=$!\n" + "exec 3> " + in + "\n";
}

} // namespace

TEST(CliChat, ScriptedConversation) {
    const std::string dir    = test::make_temp_dir("chat");
    const std::string image  = test::tiny_case_path("gcg.png");
    const std::string script = dir + "/script.txt";
    test::write_bytes(script, "what is here?\n" // before any image: an error, loop goes on
                              "/image " +
                                  image +
                                  "\n"
                                  "what is in the image?\n"
                                  "/save " +
                                  dir +
                                  "/turn1\n"
                                  "/box 10,20,200,150\n"
                                  "what is <bbox> ?\n"
                                  "/save " +
                                  dir +
                                  "/turn2\n"
                                  "/box 1,2\n" // malformed: error, loop goes on
                                  "/frobnicate\n"
                                  "/reset\n"
                                  "\n"
                                  "what is in the image?\n"
                                  "/quit\n"
                                  "never asked\n");
    const auto r = test::run_command(test::bin_path("glamm") + " chat" + model_args() +
                                     " --max-new-tokens 4 < " + script);
    std::printf("--- stdout\n%s--- stderr\n%s---\n", r.out.c_str(), r.err.c_str());
    EXPECT_EQ(r.exit_code, 1) << "a script with errors reports them in the exit code";
    EXPECT_NE(r.err.find("error: no image yet: open one with /image PATH"), std::string::npos);
    EXPECT_NE(r.err.find("image " + image + ": 640x480"), std::string::npos);
    EXPECT_NE(r.err.find("box 1 queued"), std::string::npos);
    EXPECT_NE(r.err.find("error: --box expects x1,y1,x2,y2"), std::string::npos);
    EXPECT_NE(r.err.find("error: unknown command /frobnicate"), std::string::npos);
    EXPECT_NE(r.err.find("conversation reset"), std::string::npos);

    // Three answers, one per line; the first and the one after /reset are the same question in
    // a fresh conversation, so they are equal (greedy).
    const auto t1 = nlohmann::json::parse(read_file(dir + "/turn1/result.json"));
    const auto t2 = nlohmann::json::parse(read_file(dir + "/turn2/result.json"));
    EXPECT_EQ(t1["timings"]["generated_tokens"], 4);
    ASSERT_EQ(t2["boxes"].size(), 1u);
    EXPECT_EQ(t2["boxes"][0], nlohmann::json({10, 20, 200, 150}));
    EXPECT_TRUE(std::filesystem::exists(dir + "/turn2/overlay.png"));
    // The streamed text is on stdout; turn 1 and turn 3 both stream the first answer's text.
    const std::string first = t1["text"];
    if (!first.empty()) EXPECT_GE(count(r.out, first), 2u) << first;
    EXPECT_EQ(r.out.find("never asked"), std::string::npos);
}

TEST(CliChat, SaveBeforeAnyAnswerAndCleanExit) {
    const std::string dir    = test::make_temp_dir("chat2");
    const std::string script = dir + "/script.txt";
    test::write_bytes(script,
                      "/image " + test::tiny_case_path("gcg.png") + "\n/save " + dir + "/x\n");
    auto r = test::run_command(test::bin_path("glamm") + " chat" + model_args() + " < " + script);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("error: nothing to save yet"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir + "/x"));

    test::write_bytes(script, "/image " + test::tiny_case_path("gcg.png") + "\nhello\n/quit\n");
    r = test::run_command(test::bin_path("glamm") + " chat" + model_args() +
                          " --max-new-tokens 2 < " + script);
    EXPECT_EQ(r.exit_code, 0) << r.err;

    test::write_bytes(script, "/image /no/such/image.png\n");
    r = test::run_command(test::bin_path("glamm") + " chat" + model_args() + " < " + script);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("/no/such/image.png"), std::string::npos) << r.err;
}

// Ctrl-C while chat waits for the next line leaves at once with code 3 (nothing is being
// written then). SIGINT is sent until the process ends: a background job of a non-interactive
// shell starts with SIGINT ignored, so signals sent before chat installs its handler are lost,
// not fatal; one that arrives between the handler and the prompt only marks the next line
// stopped, and the next one at the prompt ends it. A chat that ignored Ctrl-C there is killed
// after 20 s of them (rc 137).
TEST(CliChat, CtrlCAtThePromptLeavesWithCode3) {
    const std::string dir = test::make_temp_dir("chat-sigint");
    const std::string in = dir + "/in", err = dir + "/err", script = dir + "/run.sh";
    const std::string chat = test::bin_path("glamm") + " chat" + model_args() + " --image " +
                             test::tiny_case_path("gcg.png");
    std::string lines = chat_on_fifo(chat, in, "/dev/null", err);
    lines += "for i in $(seq 600); do grep -q '^image ' " + err + " && break; sleep 0.1; done\n";
    lines += "for i in $(seq 100); do kill -INT $pid 2>/dev/null || break; sleep 0.2; done\n";
    lines += "kill -KILL $pid 2>/dev/null\n";
    lines += "wait $pid\n";
    lines += "echo \"rc=$?\"\n";
    test::write_bytes(script, lines);
    const auto r = test::run_command("sh " + script);
    EXPECT_NE(r.out.find("rc=3"), std::string::npos) << r.out << read_file(err);
    EXPECT_EQ(read_file(err).find("error"), std::string::npos) << read_file(err);
}

// Ctrl-C while an answer is written stops that answer, says so, and the loop goes on reading
// lines (here /reset, then /quit: exit 0). The tiny model's random weights never emit EOS, so
// the answer would run for minutes (--max-new-tokens 100000): only the stop ends it. One SIGINT,
// sent once tokens stream (the handler is installed before the first question is read); a chat
// that did not stop is killed after 30 s (rc 137).
TEST(CliChat, CtrlCDuringAnAnswerStopsItAndTheLoopGoesOn) {
    const std::string dir = test::make_temp_dir("chat-sigint-answer");
    const std::string in = dir + "/in", out = dir + "/out", err = dir + "/err",
                      script = dir + "/run.sh";
    const std::string chat   = test::bin_path("glamm") + " chat" + model_args() + " --image " +
                             test::tiny_case_path("gcg.png") + " --max-new-tokens 100000";
    std::string lines = chat_on_fifo(chat, in, out, err);
    lines += "echo 'describe the image' >&3\n";
    lines += "for i in $(seq 600); do [ -s " + out + " ] && break; sleep 0.1; done\n";
    lines += "kill -INT $pid\n";
    lines +=
        "for i in $(seq 300); do grep -q '^(cancelled' " + err + " && break; sleep 0.1; done\n";
    lines += "printf '/reset\\n/quit\\n' >&3\n";
    lines += "exec 3>&-\n";
    lines += "( sleep 30; kill -KILL $pid ) >/dev/null 2>&1 &\n";
    lines += "killer=$!\n";
    lines += "wait $pid\n";
    lines += "echo \"rc=$?\"\n";
    lines += "kill $killer 2>/dev/null\n";
    test::write_bytes(script, lines);
    const auto r          = test::run_command("sh " + script);
    const std::string log = read_file(err);
    EXPECT_NE(r.out.find("rc=0"), std::string::npos) << r.out << log;
    EXPECT_NE(log.find("(cancelled: the partial answer is not part of the conversation)"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("conversation reset"), std::string::npos) << log; // read after the stop
    EXPECT_EQ(log.find("error"), std::string::npos) << log;
    // Some of the answer was streamed, far from all of it (100000 tokens).
    const std::string answer = read_file(out);
    EXPECT_GT(answer.size(), 0u);
    EXPECT_LT(answer.size(), 100000u) << answer.size() << " bytes streamed";
}
