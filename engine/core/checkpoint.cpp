#include "core/checkpoint.h"

#include "core/error.h"
#include "core/torch_zip.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

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
        if (!it.value().is_string()) fail(index_path, ": weight_map[\"", it.key(), "\"] is not a string");
        const std::string shard = it.value().get<std::string>();
        if (shard.find('/') != std::string::npos || shard == ".." || shard.empty())
            fail(index_path, ": shard name \"", shard, "\" must be a plain file name");
        weight_map[it.key()] = shard;
        if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
    }
    return shards;
}

} // namespace

at::ScalarType to_scalar_type(DType dtype) {
    switch (dtype) {
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::F64: return at::kDouble;
    case DType::I64: return at::kLong;
    case DType::I32: return at::kInt;
    case DType::I16: return at::kShort;
    case DType::I8: return at::kChar;
    case DType::U8: return at::kByte;
    case DType::BOOL: return at::kBool;
    }
    fail("unknown dtype");
}

DType from_scalar_type(at::ScalarType type) {
    switch (type) {
    case at::kFloat: return DType::F32;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    case at::kDouble: return DType::F64;
    case at::kLong: return DType::I64;
    case at::kInt: return DType::I32;
    case at::kShort: return DType::I16;
    case at::kChar: return DType::I8;
    case at::kByte: return DType::U8;
    case at::kBool: return DType::BOOL;
    default: fail("scalar type ", c10::toString(type), " cannot be stored");
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
    ckpt.format_ = fs::path(files.front()).extension() == ".safetensors" ? "safetensors" : "pytorch";
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
        return torch::from_blob(data, t.shape, [keep](void*) {}, options);
    return torch::from_blob(data, t.shape, t.strides, [keep](void*) {}, options);
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
        consumed_.insert(key);
        const StoredTensor& stored = checkpoint_->stored(key);
        if (stored.shape != target.sizes().vec()) {
            mis_shaped_.push_back(cat(key, ": expected ", target.sizes(), ", got ",
                                      c10::IntArrayRef(stored.shape)));
            return;
        }
        target.copy_(checkpoint_->tensor(key));
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

} // namespace glamm
