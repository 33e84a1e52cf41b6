#include "core/kv_cache.h"

#include <algorithm>

#include "tfx/sdk/error.hpp"

namespace tfx {

tfx_dtype kv_dtype_named(const std::string& name, const std::string& what) {
    if (name == "f32" || name == "float32") return {TFX_DTYPE_FLOAT, 32, 1};
    if (name == "bf16" || name == "bfloat16") return {TFX_DTYPE_BFLOAT, 16, 1};
    if (name == "f16" || name == "float16") return {TFX_DTYPE_FLOAT, 16, 1};
    throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, what + ": unknown KV cache dtype '" + name + "' (f32, bf16, f16)");
}

PagedKvCache::PagedKvCache(const Device& device, int32_t layers, int32_t kv_heads, int32_t head_dim,
                           KvCacheOptions options)
    : device_(device), layer_count_(layers), kv_heads_(kv_heads), head_dim_(head_dim), options_(options) {
    if (layers < 0 || kv_heads <= 0 || head_dim <= 0 || options.block_size <= 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "KV cache: layers, kv heads, head_dim and block size must be positive");
    }
    pools_.resize(static_cast<size_t>(2 * layers));
    shapes_.assign(pools_.size(), {0, options.block_size, kv_heads, head_dim});
    tensors_.resize(pools_.size());
    layers_.resize(static_cast<size_t>(layers));
    for (size_t i = 0; i < pools_.size(); ++i) {
        tensors_[i] = tfx_tensor{nullptr, device.device(), 4, options.dtype, shapes_[i].data(), nullptr, 0};
    }
    for (int32_t l = 0; l < layers; ++l) layers_[l] = {&tensors_[2 * l], &tensors_[2 * l + 1]};
}

int64_t PagedKvCache::block_bytes() const {
    return int64_t{2} * layer_count_ * options_.block_size * kv_heads_ * head_dim_ * (options_.dtype.bits / 8);
}

PagedKvCache::Sequence& PagedKvCache::sequence(SeqId seq) {
    auto it = sequences_.find(seq);
    if (it == sequences_.end()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "KV cache: no sequence " + std::to_string(seq));
    }
    return it->second;
}
const PagedKvCache::Sequence& PagedKvCache::sequence(SeqId seq) const {
    return const_cast<PagedKvCache*>(this)->sequence(seq);
}

PagedKvCache::SeqId PagedKvCache::add() {
    sequences_.emplace(next_id_, Sequence{});
    return next_id_++;
}

PagedKvCache::SeqId PagedKvCache::fork(SeqId seq) {
    Sequence copy = sequence(seq);
    for (int32_t b : copy.blocks) ++refcount_[b];
    sequences_.emplace(next_id_, std::move(copy));
    return next_id_++;
}

void PagedKvCache::release(SeqId seq) {
    Sequence& s = sequence(seq);
    for (int32_t b : s.blocks) drop_block(b);
    sequences_.erase(seq);
}

int64_t PagedKvCache::length(SeqId seq) const {
    return sequence(seq).length;
}

std::span<const int32_t> PagedKvCache::blocks(SeqId seq) const {
    return sequence(seq).blocks;
}

void PagedKvCache::reserve(SeqId seq, int64_t count) {
    Sequence& s = sequence(seq);
    const int64_t bs = options_.block_size;
    // The block that the first new position falls into, when it already exists, must be ours.
    if (count > 0 && s.length % bs != 0) {
        int32_t& last = s.blocks[static_cast<size_t>(s.length / bs)];
        if (refcount_[last] > 1) {
            const int32_t copy = take_block();
            copy_block(last, copy);
            drop_block(last);
            last = copy;
        }
    }
    const int64_t needed = (s.length + count + bs - 1) / bs;
    while (static_cast<int64_t>(s.blocks.size()) < needed) s.blocks.push_back(take_block());
}

void PagedKvCache::advance(SeqId seq, int64_t count) {
    Sequence& s = sequence(seq);
    if (s.length + count > static_cast<int64_t>(s.blocks.size()) * options_.block_size) {
        throw sdk::Error(TFX_ERR_INTERNAL, "KV cache: advance past the reserved blocks");
    }
    s.length += count;
}

int32_t PagedKvCache::take_block() {
    if (free_.empty()) grow(std::max<int64_t>(capacity_ + 1, capacity_ + capacity_ / 2));
    const int32_t b = free_.back();
    free_.pop_back();
    refcount_[b] = 1;
    return b;
}

void PagedKvCache::drop_block(int32_t block) {
    if (--refcount_[block] == 0) free_.push_back(block);
}

sdk::View PagedKvCache::pool_view(int layer, bool values, int64_t first, int64_t count) const {
    const tfx_tensor& t = tensors_[static_cast<size_t>(2 * layer + (values ? 1 : 0))];
    const int64_t per_block = int64_t{options_.block_size} * kv_heads_ * head_dim_;
    return sdk::View(t.data, options_.dtype, {count, options_.block_size, kv_heads_, head_dim_}, t.device)
        .at(first * per_block, {count, options_.block_size, kv_heads_, head_dim_});
}

void PagedKvCache::copy_block(int32_t from, int32_t to) {
    for (int l = 0; l < layer_count_; ++l) {
        for (bool values : {false, true}) {
            sdk::View dst = pool_view(l, values, to, 1);
            device_.copy(pool_view(l, values, from, 1), dst);
        }
    }
}

void PagedKvCache::grow(int64_t blocks) {
    const int64_t per_block = int64_t{options_.block_size} * kv_heads_ * head_dim_ * (options_.dtype.bits / 8);
    for (size_t i = 0; i < pools_.size(); ++i) {
        DeviceAllocation bigger = device_.alloc(static_cast<uint64_t>(blocks * per_block));
        if (capacity_ > 0) {
            sdk::View dst(bigger.data(), options_.dtype, {capacity_ * per_block / (options_.dtype.bits / 8)},
                          device_.device());
            sdk::View src(pools_[i].data(), options_.dtype, {capacity_ * per_block / (options_.dtype.bits / 8)},
                          device_.device());
            device_.copy(src, dst);
        }
        pools_[i] = std::move(bigger);
        tensors_[i].data = pools_[i].data();
        shapes_[i][0] = blocks;
    }
    refcount_.resize(static_cast<size_t>(blocks), 0);
    // Growing happens with no block free; the lowest new id goes on top of the stack, so a fresh
    // cache hands out blocks 0, 1, 2, ...
    for (int64_t b = blocks - 1; b >= capacity_; --b) free_.push_back(static_cast<int32_t>(b));
    capacity_ = blocks;
}

}  // namespace tfx
