// Files written all or nothing: data goes to a temporary file beside the target, which is renamed
// over the target only once everything was written and flushed. A full disk or a crash leaves the
// old file (or none), never a half-written one.
#pragma once

#include <cstddef>
#include <string>

namespace glamm {

class AtomicFile {
public:
    // Creates a temporary file in the folder of `path`; throws Error if that is impossible.
    explicit AtomicFile(std::string path);
    // Removes the temporary file unless commit() succeeded.
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    // Appends bytes; throws Error (with strerror, e.g. "No space left on device") on failure.
    void write(const void* data, size_t size);
    void write(const std::string& text) { write(text.data(), text.size()); }
    // Flushes, closes and renames onto the target path.
    void commit();

    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::string temp_path_;
    int fd_ = -1;
    bool committed_ = false;
};

// Writes `contents` to `path` atomically.
void write_file_atomic(const std::string& path, const std::string& contents);

// Reads a whole file; throws Error naming the file if it cannot.
std::string read_file(const std::string& path);

} // namespace glamm
