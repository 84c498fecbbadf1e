#include "core/checkpoint.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/torch_zip.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace glamm {

namespace {

std::vector<StoredTensor> read_safetensors(const std::string& path) {
    SafetensorsFile f = SafetensorsFile::open(path);
    std::vector<StoredTensor> out;
    out.reserve(f.header.tensors.size());
    for (const auto& info : f.header.tensors) {
        StoredTensor t;
        t.name          = info.name;
        t.dtype         = info.dtype;
        t.shape         = info.shape;
        t.file          = f.file;
        t.offset        = f.header.data_offset + info.begin;
        t.storage_bytes = info.nbytes();
        out.push_back(std::move(t));
    }
    return out;
}

// Strides equal to those of a contiguous tensor of this shape (size-1 dims may have any stride).
bool is_contiguous(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
    int64_t expected = 1;
    for (size_t d = shape.size(); d-- > 0;) {
        if (shape[d] == 0) return true;
        if (shape[d] != 1 && strides[d] != expected) return false;
        expected *= shape[d];
    }
    return true;
}

std::vector<StoredTensor> read_any(const std::string& path) {
    const std::string ext = fs::path(path).extension().string();
    if (ext == ".safetensors") return read_safetensors(path);
    return read_torch_zip(path);
}

// Reads an HF shard index; returns the shard file names in first-seen order and checks that
// every listed tensor is in the shard the index names.
std::vector<std::string> read_index(const std::string& index_path,
                                    std::map<std::string, std::string>& weight_map) {
    nlohmann::json json;
    try {
        std::ifstream in(index_path);
        if (!in) fail("cannot open ", index_path);
        json = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        fail(index_path, ": not valid JSON: ", e.what());
    }
    auto wm = json.find("weight_map");
    if (wm == json.end() || !wm->is_object()) fail(index_path, ": no \"weight_map\" object");
    std::vector<std::string> shards;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
        if (!it.value().is_string())
            fail(index_path, ": weight_map[\"", it.key(), "\"] is not a string");
        const std::string shard = it.value().get<std::string>();
        if (shard.find('/') != std::string::npos || shard == ".." || shard.empty())
            fail(index_path, ": shard name \"", shard, "\" must be a plain file name");
        weight_map[it.key()] = shard;
        if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
    }
    return shards;
}

} // namespace

std::vector<StoredTensor> read_torch_zip(const std::string& path) {
    std::shared_ptr<MappedFile> file   = MappedFile::open(path);
    std::vector<TorchZipTensor> parsed = read_torch_zip_bytes(file->data(), file->size(), path);
    std::vector<StoredTensor> out;
    out.reserve(parsed.size());
    for (auto& p : parsed) {
        StoredTensor t;
        t.name  = std::move(p.name);
        t.dtype = p.dtype;
        t.shape = std::move(p.shape);
        if (!is_contiguous(t.shape, p.strides)) t.strides = std::move(p.strides);
        t.file          = file;
        t.offset        = p.offset;
        t.storage_bytes = p.storage_bytes;
        out.push_back(std::move(t));
    }
    return out;
}

at::ScalarType to_scalar_type(DType dtype) {
    switch (dtype) {
    case DType::F32:
        return at::kFloat;
    case DType::F16:
        return at::kHalf;
    case DType::BF16:
        return at::kBFloat16;
    case DType::F64:
        return at::kDouble;
    case DType::I64:
        return at::kLong;
    case DType::I32:
        return at::kInt;
    case DType::I16:
        return at::kShort;
    case DType::I8:
        return at::kChar;
    case DType::U8:
        return at::kByte;
    case DType::BOOL:
        return at::kBool;
    }
    fail("unknown dtype");
}

DType from_scalar_type(at::ScalarType type) {
    switch (type) {
    case at::kFloat:
        return DType::F32;
    case at::kHalf:
        return DType::F16;
    case at::kBFloat16:
        return DType::BF16;
    case at::kDouble:
        return DType::F64;
    case at::kLong:
        return DType::I64;
    case at::kInt:
        return DType::I32;
    case at::kShort:
        return DType::I16;
    case at::kChar:
        return DType::I8;
    case at::kByte:
        return DType::U8;
    case at::kBool:
        return DType::BOOL;
    default:
        fail("scalar type ", c10::toString(type), " cannot be stored");
    }
}

