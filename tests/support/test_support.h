// Shared helpers for the test suite: fixture paths, golden tensors, tolerance checks, running the
// executables.
#pragma once

#include "core/error.h"

#include <ATen/core/Tensor.h>
#include <cstdlib>
#include <gtest/gtest.h>

#include <initializer_list>
#include <map>
#include <string>
#include <utility>

namespace glamm::test {

// Absolute path of a file under tests/data.
std::string data_path(const std::string& relative);
// The tiny golden release (tests/data/golden/tiny/{glamm,clip,cases}).
std::string tiny_model_dir();
std::string tiny_clip_dir();
std::string tiny_case_path(const std::string& file);
// Path of a built executable (bin/glamm, bin/glamm-studio).
std::string bin_path(const std::string& name);
// A fresh empty folder under the system temp dir, removed when the test program exits normally
// (GLAMM_KEEP_TEST_DIRS=1 keeps them to inspect).
std::string make_temp_dir(const std::string& tag);
// Sets an environment variable for one scope and unsets it after (the engine reads GLAMM_* on use).
struct ScopedEnv {
    ScopedEnv(const char* name, const char* value) : name(name) { setenv(name, value, 1); }
    ~ScopedEnv() { unsetenv(name); }
    ScopedEnv(const ScopedEnv&)            = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;
    const char* name;
};

// The process's resident pages mapped from files, in kB (/proc/self/status RssFile).
long resident_file_kb();

// Every tensor of a safetensors file, copied to owning CPU tensors.
std::map<std::string, at::Tensor> load_tensors(const std::string& path);

// The largest |a - b| over all elements, compared in f32.
double max_abs_diff(const at::Tensor& a, const at::Tensor& b);

// Golden comparison: max |got - ref| <= rel_tol * max(1, max |ref|). Prints the max difference.
::testing::AssertionResult close_to_reference(const std::string& name, const at::Tensor& got,
                                              const at::Tensor& ref, double rel_tol = 1e-3);

struct CommandResult {
    int exit_code = -1;
    std::string out; // stdout
    std::string err; // stderr
};
// Runs a shell command line, capturing stdout and stderr.
CommandResult run_command(const std::string& command_line);

// Writes bytes to a file (test fixtures).
void write_bytes(const std::string& path, const std::string& bytes);

// The message of the glamm::Error `call` throws, or "(no error)" when it returns: a check that
// the message names something then fails on a call that does not throw.
template <typename F> std::string error_of(F&& call) {
    try {
        call();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

// Expects `call` to throw a glamm::Error whose message contains every needle; returns the message.
template <typename F>
std::string expect_error(F&& call, std::initializer_list<std::string> needles) {
    const std::string message = error_of(std::forward<F>(call));
    for (const std::string& needle : needles)
        EXPECT_NE(message.find(needle), std::string::npos)
            << "message: " << message << "\nexpected to contain: " << needle;
    return message;
}
template <typename F> std::string expect_error(F&& call, const std::string& needle) {
    return expect_error(std::forward<F>(call), {needle});
}

} // namespace glamm::test
