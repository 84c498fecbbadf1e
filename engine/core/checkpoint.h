// Model weights on disk, whatever the release format: safetensors (single or sharded through
// model.safetensors.index.json) or PyTorch zip shards (pytorch_model*.bin + index). Tensors are
// views over read-only memory mappings; loading into modules is strict and reports every
// missing, unexpected and mis-shaped key at once.
#pragma once

#include "core/safetensors.h"

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace torch::nn {
class Module;
}

namespace glamm {

// One tensor as stored in a file: where its bytes are and how to view them.
struct StoredTensor {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    std::vector<int64_t> strides;     // in elements; empty means contiguous
    std::shared_ptr<MappedFile> file; // keeps the mapping alive
    uint64_t offset        = 0;       // byte offset of element [0, ..., 0] in the file
    uint64_t storage_bytes = 0;       // bytes from `offset` that the view may touch (bounds)
};

// Every tensor of a checkpoint folder (or single file), by name.
class Checkpoint {
public:
    // Opens a folder holding model.safetensors.index.json, model.safetensors,
    // pytorch_model.bin.index.json or pytorch_model.bin (in that order of preference), or a single
    // .safetensors / .bin file. Validates every shard's header; throws Error naming the file and
    // the problem (missing shard, truncated file, lying header, ...).
    static Checkpoint open(const std::string& path);

    bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
    const StoredTensor& stored(const std::string& name) const;
    // A CPU tensor viewing the mapped bytes (no copy). Throws if the name is absent.
    at::Tensor tensor(const std::string& name) const;
    std::vector<std::string> names() const;
    const std::vector<std::string>& files() const { return files_; }
    // "safetensors" or "pytorch".
    const std::string& format() const { return format_; }
    // The path open() was given (a folder or a single file).
    const std::string& source() const { return source_; }
    size_t size() const { return tensors_.size(); }

    // Adds tensors (used by the readers); a duplicate name is an error.
    void add(StoredTensor tensor);

private:
    std::map<std::string, StoredTensor> tensors_;
    std::vector<std::string> files_;
    std::string format_;
    std::string source_;
};

// Reads every tensor of a torch.save state-dict `.bin` file (core/torch_zip.h parses it). Tensors
// view the mapped file (records are stored uncompressed); strides are kept for non-contiguous
// views and left empty for contiguous ones. Throws Error naming the file and what is wrong.
std::vector<StoredTensor> read_torch_zip(const std::string& path);

// How convert_checkpoint writes its output.
struct ConvertOptions {
    // Largest shard in bytes (a single tensor larger than this gets a shard of its own).
    uint64_t max_shard_bytes = 2ull << 30;
    // Called after each shard is written: (file name, shards done, shard count).
    std::function<void(const std::string&, size_t, size_t)> progress;
    // When set, floating-point tensors (F64, F32, F16, BF16) are written in this dtype (rounded
    // to nearest) and config.json's "torch_dtype" says so; other tensors keep theirs.
    std::optional<DType> float_dtype;
};

// Writes every tensor of `checkpoint` to `out_dir` as safetensors with the same names and dtypes
// (strided views are written contiguous): one model.safetensors when it fits one shard, else
// model-0000N-of-0000M.safetensors + model.safetensors.index.json. Every file is written
// atomically; the index last. When the checkpoint was opened from a folder, the folder's other
// regular files (config.json, tokenizer files, ...) are copied too. `out_dir` is created if needed;
// it must not be the source folder nor already hold weights.
void convert_checkpoint(const Checkpoint& checkpoint, const std::string& out_dir,
                        const ConvertOptions& options = {});

// Converts a DType to the matching ATen scalar type.
at::ScalarType to_scalar_type(DType dtype);
DType from_scalar_type(at::ScalarType type);

// Collects what a strict load finds, so that one error lists every problem.
class LoadReport {
public:
    explicit LoadReport(const Checkpoint& checkpoint) : checkpoint_(&checkpoint) {}

    // Copies every parameter and buffer of `module` from `prefix + name`, converting to the
    // module's dtype (or shares it: share_stored_tensors). Absent keys are recorded as missing
    // unless `optional(name)` says so; shape mismatches are recorded with expected vs got.
    void load_module(torch::nn::Module& module, const std::string& prefix,
                     const std::function<bool(const std::string&)>& optional = {});
    // From now on, a parameter or buffer on the CPU whose stored tensor has its dtype and is
    // contiguous takes the stored tensor itself (a view of the memory-mapped file) instead of a
    // copy: the weights are then in memory once, as file pages the kernel can share and drop.
    void share_stored_tensors(bool on) { share_ = on; }
    // Called before each tensor load_module reads, with the bytes read so far by this report
    // (progress); it may throw (Cancelled) to stop the load between two tensors.
    void on_each_tensor(std::function<void(int64_t bytes_so_far)> callback) {
        on_tensor_ = std::move(callback);
    }
    int64_t loaded_bytes() const { return loaded_bytes_; }
    // Bytes that load_module shared rather than copied so far.
    int64_t shared_bytes() const { return shared_bytes_; }
    // Marks a key as used outside load_module (e.g. read directly).
    void consume(const std::string& name) { consumed_.insert(name); }
    // Keys matching a prefix (or `*.suffix`) that are known harmless and skipped by name.
    void ignore(const std::string& pattern) { ignored_.push_back(pattern); }
    // Throws Error listing missing, unexpected (not consumed, not ignored) and mis-shaped keys.
    void finish(const std::string& what) const;

    const std::set<std::string>& consumed() const { return consumed_; }
    std::vector<std::string> ignored_keys() const;

private:
    bool is_ignored(const std::string& name) const;

    const Checkpoint* checkpoint_;
    bool share_           = false;
    int64_t shared_bytes_ = 0;
    int64_t loaded_bytes_ = 0;
    std::function<void(int64_t)> on_tensor_;
    std::set<std::string> consumed_;
    std::vector<std::string> ignored_;
    std::vector<std::string> missing_;
    std::vector<std::string> mis_shaped_;
};

} // namespace glamm
