// Paged attention on CUDA, first version: one warp per (token, head). Each lane holds up to 8
// of the head's dims; q·k is a warp reduction; the softmax is online (running maximum and sum,
// rescaled as the maximum grows), in f32, so scores are never stored.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda_attention_kernels.h"

namespace tfx::cuda_attention {
namespace {

constexpr int kPerLane = kMaxHeadDim / 32;

__device__ float load(const void* pool, KvElem elem, int64_t i) {
    switch (elem) {
        case KvElem::bf16:
            return __bfloat162float(static_cast<const __nv_bfloat16*>(pool)[i]);
        case KvElem::f16:
            return __half2float(static_cast<const __half*>(pool)[i]);
        default:
            return static_cast<const float*>(pool)[i];
    }
}

__device__ void store(void* pool, KvElem elem, int64_t i, float value) {
    switch (elem) {
        case KvElem::bf16:
            static_cast<__nv_bfloat16*>(pool)[i] = __float2bfloat16_rn(value);
            break;
        case KvElem::f16:
            static_cast<__half*>(pool)[i] = __float2half_rn(value);
            break;
        default:
            static_cast<float*>(pool)[i] = value;
    }
}

__global__ void write_kv(AttendParams p) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    const int64_t row = int64_t{p.kv_heads} * p.dim;
    if (i >= p.tokens * row) return;
    const int64_t t = i / row, within = i % row;
    const int64_t slot = p.slot_mapping[t];
    store(p.cache_k, p.kv_elem, slot * row + within, p.k[i]);
    store(p.cache_v, p.kv_elem, slot * row + within, p.v[i]);
}

__global__ void attend_kernel(AttendParams p) {
    const int32_t t = blockIdx.x, h = blockIdx.y, lane = threadIdx.x;
    // The token's sequence: the last s with seq_start[s] <= t.
    int32_t lo_s = 0, hi_s = p.seqs - 1;
    while (lo_s < hi_s) {
        const int32_t mid = (lo_s + hi_s + 1) / 2;
        if (p.seq_start[mid] <= t) {
            lo_s = mid;
        } else {
            hi_s = mid - 1;
        }
    }
    const int32_t s = lo_s;
    const int64_t context = p.context_len[s];
    const int64_t n = context + p.seq_start[s + 1] - p.seq_start[s];
    const int64_t pos = context + (t - p.seq_start[s]);
    const int64_t hi = p.causal ? pos : p.window_ahead > 0 ? min(n - 1, pos + p.window_ahead - 1) : n - 1;
    const int64_t lo = p.sliding_window > 0 ? max(int64_t{0}, pos - p.sliding_window + 1) : 0;
    const int32_t kv_head = h / (p.heads / p.kv_heads);
    const int64_t row = int64_t{p.kv_heads} * p.dim;

    float q[kPerLane], acc[kPerLane];
    for (int i = 0; i < kPerLane; ++i) {
        const int d = lane + 32 * i;
        q[i] = d < p.dim ? p.q[(int64_t{t} * p.heads + h) * p.dim + d] : 0.0f;
        acc[i] = 0.0f;
    }
    float running_max = -INFINITY, running_sum = 0.0f;
    for (int64_t j = lo; j <= hi; ++j) {
        // Key j: a cache row through the block table, or (no cache) the sequence's new token j.
        const void* keys;
        const void* values;
        KvElem elem;
        int64_t base;
        if (p.cache_k != nullptr) {
            const int64_t block = p.block_table[int64_t{s} * p.table_columns + j / p.block_size];
            base = (block * p.block_size + j % p.block_size) * row + int64_t{kv_head} * p.dim;
            keys = p.cache_k;
            values = p.cache_v;
            elem = p.kv_elem;
        } else {
            base = (p.seq_start[s] + j) * row + int64_t{kv_head} * p.dim;
            keys = p.k;
            values = p.v;
            elem = KvElem::f32;
        }
        float partial = 0.0f;
        for (int i = 0; i < kPerLane; ++i) {
            const int d = lane + 32 * i;
            if (d < p.dim) partial += q[i] * load(keys, elem, base + d);
        }
        for (int offset = 16; offset > 0; offset /= 2) partial += __shfl_xor_sync(0xffffffffu, partial, offset);
        float score = partial * p.scale;
        if (p.softcap > 0.0f) score = p.softcap * tanhf(score / p.softcap);
        const float new_max = fmaxf(running_max, score);
        const float correction = expf(running_max - new_max);
        const float weight = expf(score - new_max);
        running_sum = running_sum * correction + weight;
        for (int i = 0; i < kPerLane; ++i) {
            const int d = lane + 32 * i;
            acc[i] = acc[i] * correction + (d < p.dim ? weight * load(values, elem, base + d) : 0.0f);
        }
        running_max = new_max;
    }
    const float inverse = running_sum > 0.0f ? 1.0f / running_sum : 0.0f;
    for (int i = 0; i < kPerLane; ++i) {
        const int d = lane + 32 * i;
        if (d < p.dim) p.out[(int64_t{t} * p.heads + h) * p.dim + d] = acc[i] * inverse;
    }
}

}  // namespace

void attend(const AttendParams& p, cudaStream_t stream) {
    if (p.tokens == 0) return;
    if (p.cache_k != nullptr) {
        const int64_t n = int64_t{p.tokens} * p.kv_heads * p.dim;
        write_kv<<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(p);
    }
    attend_kernel<<<dim3(static_cast<unsigned>(p.tokens), static_cast<unsigned>(p.heads)), 32, 0, stream>>>(p);
}

}  // namespace tfx::cuda_attention
