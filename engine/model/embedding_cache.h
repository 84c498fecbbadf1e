// The on-disk image-embedding cache: what a Session keeps of an encoded image (projected CLIP
// tokens, the region encoder's CLIP levels, SAM's image embeddings and the mask geometry) in one
// safetensors file per (model, image), so that re-opening an image skips CLIP and SAM.
// Legend: P image tokens, H LLaMA width, C CLIP width, D SAM prompt width, G SAM grid.
#pragma once

#include "model/glamm_model.h"
#include "vision/image.h"

#include <optional>
#include <string>

namespace glamm {

class EmbeddingCache {
public:
    // Files go to `dir` (created on first store). The model's fingerprint (its folders, the size
    // and modification time of every weight file, the dtype) is part of every key, so a changed
    // model never reads another's entries.
    EmbeddingCache(std::string dir, const GlammModel& model);

    // The entry for `image`, or nullopt (no entry, or one that does not match: another model or
    // size, a damaged file — a damaged entry is deleted). Tensors land on the model's device in
    // its dtype; load_ms is set, the encoder timings are 0.
    std::optional<EncodedImage> load(const Image& image) const;
    // Writes the entry atomically. Errors (a full disk, a read-only folder) are thrown.
    void store(const Image& image, const EncodedImage& encoded) const;
    // DIR/<model fingerprint>-<image hash>.safetensors
    std::string path_for(const Image& image) const;

private:
    std::string dir_;
    std::string fingerprint_;
    const GlammModel& model_;
};

} // namespace glamm
