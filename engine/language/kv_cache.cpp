// Per-layer key/value cache for incremental LLaMA decoding.
// Legend: L layers, Hkv key/value heads, N capacity (positions), T new positions, D head dim.
#include "language/kv_cache.h"

#include "core/error.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace glamm {

KVCache::KVCache(int64_t num_layers, int64_t kv_heads, int64_t head_dim, int64_t capacity)
    : num_layers_(num_layers), kv_heads_(kv_heads), head_dim_(head_dim),
      initial_capacity_(capacity) {
    if (num_layers <= 0 || kv_heads <= 0 || head_dim <= 0 || capacity < 0)
        fail("KVCache: bad geometry (layers ", num_layers, ", kv heads ", kv_heads, ", head dim ",
             head_dim, ", capacity ", capacity, ")");
}

KVCache::KVCache(const LlamaConfig& config, int64_t capacity)
    : KVCache(config.num_hidden_layers, config.kv_heads(), config.head_dim(), capacity) {}

void KVCache::allocate(int64_t capacity, const at::Tensor& like) {
    std::vector<at::Tensor> keys, values;
    keys.reserve(num_layers_);
    values.reserve(num_layers_);
    for (int64_t layer = 0; layer < num_layers_; ++layer) {
        // Zeros, not garbage: a fixed-shape step (write_at) attends over the whole capacity with
        // the unused positions masked, and a masked NaN would still poison probs x values.
        keys.push_back(at::zeros({1, kv_heads_, capacity, head_dim_}, like.options()));
        values.push_back(at::zeros({1, kv_heads_, capacity, head_dim_}, like.options()));
        if (length_ > 0) {
            keys.back().narrow(2, 0, length_).copy_(keys_[layer].narrow(2, 0, length_));
            values.back().narrow(2, 0, length_).copy_(values_[layer].narrow(2, 0, length_));
        }
    }
    keys_     = std::move(keys);
    values_   = std::move(values);
    capacity_ = capacity;
}

void KVCache::reserve(int64_t positions) {
    if (positions <= capacity_) return;
    if (keys_.empty()) {
        // Dtype and device are not known before the first write: allocate then.
        initial_capacity_ = std::max(initial_capacity_, positions);
        return;
    }
    allocate(positions, keys_.front());
}

void KVCache::truncate(int64_t n) {
    if (n < 0 || n > length_)
        fail("KVCache::truncate(", n, "): the cache holds ", length_, " positions");
    length_ = n;
}

std::pair<at::Tensor, at::Tensor> KVCache::write(int64_t layer, int64_t start,
                                                 const at::Tensor& keys, const at::Tensor& values) {
    if (layer < 0 || layer >= num_layers_)
        fail("KVCache::write: layer ", layer, " out of range (", num_layers_, " layers)");
    if (start != length_)
        fail("KVCache::write: a forward must start at the cache length ", length_, ", not ", start);
    const int64_t count = keys.size(2);
    if (keys.dim() != 4 || keys.size(0) != 1 || keys.size(1) != kv_heads_ ||
        keys.size(3) != head_dim_ || values.sizes() != keys.sizes())
        fail("KVCache::write: keys ", keys.sizes(), " / values ", values.sizes(),
             " do not match [1, ", kv_heads_, ", T, ", head_dim_, "]");
    const int64_t needed = start + count;
    const bool options_changed =
        !keys_.empty() && (keys_.front().scalar_type() != keys.scalar_type() ||
                           keys_.front().device() != keys.device());
    if (options_changed) {
        if (length_ != 0)
            fail("KVCache::write: dtype/device changed while the cache holds ", length_,
                 " positions; reset() it first");
        keys_.clear();
        values_.clear();
        capacity_ = 0;
    }
    if (keys_.empty()) {
        allocate(std::max(initial_capacity_, needed), keys);
    } else if (needed > capacity_) {
        allocate(std::max(needed, 2 * capacity_), keys);
    }
    keys_[layer].narrow(2, start, count).copy_(keys);
    values_[layer].narrow(2, start, count).copy_(values);
    return {keys_[layer].narrow(2, 0, needed), values_[layer].narrow(2, 0, needed)};
}

bool KVCache::allocated_like(const at::Tensor& like) const {
    return !keys_.empty() && keys_.front().scalar_type() == like.scalar_type() &&
           keys_.front().device() == like.device();
}

std::pair<at::Tensor, at::Tensor> KVCache::write_at(int64_t layer, const at::Tensor& position,
                                                    const at::Tensor& keys,
                                                    const at::Tensor& values) {
    if (layer < 0 || layer >= num_layers_)
        fail("KVCache::write_at: layer ", layer, " out of range (", num_layers_, " layers)");
    if (!allocated_like(keys))
        fail("KVCache::write_at: the buffers are not allocated for ", keys.scalar_type(), " on ",
             keys.device());
    if (keys.dim() != 4 || keys.size(0) != 1 || keys.size(1) != kv_heads_ || keys.size(2) != 1 ||
        keys.size(3) != head_dim_ || values.sizes() != keys.sizes())
        fail("KVCache::write_at: keys ", keys.sizes(), " / values ", values.sizes(),
             " do not match [1, ", kv_heads_, ", 1, ", head_dim_, "]");
    keys_[layer].index_copy_(2, position, keys);
    values_[layer].index_copy_(2, position, values);
    return {keys_[layer], values_[layer]};
}

void KVCache::commit(int64_t start, int64_t count) {
    if (start != length_ || count < 0 || start + count > capacity_)
        fail("KVCache::commit(", start, ", ", count, ") with length ", length_, " and capacity ",
             capacity_);
    length_ = start + count;
}

} // namespace glamm
