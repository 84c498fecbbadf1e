// METEOR via meteor-1.5.jar over pipes (fork/exec, no shell).
#include "eval/meteor.h"

#include "core/error.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace glamm::eval {

// ref: salaniz/pycocoevalcap meteor/meteor.py (Meteor.__init__, compute_score, _stat)

namespace fs = std::filesystem;

namespace {

// Bytes read from the child's pipe per read() (one page).
constexpr size_t kPipeReadBytes = 1 << 12;

// The jar's command line after the java executable (meteor.py's meteor_cmd).
const std::vector<std::string> kMeteorArgs = {"-", "-", "-stdio", "-l", "en", "-norm"};
constexpr const char* kJavaHeap            = "-Xmx2G";
// How much of the child's stderr an error message quotes.
constexpr size_t kStderrTail = 2000;
// Waiting for a child that closed its output: 100 x 10 ms.
constexpr int kExitWaitTries         = 100;
constexpr useconds_t kExitWaitStepUs = 10000;

bool is_executable(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
}

// A child process with its stdin and stdout on pipes and its stderr in a temporary file.
class Child {
public:
    Child(const std::vector<std::string>& argv, const std::string& cwd, double timeout_s)
        : timeout_ms_(static_cast<int>(timeout_s * 1000)) {
        char err_template[] = "/tmp/glamm-meteor-stderr-XXXXXX";
        err_fd_             = ::mkstemp(err_template);
        if (err_fd_ < 0)
            fail("cannot create a file for the METEOR process's stderr: ", std::strerror(errno));
        err_path_ = err_template;
        int in[2], out[2], exec_status[2];
        if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 ||
            ::pipe2(exec_status, O_CLOEXEC) != 0)
            fail("cannot create pipes: ", std::strerror(errno));
        std::vector<char*> cargv;
        for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
        cargv.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) fail("fork failed: ", std::strerror(errno));
        if (pid_ == 0) {
            // Child: only async-signal-safe calls until exec.
            ::dup2(in[0], STDIN_FILENO);
            ::dup2(out[1], STDOUT_FILENO);
            ::dup2(err_fd_, STDERR_FILENO);
            int e = 0;
            if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) e = errno;
            if (e == 0) {
                ::execv(cargv[0], cargv.data());
                e = errno;
            }
            ssize_t ignored = ::write(exec_status[1], &e, sizeof e);
            (void)ignored;
            ::_exit(127);
        }
        ::close(in[0]);
        ::close(out[1]);
        ::close(exec_status[1]);
        to_child_       = in[1];
        from_child_     = out[0];
        int child_errno = 0;
        const ssize_t n = ::read(exec_status[0], &child_errno, sizeof child_errno);
        ::close(exec_status[0]);
        if (n == sizeof child_errno) {
            reap();
            fail("cannot run ", argv[0], ": ", std::strerror(child_errno));
        }
    }

    ~Child() {
        if (to_child_ >= 0) ::close(to_child_);
        if (from_child_ >= 0) ::close(from_child_);
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            reap();
        }
        if (err_fd_ >= 0) ::close(err_fd_);
        if (!err_path_.empty()) ::unlink(err_path_.c_str());
    }
    Child(const Child&)            = delete;
    Child& operator=(const Child&) = delete;

    // Writes `line` + "\n"; a dead reader gives an Error (SIGPIPE is blocked for the write).
    void write_line(const std::string& line) {
        const std::string data = line + "\n";
        sigset_t pipe_set, old;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
        size_t done = 0;
        int error   = 0;
        while (done < data.size()) {
            const ssize_t n = ::write(to_child_, data.data() + done, data.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                error = errno;
                break;
            }
            done += size_t(n);
        }
        if (error == EPIPE) {
            const timespec zero{0, 0};
            sigtimedwait(&pipe_set, nullptr, &zero); // consume the pending SIGPIPE
        }
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        if (error != 0)
            fail("writing to the process failed (", std::strerror(error), ")", exit_note(true));
    }

    // One line without its "\n" (Python's readline().strip() is done by the caller).
    std::string read_line() {
        for (;;) {
            const size_t nl = buffer_.find('\n');
            if (nl != std::string::npos) {
                std::string line = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return line;
            }
            pollfd p{from_child_, POLLIN, 0};
            const int r = ::poll(&p, 1, timeout_ms_);
            if (r < 0 && errno == EINTR) continue;
            if (r == 0) fail("no answer within ", timeout_ms_ / 1000, " s");
            char chunk[kPipeReadBytes];
            const ssize_t n = ::read(from_child_, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) fail("the process closed its output", exit_note(true));
            buffer_.append(chunk, size_t(n));
        }
    }

    // Closes stdin and waits for the exit (meteor.py's __del__ kills it; the jar exits on EOF).
    void finish() {
        ::close(to_child_);
        to_child_ = -1;
        ::kill(pid_, SIGKILL);
        reap();
    }

    // The end of the child's stderr, for messages.
    std::string stderr_tail() const {
        std::ifstream in(err_path_, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        std::string s = ss.str();
        if (s.size() > kStderrTail) s = "..." + s.substr(s.size() - kStderrTail);
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
        return s;
    }

private:
    void reap() {
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        status_ = status;
        pid_    = -1;
    }

    // " (exit status N)" / " (killed by signal N)" once the child has ended, else "".
    // `wait`: give an exiting child up to a second to finish (its output is already closed).
    std::string exit_note(bool wait = false) {
        for (int tries = 0; pid_ > 0; ++tries) {
            int status    = 0;
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                status_ = status;
                pid_    = -1;
            } else if (!wait || tries >= kExitWaitTries) {
                break;
            } else {
                ::usleep(kExitWaitStepUs);
            }
        }
        if (pid_ > 0 || status_ < 0) return "";
        if (WIFEXITED(status_)) return cat(" (exit status ", WEXITSTATUS(status_), ")");
        if (WIFSIGNALED(status_)) return cat(" (killed by signal ", WTERMSIG(status_), ")");
        return "";
    }

    pid_t pid_      = -1;
    int status_     = -1;
    int to_child_   = -1;
    int from_child_ = -1;
    int err_fd_     = -1;
    int timeout_ms_ = 0;
    std::string err_path_;
    std::string buffer_;
};

