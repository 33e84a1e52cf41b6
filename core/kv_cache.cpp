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

size_t PagedKvCache::BlockKeyHash::operator()(const BlockKey& key) const {
    // FNV-1a over the parent's content id and the tokens; equality is checked on the whole key.
    uint64_t h = 1469598103934665603ULL;
    const auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ULL; };
    mix(key.parent_content);
    mix(key.salt);
    for (int32_t t : key.tokens) mix(static_cast<uint32_t>(t));
    return static_cast<size_t>(h);
}

PagedKvCache::SeqId PagedKvCache::add(std::span<const int32_t> prompt, uint64_t salt) {
    Sequence s;
    s.salt = salt;
    if (options_.prefix_caching && !prompt.empty()) {
        const auto bs = static_cast<size_t>(options_.block_size);
        queried_tokens_ += static_cast<int64_t>(prompt.size());
        BlockKey key{0, salt, {}};
        for (size_t b = 0; (b + 1) * bs < prompt.size(); ++b) {  // never the block of the last token
            key.tokens.assign(prompt.begin() + static_cast<std::ptrdiff_t>(b * bs),
                              prompt.begin() + static_cast<std::ptrdiff_t>((b + 1) * bs));
            const auto found = index_.find(key);
            if (found == index_.end()) break;
            share_block(found->second);
            s.blocks.push_back(found->second);
            key.parent_content = content_id_[static_cast<size_t>(found->second)];
        }
        s.published = s.blocks.size();
        s.last_content = key.parent_content;
        s.length = static_cast<int64_t>(s.blocks.size() * bs);
        hit_tokens_ += s.length;
    }
    sequences_.emplace(next_id_, std::move(s));
    return next_id_++;
}

void PagedKvCache::publish(SeqId seq, std::span<const int32_t> tokens) {
    if (!options_.prefix_caching) return;
    Sequence& s = sequence(seq);
    const auto bs = static_cast<size_t>(options_.block_size);
    const size_t full = std::min(static_cast<size_t>(s.length), tokens.size()) / bs;
    for (; s.published < full; ++s.published) {
        const int32_t block = s.blocks[s.published];
        if (content_id_[static_cast<size_t>(block)] == 0) {
            BlockKey key{s.last_content, s.salt,
                         std::vector<int32_t>(tokens.begin() + static_cast<std::ptrdiff_t>(s.published * bs),
                                              tokens.begin() + static_cast<std::ptrdiff_t>((s.published + 1) * bs))};
            const auto [at, added] = index_.try_emplace(key, block);
            if (added) {
                content_id_[static_cast<size_t>(block)] = ++next_content_;
                key_of_[static_cast<size_t>(block)] = std::move(key);
            }
            // When another sequence indexed the same tokens first, this block stays private and
            // the chain goes on from the indexed one (same tokens, same content).
            s.last_content = content_id_[static_cast<size_t>(at->second)];
        } else {
            s.last_content = content_id_[static_cast<size_t>(block)];
        }
    }
}

void PagedKvCache::share_block(int32_t block) {
    const auto b = static_cast<size_t>(block);
    if (refcount_[b]++ == 0) evictable_.erase(evictable_at_[b]);
}

void PagedKvCache::unpublish(int32_t block) {
    const auto b = static_cast<size_t>(block);
    if (content_id_[b] == 0) return;
    index_.erase(key_of_[b]);
    key_of_[b] = {};
    content_id_[b] = 0;
}

PagedKvCache::SeqId PagedKvCache::fork(SeqId seq) {
    Sequence copy = sequence(seq);  // published blocks stay published
    for (int32_t b : copy.blocks) ++refcount_[b];
    sequences_.emplace(next_id_, std::move(copy));
    return next_id_++;
}

void PagedKvCache::release(SeqId seq) {
    Sequence& s = sequence(seq);
    // Last block first: a prefix's tail is evicted before its head, which more prompts share.
    for (auto b = s.blocks.rbegin(); b != s.blocks.rend(); ++b) drop_block(*b);
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

void PagedKvCache::truncate(SeqId seq, int64_t length) {
    Sequence& s = sequence(seq);
    const int64_t bs = options_.block_size;
    if (length < 0 || length > s.length) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "KV cache: cannot truncate a sequence of " +
                                                       std::to_string(s.length) + " positions to " +
                                                       std::to_string(length));
    }
    // A published block's content is in the prefix index; writing over it would corrupt it.
    if (length < static_cast<int64_t>(s.published) * bs)
        throw sdk::Error(TFX_ERR_UNSUPPORTED, "KV cache: cannot truncate into blocks published for prefix caching");
    const auto keep = static_cast<size_t>((length + bs - 1) / bs);
    while (s.blocks.size() > keep) {
        drop_block(s.blocks.back());
        s.blocks.pop_back();
    }
    s.length = length;
}

int64_t PagedKvCache::blocks_needed(SeqId seq, int64_t count) const {
    const Sequence& s = sequence(seq);
    const int64_t bs = options_.block_size;
    int64_t needed = std::max<int64_t>(0, (s.length + count + bs - 1) / bs - static_cast<int64_t>(s.blocks.size()));
    if (count > 0 && s.length % bs != 0 &&
        refcount_[static_cast<size_t>(s.blocks[static_cast<size_t>(s.length / bs)])] > 1)
        ++needed;
    return needed;
}

void PagedKvCache::advance(SeqId seq, int64_t count) {
    Sequence& s = sequence(seq);
    if (s.length + count > static_cast<int64_t>(s.blocks.size()) * options_.block_size) {
        throw sdk::Error(TFX_ERR_INTERNAL, "KV cache: advance past the reserved blocks");
    }
    s.length += count;
}

int32_t PagedKvCache::take_block() {
    int32_t b = 0;
    if (!free_.empty()) {
        b = free_.back();
        free_.pop_back();
    } else if (!evictable_.empty()) {
        b = evictable_.front();
        evictable_.pop_front();
        unpublish(b);
    } else {
        grow(std::max<int64_t>(capacity_ + 1, capacity_ + capacity_ / 2));
        b = free_.back();
        free_.pop_back();
    }
    refcount_[static_cast<size_t>(b)] = 1;
    return b;
}

void PagedKvCache::drop_block(int32_t block) {
    const auto b = static_cast<size_t>(block);
    if (--refcount_[b] != 0) return;
    if (content_id_[b] != 0) {
        evictable_at_[b] = evictable_.insert(evictable_.end(), block);
    } else {
        free_.push_back(block);
    }
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
    content_id_.resize(static_cast<size_t>(blocks), 0);
    key_of_.resize(static_cast<size_t>(blocks));
    evictable_at_.resize(static_cast<size_t>(blocks));
    // Growing happens with no block free; the lowest new id goes on top of the stack, so a fresh
    // cache hands out blocks 0, 1, 2, ...
    for (int64_t b = blocks - 1; b >= capacity_; --b) free_.push_back(static_cast<int32_t>(b));
    capacity_ = blocks;
}

}  // namespace tfx
