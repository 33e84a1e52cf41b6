// make_plan: every argument of an attend call checked before a kernel reads it.
#include "attention_plan.h"

#include <initializer_list>

#include "tfx/sdk/tensor.hpp"

namespace tfx::eager_attention {

[[noreturn]] void fail(const std::string& message) {
    throw tfx::sdk::Error(TFX_ERR_INVALID_ARGUMENT, "attention: " + message);
}

namespace {

std::string shape_of(const tfx_tensor* t) {
    std::string s = "[";
    for (int32_t i = 0; i < t->ndim; ++i) s += (i ? ", " : "") + std::to_string(t->shape[i]);
    return s + "] " + tfx::sdk::dtype_name(t->dtype);
}

bool same_device(const tfx_device& a, const tfx_device& b) {
    return a.device_type == b.device_type && a.device_id == b.device_id;
}

// Checks that `t` is a compact tensor of `dtype` whose dims are `shape` (-1: any), with data.
void require(const tfx_tensor* t, const char* name, tfx_dtype dtype, std::initializer_list<int64_t> shape,
             const char* expected) {
    if (t == nullptr) fail(std::string(name) + " is missing");
    bool ok = t->ndim == static_cast<int32_t>(shape.size()) && t->shape != nullptr && t->dtype == dtype;
    int64_t stride = 1;  // ends as the element count
    if (ok) {
        for (int32_t i = t->ndim - 1; i >= 0; --i) {
            const int64_t want = shape.begin()[i];
            if (t->shape[i] < 0 || (want >= 0 && t->shape[i] != want)) ok = false;
            if (t->strides != nullptr && t->shape[i] > 1 && t->strides[i] != stride) ok = false;
            stride *= t->shape[i];
        }
    }
    if (!ok) {
        fail(std::string(name) + " must be a compact " + expected + " " + tfx::sdk::dtype_name(dtype) +
             " tensor, got " + (t->shape != nullptr ? shape_of(t) : std::string("no shape")) +
             (t->strides != nullptr ? " (strided)" : ""));
    }
    if (t->data == nullptr && stride > 0) fail(std::string(name) + " has no data");
}

template <class T>
T* data_of(const tfx_tensor* t) {
    return reinterpret_cast<T*>(static_cast<char*>(t->data) + t->byte_offset);
}

// A ragged batch's token layout (`name`: "batch" or "kv_batch"): `tokens` new tokens split into
// num_seqs runs by seq_start, each with a context length.
void check_ragged(const tfx_batch* b, const std::string& name, int64_t tokens) {
    if (b == nullptr) fail(name + " is missing");
    if (!TFX_HAS_FIELD(b, tfx_batch, context_len)) {
        fail("tfx_batch.struct_size (" + std::to_string(b->struct_size) + ") does not cover context_len");
    }
    if (b->num_tokens != tokens) {
        fail(name + ".num_tokens (" + std::to_string(b->num_tokens) + ") must match " +
             (name == "batch" ? "q's" : "k's") + " first dim (" + std::to_string(tokens) + ")");
    }
    if (b->num_seqs < 0) fail(name + ".num_seqs is negative (" + std::to_string(b->num_seqs) + ")");
    if (b->seq_start == nullptr || b->context_len == nullptr)
        fail(name + ".seq_start and " + name + ".context_len are required");
    if (b->seq_start[0] != 0) fail(name + ".seq_start[0] must be 0, got " + std::to_string(b->seq_start[0]));
    for (int32_t s = 0; s < b->num_seqs; ++s) {
        if (int64_t{b->seq_start[s + 1]} < b->seq_start[s]) {
            fail(name + ".seq_start must not decrease (seq_start[" + std::to_string(s + 1) +
                 "] = " + std::to_string(b->seq_start[s + 1]) + " < seq_start[" + std::to_string(s) +
                 "] = " + std::to_string(b->seq_start[s]) + ")");
        }
        if (b->context_len[s] < 0) {
            fail(name + ".context_len[" + std::to_string(s) + "] is negative (" + std::to_string(b->context_len[s]) +
                 ")");
        }
    }
    if (b->seq_start[b->num_seqs] != b->num_tokens) {
        fail(name + ".seq_start[num_seqs] (" + std::to_string(b->seq_start[b->num_seqs]) + ") must equal " + name +
             ".num_tokens (" + std::to_string(b->num_tokens) + ")");
    }
}

// ABI 2.7: DeBERTa's relative keys and queries, checked and resolved.
void disentangled(const tfx_attention_args* a, Plan& p) {
    if (p.cross || a->cache != nullptr)
        fail("relative_k and relative_q are for cache-less self-attention; cache and kv_batch must be NULL");
    if (a->relative_span <= 0) fail("relative_span must be positive, got " + std::to_string(a->relative_span));
    p.relative_span = a->relative_span;
    const int64_t columns = 2 * p.relative_span + 1;
    require(a->relative_columns, "relative_columns", tfx::sdk::kI32, {columns}, "[2 * relative_span + 1]");
    if (a->relative_k == nullptr && a->relative_q == nullptr) fail("relative_columns needs relative_k or relative_q");
    const tfx_tensor* first = a->relative_k != nullptr ? a->relative_k : a->relative_q;
    const int64_t rows = first->ndim == 3 ? first->shape[0] : -1;
    for (const auto& [t, name] : {std::pair{a->relative_k, "relative_k"}, std::pair{a->relative_q, "relative_q"}}) {
        if (t == nullptr) continue;
        require(t, name, tfx::sdk::kF32, {rows, p.heads, p.dim}, "[rows, heads, head_dim], the same rows for both");
        if (!same_device(t->device, a->q->device)) fail(std::string(name) + " must be on q's device");
    }
    if (!same_device(a->relative_columns->device, a->q->device)) fail("relative_columns must be on q's device");
    p.relative_k = a->relative_k != nullptr ? data_of<const float>(a->relative_k) : nullptr;
    p.relative_q = a->relative_q != nullptr ? data_of<const float>(a->relative_q) : nullptr;
    p.relative_columns = data_of<const int32_t>(a->relative_columns);
    for (int64_t i = 0; i < columns; ++i) {
        if (p.relative_columns[i] < 0 || p.relative_columns[i] >= rows)
            fail("relative_columns[" + std::to_string(i) + "] is " + std::to_string(p.relative_columns[i]) +
                 ", outside relative_k / relative_q's " + std::to_string(rows) + " rows");
    }
}

}  // namespace

Plan make_plan(const tfx_attention_args* a) {
    if (a == nullptr) fail("arguments are missing");
    if (!TFX_HAS_FIELD(a, tfx_attention_args, sliding_window)) {
        fail("tfx_attention_args.struct_size (" + std::to_string(a->struct_size) + ") does not cover sliding_window");
    }
    using tfx::sdk::kF32;
    using tfx::sdk::kI32;
    require(a->q, "q", kF32, {-1, -1, -1}, "[num_tokens, heads, head_dim]");
    Plan p{};
    p.tokens = a->q->shape[0];
    p.heads = a->q->shape[1];
    p.dim = a->q->shape[2];
    if (p.heads <= 0 || p.dim <= 0) fail("q has no heads or a zero head_dim: " + shape_of(a->q));
    // Cross-attention (ABI 2.4): the keys are another ragged batch's (the encoder's).
    const tfx_batch* kb = TFX_HAS_FIELD(a, tfx_attention_args, kv_batch) ? a->kv_batch : nullptr;
    p.cross = kb != nullptr;
    if (p.cross) {
        if (kb->struct_size < sizeof(tfx_batch)) {
            fail("tfx_batch.struct_size of kv_batch (" + std::to_string(kb->struct_size) + ") is too small");
        }
        if (kb->num_tokens < 0) fail("kv_batch.num_tokens is negative (" + std::to_string(kb->num_tokens) + ")");
    }
    const std::string kn = p.cross ? "kv_batch" : "batch";
    const int64_t key_rows = p.cross ? kb->num_tokens : p.tokens;
    const std::string rows_of =
        p.cross ? "[kv_batch.num_tokens, kv_heads, head_dim]" : "[num_tokens, kv_heads, head_dim]";
    require(a->k, "k", kF32, {key_rows, -1, p.dim}, rows_of.c_str());
    p.kv_heads = a->k->shape[1];
    require(a->v, "v", kF32, {key_rows, p.kv_heads, p.dim}, (rows_of + " (as k)").c_str());
    require(a->out, "out", kF32, {p.tokens, p.heads, p.dim}, "[num_tokens, heads, head_dim] (as q)");
    if (p.kv_heads <= 0 || p.heads % p.kv_heads != 0) {
        fail("heads (" + std::to_string(p.heads) + ") must be a multiple of kv_heads (" + std::to_string(p.kv_heads) +
             ")");
    }
    p.group = p.heads / p.kv_heads;
    const tfx_device device = a->q->device;
    for (const tfx_tensor* t : {a->k, a->v, static_cast<const tfx_tensor*>(a->out)}) {
        if (!same_device(t->device, device)) fail("q, k, v and out must be on the same device");
    }
    p.q = data_of<const float>(a->q);
    p.k = data_of<const float>(a->k);
    p.v = data_of<const float>(a->v);
    p.out = data_of<float>(a->out);
    p.causal = a->causal != 0;
    p.scale = a->scale;
    p.softcap = a->softcap;
    p.window = a->sliding_window;
    p.window_ahead = a->window_ahead;
    if (p.window_ahead < 0 || (p.window_ahead > 0 && p.causal)) {
        fail("window_ahead (" + std::to_string(p.window_ahead) + ") must be 0, or positive with causal 0");
    }
    if (p.cross && (p.causal || p.window != 0 || p.window_ahead != 0)) {
        fail("cross-attention (kv_batch) sees every key: causal, sliding_window and window_ahead must be 0");
    }
    if (TFX_HAS_FIELD(a, tfx_attention_args, relative_span) && a->relative_bias != nullptr) {
        if (p.cross) fail("relative_bias is for self-attention; kv_batch must be NULL");
        if (a->relative_span <= 0) fail("relative_span must be positive, got " + std::to_string(a->relative_span));
        p.relative_span = a->relative_span;
        require(a->relative_bias, "relative_bias", kF32, {2 * p.relative_span + 1, p.heads},
                "[2 * relative_span + 1, heads]");
        if (!same_device(a->relative_bias->device, device)) fail("relative_bias must be on q's device");
        p.relative_bias = data_of<const float>(a->relative_bias);
    }
    if (TFX_HAS_FIELD(a, tfx_attention_args, relative_columns) && a->relative_columns != nullptr) disentangled(a, p);

    // The batches (host metadata): the queries', and the keys' (the same one unless cross).
    const tfx_batch* b = a->batch;
    check_ragged(b, "batch", p.tokens);
    p.num_seqs = b->num_seqs;
    p.seq_start = b->seq_start;
    p.context_len = b->context_len;
    if (p.cross) {
        check_ragged(kb, "kv_batch", key_rows);
        if (kb->num_seqs != b->num_seqs) {
            fail("kv_batch.num_seqs (" + std::to_string(kb->num_seqs) + ") must equal batch.num_seqs (" +
                 std::to_string(b->num_seqs) + ")");
        }
    } else {
        kb = b;
    }
    p.key_tokens = key_rows;
    p.key_seq_start = kb->seq_start;
    p.key_context_len = kb->context_len;
    for (int32_t s = 0; s < p.num_seqs; ++s) {
        if (a->cache == nullptr && kb->context_len[s] != 0) {
            fail(kn + ".context_len[" + std::to_string(s) + "] is " + std::to_string(kb->context_len[s]) +
                 " but there is no KV cache (cache is NULL): without a cache, context_len must be 0");
        }
        const int64_t keys = int64_t{kb->context_len[s]} + kb->seq_start[s + 1] - kb->seq_start[s];
        p.max_keys = std::max(p.max_keys, keys);
        p.work += static_cast<double>(b->seq_start[s + 1] - b->seq_start[s]) * static_cast<double>(keys);
    }
    if (kb->max_context_len < p.max_keys) {
        fail(kn + ".max_context_len (" + std::to_string(kb->max_context_len) +
             ") is below a sequence's context plus new tokens (" + std::to_string(p.max_keys) + ")");
    }
    p.work *= static_cast<double>(p.heads * p.dim);
    if (a->cache == nullptr) return p;

    // The paged cache (device tensors, addressable inside run_kernel), addressed by the keys'
    // batch.
    if (!TFX_HAS_FIELD(kb, tfx_batch, slot_mapping)) {
        fail("tfx_batch.struct_size (" + std::to_string(kb->struct_size) + ") does not cover slot_mapping");
    }
    const tfx_tensor* ck = a->cache->k;
    const tfx_tensor* cv = a->cache->v;
    if (ck == nullptr || cv == nullptr) fail("cache.k and cache.v are required");
    const tfx_dtype kv_dtype = ck->dtype;
    if (kv_dtype == tfx::sdk::kF32) {
        p.kv = KvType::f32;
    } else if (kv_dtype == tfx::sdk::kBF16) {
        p.kv = KvType::bf16;
    } else if (kv_dtype == tfx::sdk::kF16) {
        p.kv = KvType::f16;
    } else {
        fail("cache.k dtype " + tfx::sdk::dtype_name(kv_dtype) + " is not supported (f32, bf16, f16)");
    }
    if (kb->block_size <= 0)
        fail(kn + ".block_size must be positive with a cache, got " + std::to_string(kb->block_size));
    p.block_size = kb->block_size;
    const char* pool_shape = "[num_blocks, block_size, kv_heads, head_dim]";
    require(ck, "cache.k", kv_dtype, {-1, p.block_size, p.kv_heads, p.dim}, pool_shape);
    const int64_t num_blocks = ck->shape[0];
    require(cv, "cache.v", kv_dtype, {num_blocks, p.block_size, p.kv_heads, p.dim}, pool_shape);
    if (kb->max_blocks_per_seq <= 0) {
        fail(kn + ".max_blocks_per_seq must be positive with a cache, got " + std::to_string(kb->max_blocks_per_seq));
    }
    p.table_columns = kb->max_blocks_per_seq;
    require(kb->block_table, (kn + ".block_table").c_str(), kI32, {p.num_seqs, p.table_columns},
            "[num_seqs, max_blocks_per_seq]");
    require(kb->slot_mapping, (kn + ".slot_mapping").c_str(), kI32, {p.key_tokens}, "[num_tokens]");
    for (const tfx_tensor* t : {ck, cv, kb->block_table, kb->slot_mapping}) {
        if (!same_device(t->device, device)) fail("the cache, block_table and slot_mapping must be on q's device");
    }
    p.cache_k = data_of<void>(ck);
    p.cache_v = data_of<void>(cv);
    p.block_table = data_of<const int32_t>(kb->block_table);
    p.slot_mapping = data_of<const int32_t>(kb->slot_mapping);

    for (int32_t s = 0; s < p.num_seqs; ++s) {
        const int64_t keys = int64_t{p.key_context_len[s]} + p.key_seq_start[s + 1] - p.key_seq_start[s];
        const int64_t used = (keys + p.block_size - 1) / p.block_size;
        if (used > p.table_columns) {
            fail("sequence " + std::to_string(s) + " needs " + std::to_string(used) + " blocks for " +
                 std::to_string(keys) + " positions, more than " + kn + ".max_blocks_per_seq (" +
                 std::to_string(p.table_columns) + ")");
        }
        const int32_t* row = p.block_table + s * p.table_columns;
        for (int64_t c = 0; c < used; ++c) {
            if (row[c] < 0 || row[c] >= num_blocks) {
                fail(kn + ".block_table[" + std::to_string(s) + ", " + std::to_string(c) +
                     "] = " + std::to_string(row[c]) + " is out of range (the pools hold " +
                     std::to_string(num_blocks) + " blocks)");
            }
        }
        for (int32_t i = p.key_seq_start[s]; i < p.key_seq_start[s + 1]; ++i) {
            const int64_t slot = p.slot_mapping[i];
            if (slot < 0 || slot >= num_blocks * p.block_size) {
                fail(kn + ".slot_mapping[" + std::to_string(i) + "] = " + std::to_string(slot) +
                     " is out of range (num_blocks * block_size = " + std::to_string(num_blocks * p.block_size) + ")");
            }
            const int64_t pos = int64_t{p.key_context_len[s]} + (i - p.key_seq_start[s]);
            const int64_t expected = int64_t{row[pos / p.block_size]} * p.block_size + pos % p.block_size;
            if (slot != expected) {
                fail(kn + ".slot_mapping[" + std::to_string(i) + "] = " + std::to_string(slot) +
                     " but the block table puts sequence " + std::to_string(s) + "'s position " + std::to_string(pos) +
                     " at slot " + std::to_string(expected));
            }
        }
    }
    return p;
}

}  // namespace tfx::eager_attention