std::string strip(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n\f\v");
    if (b == std::string::npos) return "";
    const auto e = s.find_last_not_of(" \t\r\n\f\v");
    return s.substr(b, e - b + 1);
}

// Python float(): the whole stripped line must be a number.
double parse_number(const std::string& line) {
    const std::string s = strip(line);
    char* end           = nullptr;
    errno               = 0;
    const double v      = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE)
        fail("expected a number, got \"", s, "\"");
    return v;
}

// Python str.replace(old, new) on every non-overlapping occurrence, left to right.
std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size())
        s.replace(at, from.size(), to);
    return s;
}

} // namespace

std::string find_executable(const std::string& name) {
    if (name.empty()) return "";
    if (name.find('/') != std::string::npos) return is_executable(name) ? name : "";
    const char* path = std::getenv("PATH");
    if (!path) return "";
    std::stringstream ss(path);
    for (std::string dir; std::getline(ss, dir, ':');) {
        const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
        if (is_executable(candidate)) return candidate;
    }
    return "";
}

MeteorResult meteor_score(const MeteorOptions& options, const std::vector<std::string>& hypotheses,
                          const std::vector<std::vector<std::string>>& references) {
    MeteorResult result;
    if (options.jar.empty()) {
        result.status = "unavailable: no --meteor-jar given";
        return result;
    }
    if (!fs::is_regular_file(options.jar)) {
        result.status = "unavailable: " + options.jar + " does not exist";
        return result;
    }
    const std::string java_name = options.java.empty() ? "java" : options.java;
    const std::string java      = find_executable(java_name);
    if (java.empty()) {
        result.status = "unavailable: no Java runtime (" + java_name +
                        (options.java.empty() ? " not found on PATH; give --java PATH)"
                                              : " is not an executable file)");
        return result;
    }
    if (hypotheses.size() != references.size())
        fail("METEOR: ", hypotheses.size(), " hypotheses but ", references.size(),
             " reference sets");
    const fs::path jar            = fs::absolute(options.jar);
    std::vector<std::string> argv = {java, "-jar", kJavaHeap, jar.string()};
    argv.insert(argv.end(), kMeteorArgs.begin(), kMeteorArgs.end());

    std::string sent; // the line being exchanged, for messages
    const std::string where = "METEOR (" + java + " -jar " + jar.string() + ")";
    std::unique_ptr<Child> child;
    try {
        // meteor.py runs the jar from its own folder (the paraphrase table is found from there).
        child = std::make_unique<Child>(argv, jar.parent_path().string(), options.timeout_s);
        std::string eval_line = "EVAL";
        for (size_t i = 0; i < hypotheses.size(); ++i) {
            const std::string hyp = replace_all(replace_all(hypotheses[i], "|||", ""), "  ", " ");
            sent                  = "SCORE";
            for (const auto& r : references[i]) sent += " ||| " + r;
            sent += " ||| " + hyp;
            child->write_line(sent);
            eval_line += " ||| " + strip(child->read_line());
        }
        sent = eval_line;
        child->write_line(eval_line);
        for (size_t i = 0; i < hypotheses.size(); ++i)
            result.per_image.push_back(parse_number(child->read_line()));
        result.score = parse_number(child->read_line());
        child->finish();
    } catch (const std::exception& e) {
        std::string message = where + ": " + e.what();
        if (!sent.empty())
            message += "; last line sent: \"" +
                       (sent.size() > 200 ? sent.substr(0, 200) + "..." : sent) + "\"";
        if (child) {
            const std::string err = child->stderr_tail();
            if (!err.empty()) message += "; stderr: " + err;
        }
        throw Error(message);
    }
    result.available = true;
    result.status    = "meteor-1.5.jar via " + java;
    return result;
}

} // namespace glamm::eval
