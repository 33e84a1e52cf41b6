// The cuda backend's kernels (cuda_kernels.h). Straightforward first versions: one thread per
// element for element-wise ops, one block per row for reductions (norms, softmax), sums in
// f32 in a fixed order, so results stay within the goldens' tolerance of the cpu backend.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda_kernels.h"

namespace tfx::cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) {
    return static_cast<unsigned>((n + kThreads - 1) / kThreads);
}

__device__ float load(const void* p, Elem elem, int64_t i) {
    switch (elem) {
        case Elem::bf16:
            return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
        case Elem::f16:
            return __half2float(static_cast<const __half*>(p)[i]);
        default:
            return static_cast<const float*>(p)[i];
    }
}

__device__ float activate(int32_t act, float v) {
    switch (act) {
        case 1:  // silu
            return v / (1.0f + expf(-v));
        case 2:  // gelu (erf)
            return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
        case 3: {  // gelu, tanh approximation
            const float inner = 0.7978845608028654f * (v + 0.044715f * v * v * v);
            return 0.5f * v * (1.0f + tanhf(inner));
        }
        case 4:  // relu
            return v > 0.0f ? v : 0.0f;
        default:  // tanh
            return tanhf(v);
    }
}

// Sum over a block of kThreads threads; every thread gets the total.
__device__ float block_sum(float v) {
    __shared__ float partial[kThreads / 32];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) total += partial[w];
    return total;
}

__device__ float block_max(float v) {
    __shared__ float partial[kThreads / 32];
    for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    float best = partial[0];
    for (int w = 1; w < kThreads / 32; ++w) best = fmaxf(best, partial[w]);
    return best;
}

__global__ void widen_kernel(const void* src, Elem elem, float* dst, int64_t n) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i < n) dst[i] = load(src, elem, i);
}

__global__ void round_kernel(float* values, Elem elem, int64_t n) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i >= n) return;
    values[i] = elem == Elem::bf16 ? __bfloat162float(__float2bfloat16_rn(values[i]))
                                   : __half2float(__float2half_rn(values[i]));
}

__global__ void embedding_kernel(const void* table, Elem elem, const int32_t* ids, float* y, int64_t count,
                                 int64_t dim) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i >= count * dim) return;
    const int64_t row = i / dim, d = i % dim;
    y[i] = load(table, elem, int64_t{ids[row]} * dim + d);
}

__global__ void add_bias_kernel(float* y, const float* bias, int64_t n, int64_t dim) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i < n) y[i] += bias[i % dim];
}

__global__ void rms_norm_kernel(const float* x, const float* w, float eps, float offset, float* y, int64_t dim) {
    const float* xr = x + blockIdx.x * dim;
    float* yr = y + blockIdx.x * dim;
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum += xr[i] * xr[i];
    const float inv = rsqrtf(block_sum(sum) / static_cast<float>(dim) + eps);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = (offset + w[i]) * (xr[i] * inv);
}

__global__ void layer_norm_kernel(const float* x, const float* w, const float* b, float eps, float* y, int64_t dim) {
    const float* xr = x + blockIdx.x * dim;
    float* yr = y + blockIdx.x * dim;
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum += xr[i];
    const float mean = block_sum(sum) / static_cast<float>(dim);
    float squares = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) squares += (xr[i] - mean) * (xr[i] - mean);
    const float inv = rsqrtf(block_sum(squares) / static_cast<float>(dim) + eps);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
        yr[i] = (xr[i] - mean) * inv * w[i] + (b != nullptr ? b[i] : 0.0f);
}

__global__ void rope_kernel(float* x, const int32_t* positions, const float* inv_freq, float scaling, int64_t tokens,
                            int64_t heads, int64_t head_dim, int64_t half) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i >= tokens * heads * half) return;
    const int64_t t = i / (heads * half), h = (i / half) % heads, j = i % half;
    float* head = x + (t * heads + h) * head_dim;
    const float angle = static_cast<float>(positions[t]) * inv_freq[j];
    const float c = cosf(angle) * scaling, s = sinf(angle) * scaling;
    const float a = head[j], b = head[j + half];
    head[j] = a * c - b * s;
    head[j + half] = b * c + a * s;
}

