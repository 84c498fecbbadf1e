// The engine's vocabulary of failure: one exception type whose message says what, where and why.
#pragma once

#include <functional>
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

// Asked between the steps of a long computation (the tensors of a model load, the layers of an
// image encoder or of the prefill, the generated tokens): true stops it. Empty: never.
using ShouldAbort = std::function<bool()>;

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

// Throws Cancelled("stopped during <what>") when `should_abort` asks for it.
inline void stop_if_asked(const ShouldAbort& should_abort, const char* what) {
    if (should_abort && should_abort()) throw Cancelled(cat("stopped during ", what));
}

// Runs fn(); an Error (or std::exception) thrown inside is rethrown with "context: " prefixed.
// A Cancelled passes through as it is (a stop is not a failure of that context).
template <class Fn> decltype(auto) with_context(const std::string& context, Fn&& fn) {
    try {
        return std::forward<Fn>(fn)();
    } catch (const Cancelled&) {
        throw;
    } catch (const std::exception& e) {
        throw Error(context + ": " + e.what());
    }
}

} // namespace glamm
