// `glamm tokenize` on the tiny model: every meta.json tokenizer case, with and without --no-bos.
#include "support/test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

namespace {

// Single-quotes a string for /bin/sh.
std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string ids_line(const std::vector<int64_t>& ids) {
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
    return line + "\n";
}

std::string tokenize_command(const std::string& args) {
    return shell_quote(glamm::test::bin_path("glamm")) + " tokenize --model " +
           shell_quote(glamm::test::tiny_model_dir()) + " " + args;
}

} // namespace

TEST(CliTokenize, MetaCasesWithAndWithoutBos) {
    std::ifstream in(glamm::test::tiny_case_path("meta.json"));
    const auto meta = nlohmann::json::parse(in);
    ASSERT_GE(meta.at("tokenizer").size(), 6u);
    for (const auto& c : meta.at("tokenizer")) {
        const std::string text = c.at("text");
        auto with_bos          = glamm::test::run_command(tokenize_command(shell_quote(text)));
        EXPECT_EQ(with_bos.exit_code, 0) << with_bos.err;
        EXPECT_EQ(with_bos.out, ids_line(c.at("ids").get<std::vector<int64_t>>())) << text;
        auto no_bos = glamm::test::run_command(tokenize_command("--no-bos " + shell_quote(text)));
        EXPECT_EQ(no_bos.exit_code, 0) << no_bos.err;
        EXPECT_EQ(no_bos.out, ids_line(c.at("ids_no_bos").get<std::vector<int64_t>>())) << text;
    }
}

TEST(CliTokenize, ImagePromptAndDecode) {
    std::ifstream in(glamm::test::tiny_case_path("meta.json"));
    const auto meta = nlohmann::json::parse(in);
    const auto t    = glamm::test::load_tensors(glamm::test::tiny_case_path("gcg.safetensors"));
    const auto ref  = t.at("prompt_ids").contiguous();
    std::vector<int64_t> ids(ref.data_ptr<int64_t>(), ref.data_ptr<int64_t>() + ref.numel());
    const auto r = glamm::test::run_command(
        tokenize_command("--image " + shell_quote(meta.at("cases").at("gcg").at("prompt"))));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, ids_line(ids));
    const auto d =
        glamm::test::run_command(tokenize_command("--decode '517 268 381 290 337 336 518 516'"));
    EXPECT_EQ(d.exit_code, 0) << d.err;
    EXPECT_EQ(d.out, "<p> A red circle </p> [SEG]\n");
}

TEST(CliTokenize, Errors) {
    const auto missing = glamm::test::run_command(shell_quote(glamm::test::bin_path("glamm")) +
                                                  " tokenize --model /nonexistent/dir hello");
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_NE(missing.err.find("tokenizer.model"), std::string::npos) << missing.err;
    const auto usage = glamm::test::run_command(tokenize_command(""));
    EXPECT_EQ(usage.exit_code, 2);
}