__global__ void activation_kernel(int32_t act, const float* x, float* y, int64_t n) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i < n) y[i] = activate(act, x[i]);
}

__global__ void gated_kernel(int32_t act, const float* gate, const float* up, float* y, int64_t n) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i < n) y[i] = activate(act, gate[i]) * up[i];
}

__global__ void binary_kernel(bool sum, const float* a, const float* b, float* y, int64_t n, int64_t b_count,
                              int64_t dim) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i >= n) return;
    const float q = b[b_count == n ? i : i % dim];
    y[i] = sum ? a[i] + q : a[i] * q;
}

__global__ void scale_kernel(const float* x, float factor, float* y, int64_t n) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i < n) y[i] = x[i] * factor;
}

__global__ void softcap_kernel(const float* x, float cap, float* y, int64_t n) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i < n) y[i] = cap * tanhf(x[i] / cap);
}

__global__ void softmax_kernel(const float* x, float* y, int64_t dim) {
    const float* xr = x + blockIdx.x * dim;
    float* yr = y + blockIdx.x * dim;
    float best = -INFINITY;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) best = fmaxf(best, xr[i]);
    best = block_max(best);
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum += expf(xr[i] - best);
    const float inv = 1.0f / block_sum(sum);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = expf(xr[i] - best) * inv;
}

__global__ void strided_copy_kernel(const char* src, char* dst, StridedCopy layout, int64_t count) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i >= count) return;
    int64_t rest = i, s = 0, d = 0;
    for (int dim = layout.ndim - 1; dim >= 0; --dim) {
        const int64_t index = rest % layout.shape[dim];
        rest /= layout.shape[dim];
        s += index * layout.src_strides[dim];
        d += index * layout.dst_strides[dim];
    }
    for (int b = 0; b < layout.elem_bytes; ++b) dst[d * layout.elem_bytes + b] = src[s * layout.elem_bytes + b];
}

__global__ void gather_kernel(const char* x, const int32_t* rows, char* y, int64_t count, int64_t row_bytes) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i >= count * row_bytes) return;
    const int64_t r = i / row_bytes, b = i % row_bytes;
    y[i] = x[int64_t{rows[r]} * row_bytes + b];
}

__global__ void scatter_kernel(const float* x, const int32_t* rows, float* y, int64_t count, int64_t dim) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i >= count * dim) return;
    const int64_t r = i / dim, d = i % dim;
    y[int64_t{rows[r]} * dim + d] = x[i];
}

// One thread per row: k rounds of "the largest not taken yet" (experts are few).
__global__ void top_k_kernel(const float* x, int32_t k, bool normalize, int32_t* ids, float* weights, int64_t n,
                             int64_t experts) {
    const int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (t >= n) return;
    const float* row = x + t * experts;
    float sum = 0.0f;
    for (int32_t s = 0; s < k; ++s) {
        int32_t best = -1;
        for (int32_t e = 0; e < experts; ++e) {
            bool taken = false;
            for (int32_t p = 0; p < s; ++p) taken = taken || ids[t * k + p] == e;
            if (!taken && (best < 0 || row[e] > row[best])) best = e;
        }
        ids[t * k + s] = best;
        weights[t * k + s] = row[best];
        sum += row[best];
    }
    if (normalize) {
        for (int32_t s = 0; s < k; ++s) weights[t * k + s] /= sum;
    }
}

__global__ void weighted_sum_kernel(const float* x, const float* weights, float* y, int64_t n, int64_t k, int64_t dim) {
    const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
    if (i >= n * dim) return;
    const int64_t t = i / dim, d = i % dim;
    float total = 0.0f;
    for (int64_t s = 0; s < k; ++s) total += weights[t * k + s] * x[(t * k + s) * dim + d];
    y[i] = total;
}

}  // namespace

