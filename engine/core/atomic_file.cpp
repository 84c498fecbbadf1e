#include "core/atomic_file.h"

#include "core/error.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace glamm {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
    std::vector<char> pattern(path_.begin(), path_.end());
    const char suffix[] = ".tmp.XXXXXX";
    pattern.insert(pattern.end(), suffix, suffix + sizeof(suffix)); // includes the NUL
    fd_ = mkstemp(pattern.data());
    if (fd_ < 0) fail("cannot create a temporary file for ", path_, ": ", std::strerror(errno));
    temp_path_ = pattern.data();
    fchmod(fd_, 0644);
}

AtomicFile::~AtomicFile() {
    if (fd_ >= 0) close(fd_);
    if (!committed_ && !temp_path_.empty()) unlink(temp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
        ssize_t n = ::write(fd_, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("cannot write ", path_, ": ", std::strerror(errno));
        }
        p += n;
        size -= static_cast<size_t>(n);
    }
}

void AtomicFile::commit() {
    if (fsync(fd_) != 0) fail("cannot flush ", path_, ": ", std::strerror(errno));
    if (close(fd_) != 0) {
        fd_ = -1;
        fail("cannot close ", path_, ": ", std::strerror(errno));
    }
    fd_ = -1;
    if (rename(temp_path_.c_str(), path_.c_str()) != 0)
        fail("cannot rename ", temp_path_, " to ", path_, ": ", std::strerror(errno));
    committed_ = true;
}

void write_file_atomic(const std::string& path, const std::string& contents) {
    AtomicFile file(path);
    file.write(contents);
    file.commit();
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot open ", path, ": ", std::strerror(errno));
    std::ostringstream os;
    os << in.rdbuf();
    if (in.bad()) fail("cannot read ", path);
    return os.str();
}

} // namespace glamm
