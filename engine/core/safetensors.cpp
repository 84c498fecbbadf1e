#include "core/safetensors.h"

#include "core/atomic_file.h"
#include "core/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace glamm {

namespace {

struct DTypeEntry {
    DType dtype;
    const char* name;
    size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::F64, "F64", 8}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

// A header larger than this is not a model header but an attack or a corrupt file.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

uint64_t read_u64_le(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

} // namespace

DType dtype_from_name(const std::string& name) {
    for (const auto& e : kDTypes)
        if (name == e.name) return e.dtype;
    fail("unknown dtype \"", name, "\" (known: F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL)");
}

const char* dtype_name(DType dtype) {
    for (const auto& e : kDTypes)
        if (e.dtype == dtype) return e.name;
    return "?";
}

size_t dtype_size(DType dtype) {
    for (const auto& e : kDTypes)
        if (e.dtype == dtype) return e.size;
    return 0;
}

uint64_t TensorInfo::numel() const {
    uint64_t n = 1;
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    return n;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size, uint64_t file_size,
                                           const std::string& where) {
    if (file_size < 8 || size < 8)
        fail(where, ": file is ", file_size, " bytes, too short for a safetensors header");
    const uint64_t header_len = read_u64_le(bytes);
    if (header_len > kMaxHeaderBytes)
        fail(where, ": header length ", header_len, " exceeds the ", kMaxHeaderBytes,
             "-byte limit (not a safetensors file, or corrupt)");
    if (header_len > file_size - 8)
        fail(where, ": header length ", header_len, " runs past the end of the file (",
             file_size, " bytes): truncated or not a safetensors file");
    if (header_len > size - 8) fail(where, ": header not fully available");

    SafetensorsHeader header;
    header.data_offset  = 8 + header_len;
    const uint64_t data_size = file_size - header.data_offset;

    nlohmann::json json;
    try {
        json = nlohmann::json::parse(bytes + 8, bytes + 8 + header_len);
    } catch (const std::exception& e) {
        fail(where, ": header is not valid JSON: ", e.what());
    }
    if (!json.is_object()) fail(where, ": header is not a JSON object");

    for (auto it = json.begin(); it != json.end(); ++it) {
        const std::string& name = it.key();
        const auto& value       = it.value();
        if (name == "__metadata__") {
            if (!value.is_object()) fail(where, ": __metadata__ is not an object");
            for (auto m = value.begin(); m != value.end(); ++m)
                if (m.value().is_string()) header.metadata[m.key()] = m.value().get<std::string>();
            continue;
        }
        const std::string ctx = where + ": tensor \"" + name + "\"";
        if (!value.is_object()) fail(ctx, ": entry is not an object");
        auto dtype_it = value.find("dtype");
        auto shape_it = value.find("shape");
        auto offs_it  = value.find("data_offsets");
        if (dtype_it == value.end() || !dtype_it->is_string())
            fail(ctx, ": missing or non-string \"dtype\"");
        if (shape_it == value.end() || !shape_it->is_array())
            fail(ctx, ": missing or non-array \"shape\"");
        if (offs_it == value.end() || !offs_it->is_array() || offs_it->size() != 2)
            fail(ctx, ": \"data_offsets\" must be an array of two integers");

        TensorInfo info;
        info.name = name;
        try {
            info.dtype = dtype_from_name(dtype_it->get<std::string>());
        } catch (const Error& e) {
            fail(ctx, ": ", e.what());
        }
        uint64_t numel = 1;
        for (const auto& d : *shape_it) {
            if (!d.is_number_unsigned()) fail(ctx, ": shape entries must be non-negative integers");
            const uint64_t dim = d.get<uint64_t>();
            if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
                (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim))
                fail(ctx, ": shape overflows");
            numel *= dim;
            info.shape.push_back(static_cast<int64_t>(dim));
        }
        for (const auto& o : *offs_it)
            if (!o.is_number_unsigned()) fail(ctx, ": data_offsets must be non-negative integers");
        info.begin = (*offs_it)[0].get<uint64_t>();
        info.end   = (*offs_it)[1].get<uint64_t>();
        if (info.end < info.begin) fail(ctx, ": data_offsets [", info.begin, ", ", info.end, "] are reversed");
        if (info.end > data_size)
            fail(ctx, ": data_offsets end ", info.end, " lies past the data area (", data_size,
                 " bytes): the file is truncated or the header lies");
        const uint64_t esize = dtype_size(info.dtype);
        if (numel > std::numeric_limits<uint64_t>::max() / esize) fail(ctx, ": shape overflows");
        if (numel * esize != info.end - info.begin)
            fail(ctx, ": ", info.end - info.begin, " bytes stored but shape ",
                 nlohmann::json(info.shape).dump(), " of ", dtype_name(info.dtype), " needs ",
                 numel * esize);
        header.tensors.push_back(std::move(info));
    }

