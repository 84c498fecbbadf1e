// Shared helpers for the test suite: fixture paths, golden tensors, tolerance checks, running the
// executables.
#pragma once

#include "core/error.h"

#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

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

// Expects `call` to throw a glamm::Error whose message contains `needle`.
template <typename F> void expect_error(F&& call, const std::string& needle) {
    try {
        call();
        ADD_FAILURE() << "no error; expected one mentioning \"" << needle << "\"";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
            << "message: " << e.what() << "\nexpected to contain: " << needle;
    }
}

} // namespace glamm::test
