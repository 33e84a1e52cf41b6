// Kernels of the cuda attention plugin (cuda_attention_kernels.cu), behind a plain launcher.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace tfx::cuda_attention {

enum class KvElem : int32_t { f32 = 0, bf16 = 1, f16 = 2 };

struct AttendParams {
    const float* q;  // [tokens, heads, dim]
    const float* k;  // [tokens, kv_heads, dim] new keys
    const float* v;  // [tokens, kv_heads, dim] new values
    float* out;      // [tokens, heads, dim]
    int32_t tokens, seqs, heads, kv_heads, dim;
    const int32_t* seq_start;    // device [seqs + 1]
    const int32_t* context_len;  // device [seqs]
    // The paged cache (null without one): pools [blocks, block_size, kv_heads, dim].
    void* cache_k;
    void* cache_v;
    KvElem kv_elem;
    int32_t block_size, table_columns;
    const int32_t* block_table;   // device [seqs, table_columns]
    const int32_t* slot_mapping;  // device [tokens]
    int32_t causal, sliding_window, window_ahead;
    float scale, softcap;
};

// Largest head_dim the kernel takes (8 values per lane of a warp).
constexpr int32_t kMaxHeadDim = 256;

// Writes the new keys and values to their cache slots (with a cache), then one warp per
// (token, head) attends over its visible positions with an online softmax in f32.
void attend(const AttendParams& p, cudaStream_t stream);

}  // namespace tfx::cuda_attention