void widen_to_f32(const void* src, Elem elem, float* dst, int64_t n, cudaStream_t stream) {
    if (n > 0) widen_kernel<<<blocks_for(n), kThreads, 0, stream>>>(src, elem, dst, n);
}
void round_through(float* values, Elem elem, int64_t n, cudaStream_t stream) {
    if (n > 0 && elem != Elem::f32) round_kernel<<<blocks_for(n), kThreads, 0, stream>>>(values, elem, n);
}
void embedding(const void* table, Elem elem, const int32_t* ids, float* y, int64_t count, int64_t dim,
               cudaStream_t stream) {
    if (count * dim > 0)
        embedding_kernel<<<blocks_for(count * dim), kThreads, 0, stream>>>(table, elem, ids, y, count, dim);
}
void add_bias(float* y, const float* bias, int64_t rows, int64_t dim, cudaStream_t stream) {
    if (rows * dim > 0) add_bias_kernel<<<blocks_for(rows * dim), kThreads, 0, stream>>>(y, bias, rows * dim, dim);
}
void rms_norm(const float* x, const float* w, float eps, float offset, float* y, int64_t rows, int64_t dim,
              cudaStream_t stream) {
    if (rows > 0) rms_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, w, eps, offset, y, dim);
}
void layer_norm(const float* x, const float* w, const float* b, float eps, float* y, int64_t rows, int64_t dim,
                cudaStream_t stream) {
    if (rows > 0) layer_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, w, b, eps, y, dim);
}
void rope(float* x, const int32_t* positions, const float* inv_freq, float scaling, int64_t tokens, int64_t heads,
          int64_t head_dim, int64_t half, cudaStream_t stream) {
    const int64_t n = tokens * heads * half;
    if (n > 0)
        rope_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, positions, inv_freq, scaling, tokens, heads, head_dim,
                                                            half);
}
void activation(int32_t act, const float* x, float* y, int64_t n, cudaStream_t stream) {
    if (n > 0) activation_kernel<<<blocks_for(n), kThreads, 0, stream>>>(act, x, y, n);
}
void gated_activation(int32_t act, const float* gate, const float* up, float* y, int64_t n, cudaStream_t stream) {
    if (n > 0) gated_kernel<<<blocks_for(n), kThreads, 0, stream>>>(act, gate, up, y, n);
}
void binary(bool sum, const float* a, const float* b, float* y, int64_t n, int64_t b_count, int64_t dim,
            cudaStream_t stream) {
    if (n > 0) binary_kernel<<<blocks_for(n), kThreads, 0, stream>>>(sum, a, b, y, n, b_count, dim);
}
void scale(const float* x, float factor, float* y, int64_t n, cudaStream_t stream) {
    if (n > 0) scale_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, factor, y, n);
}
void softcap(const float* x, float cap, float* y, int64_t n, cudaStream_t stream) {
    if (n > 0) softcap_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, cap, y, n);
}
void softmax(const float* x, float* y, int64_t rows, int64_t dim, cudaStream_t stream) {
    if (rows > 0) softmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, y, dim);
}
void strided_copy(const void* src, void* dst, const StridedCopy& layout, int64_t count, cudaStream_t stream) {
    if (count > 0)
        strided_copy_kernel<<<blocks_for(count), kThreads, 0, stream>>>(static_cast<const char*>(src),
                                                                        static_cast<char*>(dst), layout, count);
}
void gather_rows(const void* x, const int32_t* rows, void* y, int64_t count, int64_t row_bytes, cudaStream_t stream) {
    if (count * row_bytes > 0)
        gather_kernel<<<blocks_for(count * row_bytes), kThreads, 0, stream>>>(static_cast<const char*>(x), rows,
                                                                              static_cast<char*>(y), count, row_bytes);
}
void scatter_rows(const float* x, const int32_t* rows, float* y, int64_t count, int64_t dim, cudaStream_t stream) {
    if (count * dim > 0) scatter_kernel<<<blocks_for(count * dim), kThreads, 0, stream>>>(x, rows, y, count, dim);
}
void top_k(const float* x, int32_t k, bool normalize, int32_t* ids, float* weights, int64_t n, int64_t experts,
           cudaStream_t stream) {
    if (n > 0) top_k_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, k, normalize, ids, weights, n, experts);
}
void weighted_sum(const float* x, const float* weights, float* y, int64_t n, int64_t k, int64_t dim,
                  cudaStream_t stream) {
    if (n * dim > 0) weighted_sum_kernel<<<blocks_for(n * dim), kThreads, 0, stream>>>(x, weights, y, n, k, dim);
}

}  // namespace tfx::cuda
