// Prefill matmuls against this machine's FMA peak, in one run: tfx's own GEMMs (gemm.h, and
// gemm_bf16.h's bf16 dot products where the CPU has them) and oneDNN's f32 and bf16 matmuls on
// the same shapes (SmolLM-135M's projections), each reporting GFLOP/s; BM_FmaPeak measures
// the f32 FMA peak with the vectorised loop of `tfx bench --roofline` (bf16 dot products
// peak at twice it). Compare GFLOP/s with fma_GFLOPs at the same thread count.
//   bench_gemm --benchmark_filter=... ; OMP_NUM_THREADS picks the threads.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <vector>

#include "apps/tfx/roofline.h"
#include "gemm.h"
#include "gemm_bf16.h"
#include "onednn_matmul.h"
#include "tfx/sdk/half.hpp"

namespace {

using tfx::cpu::WeightFormat;

// One [n, k] weight in format f and an [m, k] activation, filled with small values.
struct Operands {
    std::vector<float> x, w32, y;
    std::vector<uint16_t> w16;
    Operands(int64_t m, int64_t n, int64_t k, WeightFormat f)
        : x(static_cast<size_t>(m * k)), w32(static_cast<size_t>(n * k)), y(static_cast<size_t>(m * n)) {
        uint32_t state = 1;
        auto next = [&] {
            state ^= state << 13, state ^= state >> 17, state ^= state << 5;
            return static_cast<float>(state) * 0x1p-31f - 1.0f;
        };
        for (float& v : x) v = next();
        for (float& v : w32) v = next();
        if (f != WeightFormat::f32) {
            for (float v : w32)
                w16.push_back(f == WeightFormat::bf16 ? tfx::sdk::f32_to_bf16(v) : tfx::sdk::f32_to_f16(v));
        }
    }
    const void* w(WeightFormat f) const {
        return f == WeightFormat::f32 ? static_cast<const void*>(w32.data()) : w16.data();
    }
};

void report(benchmark::State& state, int64_t m, int64_t n, int64_t k) {
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(state.iterations() * m * n * k) / 1e9,
                                                   benchmark::Counter::kIsRate);
    state.counters["threads"] = omp_get_max_threads();
}

void BM_Gemm(benchmark::State& state, int64_t n, int64_t k, WeightFormat f) {
    const int64_t m = state.range(0);
    Operands o(m, n, k, f);
    for (auto _ : state) {
        tfx::cpu::gemm(o.x.data(), o.w(f), f, nullptr, o.y.data(), m, n, k);
        benchmark::DoNotOptimize(o.y.data());
    }
    report(state, m, n, k);
}

void BM_OneDnnF32(benchmark::State& state, int64_t n, int64_t k) {
    const int64_t m = state.range(0);
    Operands o(m, n, k, WeightFormat::f32);
    tfx::cpu::OneDnnMatmul matmul;
    for (auto _ : state) {
        matmul.run(o.x.data(), o.w32.data(), nullptr, o.y.data(), m, n, k);
        benchmark::DoNotOptimize(o.y.data());
    }
    report(state, m, n, k);
}

// matmul_precision medium: x rounded to bf16, bf16 dot products on the bf16 weights.
void BM_GemmBf16Dot(benchmark::State& state, int64_t n, int64_t k) {
    if (!tfx::cpu::bf16_dot_products_available()) return state.SkipWithError("no AVX-512 BF16 on this CPU");
    const int64_t m = state.range(0);
    Operands o(m, n, k, WeightFormat::bf16);
    const tfx::cpu::MatvecWeight w{o.w16.data(), WeightFormat::bf16, nullptr, o.y.data(), n};
    for (auto _ : state) {
        tfx::cpu::gemm_many_bf16(o.x.data(), &w, 1, m, k);
        benchmark::DoNotOptimize(o.y.data());
    }
    report(state, m, n, k);
}

// oneDNN's bf16 matmul on x rounded once before the loop (so it is given its best case).
void BM_OneDnnBf16(benchmark::State& state, int64_t n, int64_t k) {
    const int64_t m = state.range(0);
    Operands o(m, n, k, WeightFormat::bf16);
    std::vector<uint16_t> x16;
    for (float v : o.x) x16.push_back(tfx::sdk::f32_to_bf16(v));
    tfx::cpu::OneDnnMatmul matmul;
    for (auto _ : state) {
        matmul.run_bf16(x16.data(), o.w16.data(), nullptr, o.y.data(), m, n, k);
        benchmark::DoNotOptimize(o.y.data());
    }
    report(state, m, n, k);
}

void BM_FmaPeak(benchmark::State& state) {
    for (auto _ : state)
        state.counters["fma_GFLOPs"] = tfx::cli::measure_roofline(omp_get_max_threads()).fma_gflop_per_s;
}

#define TFX_GEMM(name, n, k)                                                                          \
    BENCHMARK_CAPTURE(BM_Gemm, name##_f32, n, k, WeightFormat::f32)                                   \
        ->Arg(17)                                                                                     \
        ->Arg(32)                                                                                     \
        ->Arg(128)                                                                                    \
        ->Arg(512)                                                                                    \
        ->UseRealTime();                                                                              \
    BENCHMARK_CAPTURE(BM_Gemm, name##_bf16, n, k, WeightFormat::bf16)->Arg(128)->UseRealTime();       \
    BENCHMARK_CAPTURE(BM_OneDnnF32, name, n, k)->Arg(17)->Arg(32)->Arg(128)->Arg(512)->UseRealTime(); \
    BENCHMARK_CAPTURE(BM_GemmBf16Dot, name, n, k)->Arg(32)->Arg(128)->Arg(512)->UseRealTime();        \
    BENCHMARK_CAPTURE(BM_OneDnnBf16, name, n, k)->Arg(32)->Arg(128)->Arg(512)->UseRealTime()

TFX_GEMM(q_576x576, 576, 576);
TFX_GEMM(kv_192x576, 192, 576);
TFX_GEMM(up_1536x576, 1536, 576);
TFX_GEMM(down_576x1536, 576, 1536);
TFX_GEMM(qwen_up_4864x896, 4864, 896);
BENCHMARK(BM_FmaPeak)->Iterations(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
