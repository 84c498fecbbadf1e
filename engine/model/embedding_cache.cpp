#include "model/embedding_cache.h"

#include "core/checkpoint.h"
#include "core/device.h"
#include "core/error.h"
#include "core/safetensors.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>

namespace fs = std::filesystem;

namespace glamm {

namespace {

// Bumped whenever the entry layout changes.
constexpr int kCacheFormat           = 1;
constexpr char kImageEmbeddings[]    = "image_embeddings";     // [P, H]
constexpr char kRegionLevelPrefix[]  = "region_level.";        // .i: [1, P, C]
constexpr char kSamImageEmbeddings[] = "sam_image_embeddings"; // [1, D, G, G]

// FNV-1a, 64 bit: a content hash for file names (not a security boundary: a clash would need
// two images of the same size and model whose hashes collide).
struct Fnv1a {
    static constexpr uint64_t kOffset = 14695981039346656037ull;
    static constexpr uint64_t kPrime  = 1099511628211ull;
    uint64_t h                        = kOffset;
    void add(const void* data, size_t n) {
        const auto* p = static_cast<const uint8_t*>(data);
        for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kPrime;
    }
    void add(const std::string& s) { add(s.data(), s.size() + 1); }
    template <class T> void add_value(T v) { add(&v, sizeof v); }
    std::string hex() const {
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016" PRIx64, h);
        return buf;
    }
};

void add_folder(Fnv1a& f, const std::string& dir) {
    std::error_code ec;
    f.add(fs::absolute(dir, ec).lexically_normal().string());
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file(ec)) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& p : files) {
        f.add(p.filename().string());
        f.add_value(static_cast<uint64_t>(fs::file_size(p, ec)));
        f.add_value(static_cast<int64_t>(fs::last_write_time(p, ec).time_since_epoch().count()));
    }
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

EmbeddingCache::EmbeddingCache(std::string dir, const GlammModel& model)
    : dir_(std::move(dir)), model_(model) {
    Fnv1a f;
    f.add_value(kCacheFormat);
    add_folder(f, model.model_dir);
    add_folder(f, model.vision_tower_dir);
    f.add(dtype_short_name(model.dtype));
    fingerprint_ = f.hex();
}

std::string EmbeddingCache::path_for(const Image& image) const {
    Fnv1a f;
    f.add_value(image.width);
    f.add_value(image.height);
    f.add(image.rgb.data(), image.rgb.size());
    return (fs::path(dir_) / (fingerprint_ + "-" + f.hex() + ".safetensors")).string();
}

std::optional<EncodedImage> EmbeddingCache::load(const Image& image) const {
    const std::string path = path_for(image);
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return std::nullopt;
    const auto t0 = std::chrono::steady_clock::now();
    try {
        const Checkpoint entry     = Checkpoint::open(path);
        const SafetensorsFile file = SafetensorsFile::open(path);
        const auto& meta           = file.header.metadata;
        auto number                = [&](const char* key) { return std::stoll(meta.at(key)); };
        if (meta.at("fingerprint") != fingerprint_ || number("width") != image.width ||
            number("height") != image.height)
            return std::nullopt;
        EncodedImage out;
        out.width                = image.width;
        out.height               = image.height;
        out.sam_input.resized_h  = number("resized_h");
        out.sam_input.resized_w  = number("resized_w");
        const auto options       = at::TensorOptions().device(model_.device).dtype(model_.dtype);
        out.image_embeddings     = entry.tensor(kImageEmbeddings).to(options, false, true);
        out.sam_image_embeddings = entry.tensor(kSamImageEmbeddings).to(options, false, true);
        for (size_t i = 0; entry.contains(cat(kRegionLevelPrefix, i)); ++i)
            out.clip.region_levels.push_back(
                entry.tensor(cat(kRegionLevelPrefix, i)).to(options, false, true));
        if (out.image_embeddings.size(0) != model_.num_image_tokens() ||
            out.sam_image_embeddings.size(1) != model_.config.grounding_encoder.prompt_embed_dim)
            return std::nullopt;
        out.cache_load_ms = ms_since(t0);
        return out;
    } catch (const std::exception&) {
        fs::remove(path, ec); // damaged: encode again and rewrite it
        return std::nullopt;
    }
}

void EmbeddingCache::store(const Image& image, const EncodedImage& encoded) const {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (!fs::is_directory(dir_))
        fail("cannot create the embedding cache folder ", dir_, ": ", ec.message());
    std::vector<at::Tensor> keep;
    std::vector<TensorBlob> blobs;
    auto add = [&](const std::string& name, const at::Tensor& t) {
        keep.push_back(t.detach().to(at::kCPU).contiguous());
        const at::Tensor& c = keep.back();
        blobs.push_back({name, from_scalar_type(c.scalar_type()),
                         std::vector<int64_t>(c.sizes().begin(), c.sizes().end()), c.data_ptr(),
                         c.nbytes()});
    };
    add(kImageEmbeddings, encoded.image_embeddings);
    add(kSamImageEmbeddings, encoded.sam_image_embeddings);
    for (size_t i = 0; i < encoded.clip.region_levels.size(); ++i)
        add(cat(kRegionLevelPrefix, i), encoded.clip.region_levels[i]);
    write_safetensors(path_for(image), blobs,
                      {{"fingerprint", fingerprint_},
                       {"width", std::to_string(image.width)},
                       {"height", std::to_string(image.height)},
                       {"resized_h", std::to_string(encoded.sam_input.resized_h)},
                       {"resized_w", std::to_string(encoded.sam_input.resized_w)}});
}

} // namespace glamm
