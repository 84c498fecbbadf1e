// Per-layer key/value cache for incremental LLaMA decoding: preallocated buffers that grow by
// doubling (or once, through reserve()), so decoding a token never reallocates.
// Legend: L layers, Hkv key/value heads, N capacity (positions), D head dim.
#pragma once

#include "core/config.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace glamm {

// Keys and values of every decoder layer for positions [0, length()). Keys are stored after RoPE.
// The buffers take the dtype and device of the first keys written (the model's dtype), and keep
// them until a write with other options, which reallocates (and requires length() == 0).
// Not thread-safe; one cache belongs to one Session.
class KVCache {
public:
    KVCache() = default;
    // `capacity` positions are allocated on the first write (0: exactly what the first write
    // needs).
    KVCache(int64_t num_layers, int64_t kv_heads, int64_t head_dim, int64_t capacity = 0);
    explicit KVCache(const LlamaConfig& config, int64_t capacity = 0);

    int64_t num_layers() const { return num_layers_; }
    int64_t kv_heads() const { return kv_heads_; }
    int64_t head_dim() const { return head_dim_; }
    // Positions held (the next write starts here).
    int64_t length() const { return length_; }
    // Positions the buffers can hold without growing.
    int64_t capacity() const { return capacity_; }

    // Grows the buffers (keeping the content) so that `positions` fit; no-op when they already do.
    void reserve(int64_t positions);
    // Forgets every position; keeps the buffers.
    void reset() { length_ = 0; }
    // Keeps positions [0, n) (multi-turn reuse of a shared prefix). Throws if n > length().
    void truncate(int64_t n);

    // Used by the attention of layer `layer` during a forward that starts at `start` (must equal
    // length()): stores keys/values [1, Hkv, T, D] at [start, start + T) and returns views
    // [1, Hkv, start + T, D] of everything held for that layer, this write included.
    std::pair<at::Tensor, at::Tensor> write(int64_t layer, int64_t start, const at::Tensor& keys,
                                            const at::Tensor& values);
    // Called once all layers have written [start, start + T): length() becomes start + T.
    void commit(int64_t start, int64_t count);

    // Fixed-shape access for decoding steps recorded once and replayed (StaticDecoder): the
    // position is a device tensor, so nothing here reads it on the host.
    // True when the buffers exist with the dtype and device of `like`.
    bool allocated_like(const at::Tensor& like) const;
    // Stores keys/values [1, Hkv, 1, D] at `position` ([1] int64 on the buffers' device) and
    // returns the whole buffers [1, Hkv, N, D] of layer `layer` (positions past `position` hold
    // zeros or stale finite values: the caller masks them). Requires allocated_like(keys).
    std::pair<at::Tensor, at::Tensor> write_at(int64_t layer, const at::Tensor& position,
                                               const at::Tensor& keys, const at::Tensor& values);

private:
    void allocate(int64_t capacity, const at::Tensor& like);

    int64_t num_layers_       = 0;
    int64_t kv_heads_         = 0;
    int64_t head_dim_         = 0;
    int64_t capacity_         = 0;
    int64_t initial_capacity_ = 0;
    int64_t length_           = 0;
    std::vector<at::Tensor> keys_;   // L x [1, Hkv, N, D]
    std::vector<at::Tensor> values_; // L x [1, Hkv, N, D]
};

} // namespace glamm
