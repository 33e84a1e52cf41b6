// The cuda backend's own kernels (cuda_kernels.cu, compiled by nvcc), behind plain launchers
// the C++20 backend calls: element-wise ops, norms, rotary, softmax, gathers and MoE routing.
// Every launcher enqueues on `stream` and returns at once; a launch error is reported by the
// next cudaGetLastError (cuda_backend.cpp checks after each op).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace tfx::cuda {

// Element types a kernel reads: f32, bf16, f16 (the KV cache's and stored weights' dtypes).
enum class Elem : int32_t { f32 = 0, bf16 = 1, f16 = 2 };

void widen_to_f32(const void* src, Elem elem, float* dst, int64_t n, cudaStream_t stream);
// Rounds f32 values to bf16 or f16 and back (the values a half-precision weight holds).
void round_through(float* values, Elem elem, int64_t n, cudaStream_t stream);
void embedding(const void* table, Elem elem, const int32_t* ids, float* y, int64_t count, int64_t dim,
               cudaStream_t stream);
void add_bias(float* y, const float* bias, int64_t rows, int64_t dim, cudaStream_t stream);
void rms_norm(const float* x, const float* w, float eps, float offset, float* y, int64_t rows, int64_t dim,
              cudaStream_t stream);
void layer_norm(const float* x, const float* w, const float* b, float eps, float* y, int64_t rows, int64_t dim,
                cudaStream_t stream);
void rope(float* x, const int32_t* positions, const float* inv_freq, float scaling, int64_t tokens, int64_t heads,
          int64_t head_dim, int64_t half, cudaStream_t stream);
void activation(int32_t act, const float* x, float* y, int64_t n, cudaStream_t stream);
void gated_activation(int32_t act, const float* gate, const float* up, float* y, int64_t n, cudaStream_t stream);
// y = a + b or a * b; b has n elements or `dim` (a row vector broadcast over a's rows).
void binary(bool sum, const float* a, const float* b, float* y, int64_t n, int64_t b_count, int64_t dim,
            cudaStream_t stream);
void scale(const float* x, float factor, float* y, int64_t n, cudaStream_t stream);
void softcap(const float* x, float cap, float* y, int64_t n, cudaStream_t stream);
void softmax(const float* x, float* y, int64_t rows, int64_t dim, cudaStream_t stream);

// Element-wise copy between two strided views of up to 8 dims (strides in elements).
struct StridedCopy {
    int32_t ndim;
    int32_t elem_bytes;  // 1, 2, 4 or 8
    int64_t shape[8];
    int64_t src_strides[8];
    int64_t dst_strides[8];
};
void strided_copy(const void* src, void* dst, const StridedCopy& layout, int64_t count, cudaStream_t stream);
// y[r] = x[rows[r]], rows of row_bytes bytes.
void gather_rows(const void* x, const int32_t* rows, void* y, int64_t count, int64_t row_bytes, cudaStream_t stream);
// y[rows[r]] = x[r], rows of `dim` floats.
void scatter_rows(const float* x, const int32_t* rows, float* y, int64_t count, int64_t dim, cudaStream_t stream);
// ids, weights [n, k]: the k largest of each row of x [n, experts], highest first, ties to the
// lower index; weights divided by their sum when normalize.
void top_k(const float* x, int32_t k, bool normalize, int32_t* ids, float* weights, int64_t n, int64_t experts,
           cudaStream_t stream);
// y[t] = sum over s (in order) of weights[t, s] * x[t, s]; x [n, k, dim].
void weighted_sum(const float* x, const float* weights, float* y, int64_t n, int64_t k, int64_t dim,
                  cudaStream_t stream);

}  // namespace tfx::cuda
