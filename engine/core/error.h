// The engine's vocabulary of failure: one exception type whose message says what, where and why.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace glamm {

// Thrown by everything in engine/. Layers add context when they rethrow ("loading clip: ...");
// the UI/CLI turn it into a message at the thread boundary.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A stop the user asked for (e.g. while a model loads): not a failure, so callers report it as
// "stopped" rather than as an error.
class Cancelled : public Error {
public:
    using Error::Error;
};

// Concatenates its arguments with operator<< into one string.
template <class... Args> std::string cat(Args&&... args) {
    std::ostringstream os;
    (os << ... << std::forward<Args>(args));
    return os.str();
}

// Throws glamm::Error with the concatenated message.
template <class... Args> [[noreturn]] void fail(Args&&... args) {
    throw Error(cat(std::forward<Args>(args)...));
}

// Runs fn(); an Error (or std::exception) thrown inside is rethrown with "context: " prefixed.
template <class Fn> decltype(auto) with_context(const std::string& context, Fn&& fn) {
    try {
        return std::forward<Fn>(fn)();
    } catch (const std::exception& e) {
        throw Error(context + ": " + e.what());
    }
}

} // namespace glamm
