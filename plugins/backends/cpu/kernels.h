// CPU kernels on contiguous f32 rows (the matmuls are in matvec.h). Each parallelizes with
// OpenMP, so the backend has exactly one set of worker threads.
#pragma once

#include <cstdint>

namespace tfx::cpu {

void rms_norm(const float* x, const float* w, float eps, float offset, float* y, int64_t rows, int64_t dim);
void layer_norm(const float* x, const float* w, const float* b, float eps, float* y, int64_t rows, int64_t dim);
// x [tokens, heads, head_dim] in place: the first 2*half dims of each head of token t turned
// by the angles positions[t] * inv_freq[i] (f32), cos and sin scaled by attention_scaling.
void rope(float* x, const int32_t* positions, const float* inv_freq, float attention_scaling, int64_t tokens,
          int64_t heads, int64_t head_dim, int64_t half);
// y = act(x), and y = act(gate) * up (the gated MLP); activation.cpp, vectorized per ISA.
void activation(int32_t act, const float* x, float* y, int64_t n);
void gated_activation(int32_t act, const float* gate, const float* up, float* y, int64_t n);
void softmax(const float* x, float* y, int64_t rows, int64_t dim);
// y[t] = sum over s of w[t, s] * x[t, s], accumulated from zero in order of s; x [n, k, dim].
void weighted_sum(const float* x, const float* w, float* y, int64_t n, int64_t k, int64_t dim);

}  // namespace tfx::cpu