    std::sort(header.tensors.begin(), header.tensors.end(),
              [](const TensorInfo& a, const TensorInfo& b) {
                  return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
              });
    for (size_t i = 1; i < header.tensors.size(); ++i) {
        const auto& prev = header.tensors[i - 1];
        const auto& cur  = header.tensors[i];
        if (cur.begin < prev.end)
            fail(where, ": tensors \"", prev.name, "\" [", prev.begin, ", ", prev.end, ") and \"",
                 cur.name, "\" [", cur.begin, ", ", cur.end, ") overlap");
    }
    return header;
}

namespace {

// The live mappings (begin, size), for MappedFile::release_pages.
std::mutex& mappings_mutex() {
    static std::mutex m;
    return m;
}
std::vector<std::pair<const uint8_t*, size_t>>& live_mappings() {
    static std::vector<std::pair<const uint8_t*, size_t>> live;
    return live;
}

} // namespace

bool MappedFile::release_pages(const void* begin, size_t bytes) {
    const auto* first = static_cast<const uint8_t*>(begin);
    std::lock_guard<std::mutex> lock(mappings_mutex());
    for (const auto& [data, size] : live_mappings()) {
        if (first < data || first + bytes > data + size) continue;
        const auto page      = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
        const uintptr_t from = (reinterpret_cast<uintptr_t>(first) + page - 1) / page * page;
        const uintptr_t to   = (reinterpret_cast<uintptr_t>(first) + bytes) / page * page;
        if (to > from) madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
        return true;
    }
    return false;
}

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open ", path, ": ", std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        int err = errno;
        ::close(fd);
        fail("cannot stat ", path, ": ", std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(path, " is not a regular file");
    }
    std::shared_ptr<MappedFile> mapped(new MappedFile());
    mapped->path_ = path;
    mapped->size_ = static_cast<size_t>(st.st_size);
    if (mapped->size_ > 0) {
        // Private and writable: a model's parameters may view the mapping (LoadReport's shared
        // loading), and a write to one then copies that page instead of faulting; the file
        // itself is never written.
        void* p = mmap(nullptr, mapped->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            ::close(fd);
            fail("cannot map ", path, ": ", std::strerror(err));
        }
        mapped->data_ = static_cast<const uint8_t*>(p);
        std::lock_guard<std::mutex> lock(mappings_mutex());
        live_mappings().emplace_back(mapped->data_, mapped->size_);
    }
    ::close(fd);
    return mapped;
}

MappedFile::~MappedFile() {
    if (!data_) return;
    {
        std::lock_guard<std::mutex> lock(mappings_mutex());
        auto& live = live_mappings();
        live.erase(std::remove(live.begin(), live.end(), std::make_pair(data_, size_)), live.end());
    }
    munmap(const_cast<uint8_t*>(data_), size_);
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
    SafetensorsFile f;
    f.file   = MappedFile::open(path);
    f.header = parse_safetensors_header(f.file->data(), f.file->size(), f.file->size(), path);
    return f;
}

void write_safetensors(const std::string& path, const std::vector<TensorBlob>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (const auto& t : tensors) {
        uint64_t numel = 1;
        for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
        if (numel * dtype_size(t.dtype) != t.nbytes)
            fail("writing ", path, ": tensor \"", t.name, "\" has ", t.nbytes,
                 " bytes, its shape needs ", numel * dtype_size(t.dtype));
        header[t.name] = {{"dtype", dtype_name(t.dtype)},
                          {"shape", t.shape},
                          {"data_offsets", {offset, offset + t.nbytes}}};
        offset += t.nbytes;
    }
    std::string text = header.dump();
    // Pad the header with spaces so the data area starts 8-byte aligned (as the reference writer).
    while ((8 + text.size()) % 8 != 0) text.push_back(' ');
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>((text.size() >> (8 * i)) & 0xff);

    AtomicFile out(path);
    out.write(len, sizeof len);
    out.write(text);
    for (const auto& t : tensors) out.write(t.data, t.nbytes);
    out.commit();
}

SafetensorsWriter::SafetensorsWriter(const std::string& path,
                                     const std::vector<TensorInfo>& tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path) {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    for (const auto& t : tensors) {
        if (header.contains(t.name)) fail("writing ", path, ": tensor \"", t.name, "\" declared twice");
        const uint64_t nbytes = t.numel() * dtype_size(t.dtype);
        header[t.name]        = {{"dtype", dtype_name(t.dtype)},
                                 {"shape", t.shape},
                                 {"data_offsets", {total_, total_ + nbytes}}};
        total_ += nbytes;
    }
    std::string text = header.dump();
    while ((8 + text.size()) % 8 != 0) text.push_back(' ');
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>((text.size() >> (8 * i)) & 0xff);
    out_ = std::make_unique<AtomicFile>(path);
    out_->write(len, sizeof len);
    out_->write(text);
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::write(const void* data, size_t nbytes) {
    if (written_ + nbytes > total_)
        fail("writing ", path_, ": ", written_ + nbytes, " bytes written but the header declares ",
             total_);
    out_->write(data, nbytes);
    written_ += nbytes;
}

void SafetensorsWriter::commit() {
    if (written_ != total_)
        fail("writing ", path_, ": only ", written_, " of ", total_, " declared bytes written");
    out_->commit();
}

} // namespace glamm