Checkpoint Checkpoint::open(const std::string& path) {
    Checkpoint ckpt;
    std::error_code ec;
    if (!fs::exists(path, ec)) fail(path, ": no such file or folder");
    std::vector<std::string> files;
    std::map<std::string, std::string> weight_map;
    std::string index_path;
    if (fs::is_directory(path)) {
        const fs::path dir(path);
        const char* indexes[] = {"model.safetensors.index.json", "pytorch_model.bin.index.json"};
        const char* singles[] = {"model.safetensors", "pytorch_model.bin"};
        for (int i = 0; i < 2 && files.empty(); ++i) {
            if (fs::exists(dir / indexes[i])) {
                index_path = (dir / indexes[i]).string();
                for (const auto& shard : read_index(index_path, weight_map)) {
                    const fs::path shard_path = dir / shard;
                    if (!fs::exists(shard_path))
                        fail(index_path, " lists shard ", shard, ", which is missing from ", path);
                    files.push_back(shard_path.string());
                }
            } else if (fs::exists(dir / singles[i])) {
                files.push_back((dir / singles[i]).string());
            }
        }
        if (files.empty())
            fail(path, ": no weights found (expected model.safetensors[.index.json] or "
                       "pytorch_model[-0000N-of-0000M].bin with pytorch_model.bin.index.json)");
    } else {
        files.push_back(path);
    }
    for (const auto& file : files) {
        for (auto& t : read_any(file)) {
            if (!weight_map.empty()) {
                auto it = weight_map.find(t.name);
                if (it == weight_map.end())
                    fail(file, ": tensor \"", t.name, "\" is not listed in ", index_path);
                if (fs::path(file).filename() != it->second)
                    fail(index_path, " places \"", t.name, "\" in ", it->second, " but it is in ",
                         fs::path(file).filename().string());
            }
            ckpt.add(std::move(t));
        }
    }
    for (const auto& [name, shard] : weight_map)
        if (!ckpt.contains(name))
            fail(index_path, " lists \"", name, "\" in ", shard, " but the shard does not hold it");
    ckpt.files_  = files;
    ckpt.source_ = path;
    ckpt.format_ =
        fs::path(files.front()).extension() == ".safetensors" ? "safetensors" : "pytorch";
    return ckpt;
}

void Checkpoint::add(StoredTensor tensor) {
    const std::string name = tensor.name;
    if (!tensors_.emplace(name, std::move(tensor)).second)
        fail("tensor \"", name, "\" appears twice in the checkpoint");
}

const StoredTensor& Checkpoint::stored(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) fail("tensor \"", name, "\" is not in the checkpoint");
    return it->second;
}

at::Tensor Checkpoint::tensor(const std::string& name) const {
    const StoredTensor& t = stored(name);
    auto keep             = t.file; // the tensor's deleter keeps the mapping alive
    void* data            = const_cast<uint8_t*>(t.file->data() + t.offset);
    auto options          = at::TensorOptions().dtype(to_scalar_type(t.dtype));
    if (t.strides.empty())
        return torch::from_blob(
            data, t.shape, [keep](void*) {}, options);
    return torch::from_blob(
        data, t.shape, t.strides, [keep](void*) {}, options);
}

std::vector<std::string> Checkpoint::names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const auto& [name, t] : tensors_) out.push_back(name);
    return out;
}

