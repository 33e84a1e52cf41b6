// The eager attention kernel's view of one call: the arguments validated (make_plan) and
// resolved to pointers, and where each sequence's keys are and which of them a token sees.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "tfx/sdk/plugin.hpp"

namespace tfx::eager_attention {

[[noreturn]] void fail(const std::string& message);

enum class KvType { f32, bf16, f16 };

// Validated arguments, resolved to pointers.
struct Plan {
    const float* q;
    const float* k;
    const float* v;
    float* out;
    int64_t tokens, heads, kv_heads, dim, group;
    // The queries' sequences: sequence s owns tokens [seq_start[s], seq_start[s + 1]), at
    // positions context_len[s] on.
    int32_t num_seqs;
    const int32_t* seq_start;
    const int32_t* context_len;
    // The keys' sequences, laid out the same way: the queries' own, or with cross-attention
    // (kv_batch, ABI 2.4) the other batch's (rows of k and v, cache positions).
    bool cross = false;
    int64_t key_tokens;
    const int32_t* key_seq_start;
    const int32_t* key_context_len;
    bool causal;
    float scale, softcap;
    int32_t window;
    int32_t window_ahead;  // non-causal: keys before pos + window_ahead (0: all)
    // ABI 2.6: [2 * relative_span + 1, heads], added to scores by key position - query
    // position (clamped to the span), or null.
    const float* relative_bias = nullptr;
    int64_t relative_span = 0;
    // ABI 2.7 (DeBERTa): keys and queries of relative positions [rows, heads, dim] (either may
    // be null), and the row of each clamped key - query distance [2 * relative_span + 1].
    const float* relative_k = nullptr;
    const float* relative_q = nullptr;
    const int32_t* relative_columns = nullptr;
    int64_t max_keys;  // the longest sequence's positions
    double work;       // multiply-adds, to decide whether threads pay off
    // The cache (cache_k == nullptr without one), addressed by the keys' batch.
    KvType kv = KvType::f32;
    void* cache_k = nullptr;
    void* cache_v = nullptr;
    int64_t block_size = 0;
    const int32_t* block_table = nullptr;
    int64_t table_columns = 0;
    const int32_t* slot_mapping = nullptr;
};

// The arguments checked (shapes, dtypes, devices, the batches, the block table and slot
// mapping), or fail() naming the field and what was expected.
Plan make_plan(const tfx_attention_args* args);

// The keys token t (of sequence s) sees: positions [lo, hi], empty when hi < lo.
struct KeyRange {
    int64_t lo, hi;
};

[[gnu::always_inline]] inline KeyRange visible_keys(const Plan& p, int32_t s, int64_t t) {
    if (p.cross) return {0, int64_t{p.key_context_len[s]} + p.key_seq_start[s + 1] - p.key_seq_start[s] - 1};
    const int64_t context = p.context_len[s];
    const int64_t n = context + p.seq_start[s + 1] - p.seq_start[s];
    const int64_t pos = context + (t - p.seq_start[s]);
    const int64_t hi = p.causal ? pos : p.window_ahead > 0 ? std::min(n - 1, pos + p.window_ahead - 1) : n - 1;
    const int64_t lo = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
    return {lo, hi};
}

// Where sequence s's key and value rows are for one kv head: in the paged cache through its
// block table, or without a cache in the call's own k and v (one block of the n new rows).
// Within a block, consecutive positions are rows `row_stride` apart.
template <class Elem>
struct SequenceRows {
    const Elem* keys;
    const Elem* values;
    int64_t block_size, row_stride, head_offset, first_row;
    const int32_t* table;

    SequenceRows(const Plan& p, int32_t s, int64_t kv_head) {
        const bool cached = p.cache_k != nullptr;
        keys = cached ? static_cast<const Elem*>(p.cache_k) : reinterpret_cast<const Elem*>(p.k);
        values = cached ? static_cast<const Elem*>(p.cache_v) : reinterpret_cast<const Elem*>(p.v);
        block_size =
            cached ? p.block_size : int64_t{p.key_context_len[s]} + p.key_seq_start[s + 1] - p.key_seq_start[s];
        row_stride = p.kv_heads * p.dim;
        head_offset = kv_head * p.dim;
        first_row = cached ? 0 : p.key_seq_start[s];
        table = cached ? p.block_table + s * p.table_columns : nullptr;
    }
    // The offset of position j's row, j in block column `column` (j / block_size).
    [[gnu::always_inline]] int64_t row_of(int64_t column, int64_t j) const {
        const int64_t block = table != nullptr ? int64_t{table[column]} * block_size : first_row;
        return (block + j % block_size) * row_stride + head_offset;
    }
    [[gnu::always_inline]] int64_t row_of(int64_t j) const { return row_of(j / block_size, j); }
};

}  // namespace tfx::eager_attention
