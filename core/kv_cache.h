// The paged KV cache (vLLM's block manager, in the host): per layer, key and value pools of
// fixed-size blocks on the backend's device, [blocks, block_size, kv_heads, head_dim] in the
// session's KV dtype. Each sequence owns a list of blocks (its block table). Blocks are
// reference-counted, so sequences can share them (fork: parallel samples, beam search, a
// common prefix) and a shared block is copied before a sequence writes into it (copy on
// write). Blocks of finished sequences are reused; the pools grow only when every block is
// in use, so the cache holds what live sequences need (plus the growth margin).
//
// Prefix caching (KvCacheOptions::prefix_caching): a full block whose tokens are known
// (publish()) is indexed by its tokens and the block before it, so a later prompt that starts
// with the same tokens (a system prompt, a conversation's history) shares those blocks instead
// of computing them again. A published block that no sequence holds stays indexed until its
// memory is needed: free blocks that were never published are reused first, then published
// ones, least recently released first.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/device.h"
#include "tfx/attention.h"

namespace tfx {

// "f32", "bf16" or "f16"; throws naming `what` (the option or flag) otherwise.
tfx_dtype kv_dtype_named(const std::string& name, const std::string& what);

struct KvCacheOptions {
    tfx_dtype dtype{TFX_DTYPE_FLOAT, 32, 1};
    int32_t block_size = 16;
    bool prefix_caching = false;
};

class PagedKvCache {
  public:
    using SeqId = int64_t;

    PagedKvCache(const Device& device, int32_t layers, int32_t kv_heads, int32_t head_dim, KvCacheOptions options);
    PagedKvCache(const PagedKvCache&) = delete;
    PagedKvCache& operator=(const PagedKvCache&) = delete;

    // A new sequence. With prefix caching, it starts holding the longest run of published
    // blocks that `prompt` begins with, always leaving the prompt's last token to compute (its
    // logits are needed): length() says how many positions it starts with. Blocks are shared
    // only between sequences of the same `salt`: what else than the tokens decides the keys and
    // values (the LoRA adapters a sequence runs with).
    SeqId add(std::span<const int32_t> prompt = {}, uint64_t salt = 0);
    // A new sequence sharing all of `seq`'s cached positions (no copy until one of them writes).
    SeqId fork(SeqId seq);
    // Ends a sequence; its blocks return to the free list once no other sequence holds them.
    void release(SeqId seq);

    // Positions cached for `seq`.
    int64_t length(SeqId seq) const;
    // Makes room for `count` more positions of `seq`: new blocks, and a private copy of a shared
    // last block. Call before the forward that writes them, then advance().
    void reserve(SeqId seq, int64_t count);
    // Blocks reserve(seq, count) would take: new ones, and a copy of a shared last block.
    int64_t blocks_needed(SeqId seq, int64_t count) const;
    // The forward wrote `count` more positions of `seq`.
    void advance(SeqId seq, int64_t count);
    // Forgets `seq`'s positions from `length` on (rejected draft tokens of assisted decoding);
    // blocks past it are dropped. Positions in published blocks cannot be taken back.
    void truncate(SeqId seq, int64_t length);
    // Block ids of `seq`, in position order (covering reserved positions too).
    std::span<const int32_t> blocks(SeqId seq) const;
    // Offers `seq`'s full blocks to later prompts (no-op without prefix caching); `tokens` are
    // the sequence's tokens from position 0, at least length() of them. Cheap to call after
    // every step: only blocks filled since the last call are indexed.
    void publish(SeqId seq, std::span<const int32_t> tokens);

    // The per-layer pools for tfx_forward_args::cache.
    const tfx_kv_layer* layers() const { return layers_.data(); }
    int32_t block_size() const { return options_.block_size; }
    tfx_dtype dtype() const { return options_.dtype; }

    // Memory accounting: blocks held by live sequences, blocks allocated, bytes of one block
    // over all layers (keys and values).
    int64_t blocks_in_use() const { return capacity_ - static_cast<int64_t>(free_.size() + evictable_.size()); }
    int64_t blocks_allocated() const { return capacity_; }
    int64_t block_bytes() const;
    int64_t live_sequences() const { return static_cast<int64_t>(sequences_.size()); }
    int32_t refcount(int32_t block) const { return refcount_.at(static_cast<size_t>(block)); }

    // Prefix caching's counters, in tokens as vLLM counts them: prompt tokens looked up by add(),
    // and those found cached. `cached_blocks`: published blocks still indexed.
    struct PrefixStats {
        int64_t queried_tokens = 0, hit_tokens = 0, cached_blocks = 0;
    };
    PrefixStats prefix_stats() const { return {queried_tokens_, hit_tokens_, static_cast<int64_t>(index_.size())}; }

  private:
    struct Sequence {
        std::vector<int32_t> blocks;
        int64_t length = 0;
        size_t published = 0;       // leading blocks already in the index (or shared from it)
        uint64_t last_content = 0;  // content id of the last of them (0: none)
        uint64_t salt = 0;
    };
    // What a published block holds: its tokens, after the content of the block before it. The
    // content id, not the block id, names the parent, so a reused block cannot alias old ones.
    struct BlockKey {
        uint64_t parent_content;
        uint64_t salt;
        std::vector<int32_t> tokens;
        bool operator==(const BlockKey&) const = default;
    };
    struct BlockKeyHash {
        size_t operator()(const BlockKey& key) const;
    };
    Sequence& sequence(SeqId seq);
    const Sequence& sequence(SeqId seq) const;
    int32_t take_block();
    void drop_block(int32_t block);
    // Takes one more reference to an indexed block (off the evictable list if no one held it).
    void share_block(int32_t block);
    // Removes a block that is about to be reused from the prefix index.
    void unpublish(int32_t block);
    void copy_block(int32_t from, int32_t to);
    // Grows every pool to at least `blocks` blocks, keeping the blocks in use.
    void grow(int64_t blocks);
    sdk::View pool_view(int layer, bool values, int64_t first, int64_t count) const;

    const Device& device_;
    int32_t layer_count_, kv_heads_, head_dim_;
    KvCacheOptions options_;
    int64_t capacity_ = 0;
    std::vector<DeviceAllocation> pools_;  // layer * 2 + (0: keys, 1: values)
    std::vector<std::vector<int64_t>> shapes_;
    std::vector<tfx_tensor> tensors_;
    std::vector<tfx_kv_layer> layers_;
    std::vector<int32_t> refcount_;
    std::vector<int32_t> free_;  // a stack: the most recently freed block is reused first
    // Prefix caching: the index, each block's content id (0: not indexed) and key, and the
    // indexed blocks no sequence holds, least recently released first.
    std::unordered_map<BlockKey, int32_t, BlockKeyHash> index_;
    std::vector<uint64_t> content_id_;
    std::vector<BlockKey> key_of_;
    std::list<int32_t> evictable_;
    std::vector<std::list<int32_t>::iterator> evictable_at_;
    uint64_t next_content_ = 0;
    int64_t queried_tokens_ = 0, hit_tokens_ = 0;
    std::unordered_map<SeqId, Sequence> sequences_;
    SeqId next_id_ = 0;
};

}  // namespace tfx
