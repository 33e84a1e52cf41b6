// Matmuls through oneDNN: y[m, n] = x[m, k] · w[n, k]ᵀ (+ bias). One primitive per shape,
// created on first use and cached. bench_gemm's reference for tfx's own GEMMs: the cpu backend
// used oneDNN for prefill until gemm.h (f32) and gemm_bf16.h (bf16 dot products) measured
// level with it or faster, and no longer links it.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

#include <oneapi/dnnl/dnnl.hpp>

namespace tfx::cpu {

class OneDnnMatmul {
  public:
    OneDnnMatmul();
    void run(const float* x, const float* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k);
    // The same on bf16 x and w (f32 sums and output): oneDNN's bf16 dot products (AVX-512 BF16).
    void run_bf16(const uint16_t* x, const uint16_t* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k);

  private:
    dnnl::engine engine_;
    dnnl::stream stream_;
    std::mutex mutex_;
    std::map<std::tuple<int64_t, int64_t, int64_t, bool, bool>, dnnl::matmul> primitives_;  // m, n, k, bias, bf16
};

}  // namespace tfx::cpu
