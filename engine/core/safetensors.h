// safetensors files: a strict, torch-free header parser and a read-only memory mapping.
// Format: u64 little-endian header length N, N bytes of JSON, then the data area.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace glamm {

// Element types a GLaMM release (or our own files) can hold.
enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL };

// "F32" -> DType::F32; throws Error for names we do not know.
DType dtype_from_name(const std::string& name);
const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);

// One tensor's entry in a safetensors header. Offsets are relative to the data area.
struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    uint64_t begin = 0; // first byte, relative to the data area
    uint64_t end   = 0; // one past the last byte

    uint64_t numel() const;
    uint64_t nbytes() const { return end - begin; }
};

// The parsed header of one file.
struct SafetensorsHeader {
    uint64_t data_offset = 0; // 8 + header length: where the data area starts in the file
    std::vector<TensorInfo> tensors;   // in the order of their data offsets
    std::map<std::string, std::string> metadata; // "__metadata__" (string values only)
};

// Parses and validates a safetensors header from the first `size` bytes of a file of `file_size`
// bytes. Checks: the length prefix fits the file, the JSON is an object of well-formed entries,
// known dtypes, non-negative shapes whose byte size equals end - begin, offsets inside the data
// area, no two tensors overlapping. `size` may be less than file_size (only the header is needed).
// Throws Error with what is wrong; `where` names the file in messages.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size, uint64_t file_size,
                                           const std::string& where);

// A file mapped read-only into memory. Shared by every tensor that views it, so the mapping
// lives as long as the last tensor does.
class MappedFile {
public:
    // Maps `path`; throws Error if it cannot be opened or mapped.
    static std::shared_ptr<MappedFile> open(const std::string& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

    // Gives back the resident pages wholly inside [begin, begin + bytes) when that range lies in
    // a live mapping: for the bytes of a tensor that nothing views any more (int8 quantization
    // replaced it), so that they stop counting in the process's memory. Reading them again would
    // read the file. Returns false (and does nothing) when no mapping holds the range.
    static bool release_pages(const void* begin, size_t bytes);

private:
    MappedFile() = default;
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

// A mapped safetensors file with its validated header.
struct SafetensorsFile {
    std::shared_ptr<MappedFile> file;
    SafetensorsHeader header;

    static SafetensorsFile open(const std::string& path);
    // The bytes of one tensor (inside the mapping).
    const uint8_t* data(const TensorInfo& info) const {
        return file->data() + header.data_offset + info.begin;
    }
};

// One tensor to write: raw bytes in native (little-endian) order.
struct TensorBlob {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const void* data = nullptr;
    size_t nbytes = 0;
};

// Writes a safetensors file atomically (temporary file in the same folder, then rename). Tensors
// are written in the given order, each 8-byte aligned in the data area by header padding.
void write_safetensors(const std::string& path, const std::vector<TensorBlob>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

class AtomicFile;

// Writes a safetensors file whose tensors are produced one at a time (never all in memory):
// every name, dtype and shape is declared up front (the header comes first), then the bytes of
// each tensor in the declared order, in as many write() pieces as the caller likes. Atomic like
// write_safetensors: nothing appears at `path` unless commit() succeeds.
class SafetensorsWriter {
public:
    // `tensors`: name, dtype, shape (begin/end are computed here). Throws Error on a duplicate.
    SafetensorsWriter(const std::string& path, const std::vector<TensorInfo>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
    ~SafetensorsWriter();
    SafetensorsWriter(const SafetensorsWriter&) = delete;
    SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

    // Appends bytes to the current tensor; throws Error past the declared size of the file.
    void write(const void* data, size_t nbytes);
    // Throws Error unless every declared byte was written; then renames onto the target.
    void commit();
    // Bytes of the data area written so far / declared in all.
    uint64_t written() const { return written_; }
    uint64_t total() const { return total_; }

private:
    std::string path_;
    std::unique_ptr<AtomicFile> out_;
    uint64_t written_ = 0, total_ = 0;
};

} // namespace glamm