void LoadReport::load_module(torch::nn::Module& module, const std::string& prefix,
                             const std::function<bool(const std::string&)>& optional) {
    torch::NoGradGuard no_grad;
    auto load_one = [&](const std::string& name, at::Tensor& target) {
        const std::string key = prefix + name;
        if (!checkpoint_->contains(key)) {
            if (!(optional && optional(name))) missing_.push_back(key);
            return;
        }
        if (on_tensor_) on_tensor_(loaded_bytes_);
        consumed_.insert(key);
        const StoredTensor& stored = checkpoint_->stored(key);
        if (stored.shape != target.sizes().vec()) {
            mis_shaped_.push_back(
                cat(key, ": expected ", target.sizes(), ", got ", c10::IntArrayRef(stored.shape)));
            return;
        }
        const at::Tensor source = checkpoint_->tensor(key);
        if (share_ && target.device().is_cpu() && source.scalar_type() == target.scalar_type() &&
            source.is_contiguous()) {
            target.set_data(source); // the module's tensor now views the mapped file
            shared_bytes_ += static_cast<int64_t>(source.nbytes());
        } else {
            target.copy_(source);
            // The copy is what the model keeps; the file pages the read brought in would count in
            // the process's memory until unmapped (GLaMM's SAM is stored in f32: 2.6 GB of them
            // for a bf16 load). Clean pages of a private mapping: a later read reads the file.
            if (source.is_contiguous())
                MappedFile::release_pages(source.data_ptr(), source.nbytes());
        }
        loaded_bytes_ += static_cast<int64_t>(target.nbytes());
    };
    for (auto& item : module.named_parameters(/*recurse=*/true)) load_one(item.key(), item.value());
    for (auto& item : module.named_buffers(/*recurse=*/true)) load_one(item.key(), item.value());
}

bool LoadReport::is_ignored(const std::string& name) const {
    for (const auto& pattern : ignored_) {
        if (pattern.rfind("*", 0) == 0) {
            const std::string suffix = pattern.substr(1);
            if (name.size() >= suffix.size() &&
                name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
                return true;
        } else if (name.rfind(pattern, 0) == 0) {
            return true;
        }
    }
    return false;
}

std::vector<std::string> LoadReport::ignored_keys() const {
    std::vector<std::string> out;
    for (const auto& name : checkpoint_->names())
        if (!consumed_.count(name) && is_ignored(name)) out.push_back(name);
    return out;
}

void LoadReport::finish(const std::string& what) const {
    std::vector<std::string> unexpected;
    for (const auto& name : checkpoint_->names())
        if (!consumed_.count(name) && !is_ignored(name)) unexpected.push_back(name);
    if (missing_.empty() && unexpected.empty() && mis_shaped_.empty()) return;
    std::ostringstream os;
    os << what << " does not match the model its config describes:";
    auto list = [&](const char* title, const std::vector<std::string>& keys) {
        if (keys.empty()) return;
        os << "\n  " << title << " (" << keys.size() << "):";
        const size_t shown = std::min<size_t>(keys.size(), 20);
        for (size_t i = 0; i < shown; ++i) os << "\n    " << keys[i];
        if (keys.size() > shown) os << "\n    ... and " << keys.size() - shown << " more";
    };
    list("missing keys", missing_);
    list("unexpected keys", unexpected);
    list("mis-shaped keys", mis_shaped_);
    throw Error(os.str());
}

namespace {

// Files that hold weights (of this or another format): never copied by convert_checkpoint, and
// refused in its output folder so that stale shards cannot mix with new ones.
bool is_weight_file(const fs::path& file) {
    const std::string name = file.filename().string();
    const std::string ext  = file.extension().string();
    return ext == ".safetensors" || ext == ".bin" || ext == ".pt" || ext == ".pth" ||
           ext == ".ckpt" || name == "model.safetensors.index.json" ||
           name == "pytorch_model.bin.index.json";
}

bool is_floating(DType d) {
    return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16;
}

// The dtype a tensor is written in.
DType output_dtype(const StoredTensor& t, const ConvertOptions& options) {
    return options.float_dtype && is_floating(t.dtype) ? *options.float_dtype : t.dtype;
}

// Bytes one tensor takes when written contiguous in `dtype`.
uint64_t contiguous_bytes(const StoredTensor& t, DType dtype) {
    uint64_t n = dtype_size(dtype);
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    return n;
}

// HF's config.json name of a dtype.
const char* torch_dtype_name(DType d) {
    switch (d) {
    case DType::F64:
        return "float64";
    case DType::F16:
        return "float16";
    case DType::BF16:
        return "bfloat16";
    default:
        return "float32";
    }
}

} // namespace

void convert_checkpoint(const Checkpoint& checkpoint, const std::string& out_dir,
                        const ConvertOptions& options) {
    std::error_code ec;
    const fs::path out(out_dir);
    const fs::path source(checkpoint.source());
    const bool from_folder = !source.empty() && fs::is_directory(source);
    if (from_folder && fs::exists(out) && fs::equivalent(out, source, ec))
        fail("converting ", checkpoint.source(), ": the output folder is the source folder");
    fs::create_directories(out, ec);
    if (!fs::is_directory(out))
        fail("cannot create the output folder ", out_dir, ": ", ec.message());
    for (const auto& entry : fs::directory_iterator(out))
        if (entry.is_regular_file() && is_weight_file(entry.path()))
            fail(out_dir, " already holds weights (", entry.path().filename().string(),
                 "); convert into an empty folder");

    // Plan shards greedily in name order, each at most max_shard_bytes.
    const std::vector<std::string> names = checkpoint.names();
    std::vector<std::vector<std::string>> shards;
    uint64_t shard_bytes = 0, total_bytes = 0;
    for (const auto& name : names) {
        const StoredTensor& stored = checkpoint.stored(name);
        const uint64_t bytes       = contiguous_bytes(stored, output_dtype(stored, options));
        if (shards.empty() || (shard_bytes > 0 && shard_bytes + bytes > options.max_shard_bytes)) {
            shards.emplace_back();
            shard_bytes = 0;
        }
        shards.back().push_back(name);
        shard_bytes += bytes;
        total_bytes += bytes;
    }
    if (shards.empty()) shards.emplace_back(); // an empty checkpoint still gets its file

    const size_t count                = shards.size();
    nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
    for (size_t s = 0; s < count; ++s) {
        char file_name[64];
        if (count == 1)
            std::snprintf(file_name, sizeof file_name, "model.safetensors");
        else
            std::snprintf(file_name, sizeof file_name, "model-%05zu-of-%05zu.safetensors", s + 1,
                          count);
        // Wider elements first keeps every tensor aligned to its element size in the data area.
        std::vector<std::string> order = shards[s];
        std::stable_sort(order.begin(), order.end(),
                         [&](const std::string& a, const std::string& b) {
                             return dtype_size(output_dtype(checkpoint.stored(a), options)) >
                                    dtype_size(output_dtype(checkpoint.stored(b), options));
                         });
        std::vector<at::Tensor> keep; // contiguous copies of strided views, alive until written
        std::vector<TensorBlob> blobs;
        for (const auto& name : order) {
            const StoredTensor& t = checkpoint.stored(name);
            const DType dtype     = output_dtype(t, options);
            TensorBlob blob{name, dtype, t.shape, nullptr, contiguous_bytes(t, dtype)};
            if (dtype != t.dtype) {
                keep.push_back(checkpoint.tensor(name).to(to_scalar_type(dtype)).contiguous());
                blob.data = keep.back().data_ptr();
            } else if (t.strides.empty()) {
                if (blob.nbytes > t.storage_bytes)
                    fail(t.file->path(), ": tensor \"", name, "\" needs ", blob.nbytes,
                         " bytes but its storage holds ", t.storage_bytes);
                blob.data = t.file->data() + t.offset;
            } else {
                keep.push_back(checkpoint.tensor(name).contiguous());
                blob.data = keep.back().data_ptr();
            }
            blobs.push_back(std::move(blob));
        }
        for (const auto& name : shards[s]) weight_map[name] = file_name;
        with_context(cat("converting ", checkpoint.source()), [&] {
            write_safetensors((out / file_name).string(), blobs, {{"format", "pt"}});
        });
        if (options.progress) options.progress(file_name, s + 1, count);
    }
    if (count > 1) {
        nlohmann::ordered_json index;
        index["metadata"]   = {{"total_size", total_bytes}};
        index["weight_map"] = weight_map;
        write_file_atomic((out / "model.safetensors.index.json").string(), index.dump(2) + "\n");
    }

    // The release's other files (config, tokenizer, generation config, ...).
    if (from_folder) {
        for (const auto& entry : fs::directory_iterator(source)) {
            if (!entry.is_regular_file() || is_weight_file(entry.path())) continue;
            std::string text = read_file(entry.path().string());
            if (options.float_dtype && entry.path().filename() == "config.json") {
                auto config =
                    nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
                if (config.is_object() && config.contains("torch_dtype")) {
                    config["torch_dtype"] = torch_dtype_name(*options.float_dtype);
                    text                  = config.dump(2) + "\n";
                }
            }
            write_file_atomic((out / entry.path().filename()).string(), text);
        }
    }
}

} // namespace glamm
