// Decode matmuls against this machine's read bandwidth, in one run: each benchmark cycles
// through enough copies of one weight shape (SmolLM-135M's projections and lm_head) to stay
// out of the caches, as a decode step does, and reports bytes of weights streamed per second;
// BM_ReadBandwidth reads as many bytes with the vectorised loop of `tfx bench --roofline`, and
// BM_ReadWeights reads the matvec benchmarks' own copies with it.
// Compare a matvec's GB/s with the read loops' at the same thread count.
//   bench_matvec --benchmark_filter=... ; OMP_NUM_THREADS picks the threads.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <tuple>
#include <vector>

#include "apps/tfx/roofline.h"
#include "matvec.h"
#include "quant_matvec.h"
#include "tfx/sdk/half.hpp"

namespace {

using tfx::cpu::QuantFormat;
using tfx::cpu::WeightFormat;

constexpr int64_t kWorkingSetBytes = int64_t{512} << 20;  // far past any L3

// Bytes a second in GB (1e9), the unit of BM_ReadBandwidth and `tfx bench`, beside Google
// Benchmark's bytes_per_second (in GiB, 2^30: 1.074x smaller numbers).
void count_bytes(benchmark::State& state, int64_t bytes_per_iteration) {
    state.SetBytesProcessed(state.iterations() * bytes_per_iteration);
    state.counters["GB/s"] = benchmark::Counter(static_cast<double>(state.iterations() * bytes_per_iteration) / 1e9,
                                                benchmark::Counter::kIsRate);
}

int64_t bytes_per_weight(WeightFormat f) {
    return f == WeightFormat::f32 ? 4 : 2;
}

// Room for `count` copies of `bytes` (a multiple of 64) each, 2 MiB aligned.
struct Arena {
    char* base;
    Arena(int64_t count, int64_t bytes) {
        const size_t total = (count * bytes + (2 << 20) - 1) / (2 << 20) * (2 << 20);
        base = static_cast<char*>(std::aligned_alloc(2 << 20, total));
    }
    ~Arena() { std::free(base); }
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;
};

// Copies of one [n, k] weight, enough to cover the working set, in format f.
struct WeightSet {
    std::vector<char*> copies;
    const int64_t bytes, count;
    Arena arena;
    WeightSet(int64_t n, int64_t k, WeightFormat f)
        : bytes((n * k * bytes_per_weight(f) + 63) / 64 * 64),
          count(std::max<int64_t>(2, kWorkingSetBytes / bytes)),
          arena(count, bytes) {
        uint32_t state = 1;  // xorshift: filling 512 MB with std::mt19937 takes seconds
        for (int64_t j = 0; j < count; ++j) {
            char* c = arena.base + j * bytes;
            copies.push_back(c);
            for (int64_t i = 0; i < n * k; ++i) {
                state ^= state << 13, state ^= state >> 17, state ^= state << 5;
                const float v = static_cast<float>(state) * 0x1p-31f - 1.0f;
                if (f == WeightFormat::f32) {
                    reinterpret_cast<float*>(c)[i] = v;
                } else {
                    reinterpret_cast<uint16_t*>(c)[i] =
                        f == WeightFormat::bf16 ? tfx::sdk::f32_to_bf16(v) : tfx::sdk::f32_to_f16(v);
                }
            }
        }
    }
};

// Google Benchmark calls a benchmark function several times while it sizes the run; the
// weights of the latest shape are kept between calls (one shape at a time: 512 MB each).
template <class Set, class Format>
const Set& latest_set(int64_t n, int64_t k, Format f) {
    static std::unique_ptr<Set> latest;
    static std::tuple<int64_t, int64_t, Format> key;
    if (latest == nullptr || key != std::tuple{n, k, f}) {
        latest.reset();
        latest = std::make_unique<Set>(n, k, f);
        key = {n, k, f};
    }
    return *latest;
}

void BM_Matvec(benchmark::State& state, int64_t n, int64_t k, WeightFormat f) {
    const int64_t m = state.range(0);
    const WeightSet& set = latest_set<WeightSet>(n, k, f);
    std::vector<float> x(static_cast<size_t>(m * k), 0.5f), y(static_cast<size_t>(m * n));
    size_t next = 0;
    for (auto _ : state) {
        tfx::cpu::matvec(x.data(), set.copies[next], f, nullptr, y.data(), m, n, k);
        benchmark::DoNotOptimize(y.data());
        next = (next + 1) % set.copies.size();
    }
    count_bytes(state, n * k * bytes_per_weight(f));
    state.counters["threads"] = omp_get_max_threads();
}

// Block-quantized weights (quant_matvec.h), packed once from random ggml blocks and copied to
// cover the working set the same way, each copy's quants and scales 64-byte aligned as the
// backend packs them (a vector's 16-byte alignment splits every 64-byte load across two cache
// lines); bytes are the ggml encoding's (what a GGUF file holds).
struct QuantSet {
    struct Copy {
        uint8_t* quants;
        uint16_t *scales, *mins;
    };
    // A copy: quants, then scales and minimums, each from a cache line's start.
    struct Layout {
        int64_t quant_bytes, scale_bytes, copy_bytes, count;
    };
    static Layout layout_of(int64_t n, int64_t k, QuantFormat f) {
        auto lines = [](int64_t bytes) { return (bytes + 63) / 64 * 64; };
        Layout l{lines(tfx::cpu::quant_packed_bytes(f, n, k)), lines(tfx::cpu::quant_scale_count(n, k) * 2), 0, 0};
        l.copy_bytes = l.quant_bytes + 2 * l.scale_bytes;
        l.count = std::max<int64_t>(2, kWorkingSetBytes / l.copy_bytes);
        return l;
    }
    const Layout layout;
    Arena arena;
    std::vector<Copy> copies;
    QuantSet(int64_t n, int64_t k, QuantFormat f) : layout(layout_of(n, k, f)), arena(layout.count, layout.copy_bytes) {
        const int64_t row_bytes = tfx::cpu::ggml_row_bytes(f, k);
        std::vector<uint8_t> ggml(static_cast<size_t>(n * row_bytes));
        uint32_t state = 1;
        for (auto& b : ggml) {
            state ^= state << 13, state ^= state >> 17, state ^= state << 5;
            b = static_cast<uint8_t>(state);
        }
        // Finite scales: every block's f16 scale (and q4_1 minimum) set to a small number.
        const int64_t block_bytes = tfx::cpu::ggml_row_bytes(f, tfx::cpu::kQuantBlock);
        const uint16_t small = tfx::sdk::f32_to_f16(0.01f);
        for (int64_t at = 0; at < n * row_bytes; at += block_bytes) {
            std::memcpy(&ggml[static_cast<size_t>(at)], &small, 2);
            if (f == QuantFormat::q4_1) std::memcpy(&ggml[static_cast<size_t>(at) + 2], &small, 2);
        }
        const Layout& l = layout;
        for (int64_t j = 0; j < l.count; ++j) {
            char* c = arena.base + j * l.copy_bytes;
            copies.push_back({reinterpret_cast<uint8_t*>(c), reinterpret_cast<uint16_t*>(c + l.quant_bytes),
                              reinterpret_cast<uint16_t*>(c + l.quant_bytes + l.scale_bytes)});
        }
        tfx::cpu::repack_ggml_rows(f, ggml.data(), n, k, copies[0].quants, copies[0].scales, copies[0].mins);
        for (int64_t j = 1; j < l.count; ++j) {
            std::memcpy(arena.base + j * l.copy_bytes, arena.base, static_cast<size_t>(l.copy_bytes));
        }
    }
};

void BM_QuantMatvec(benchmark::State& state, int64_t n, int64_t k, QuantFormat f) {
    const int64_t m = state.range(0);
    const QuantSet& set = latest_set<QuantSet>(n, k, f);
    std::vector<float> x(static_cast<size_t>(m * k)), y(static_cast<size_t>(m * n));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 17) * 0.1f - 0.8f;
    size_t next = 0;
    for (auto _ : state) {
        const QuantSet::Copy& c = set.copies[next];
        const tfx::cpu::QuantizedWeight w{f, c.quants, c.scales, n, k, c.mins};
        tfx::cpu::quant_matmul(x.data(), w, nullptr, y.data(), m);
        benchmark::DoNotOptimize(y.data());
        next = (next + 1) % set.copies.size();
    }
    count_bytes(state, n * tfx::cpu::ggml_row_bytes(f, k));
    // Prefill (m > 1) is bound by arithmetic, not the weights' bytes: multiply-adds a second.
    state.counters["GMAC/s"] =
        benchmark::Counter(static_cast<double>(state.iterations() * m * n * k) / 1e9, benchmark::Counter::kIsRate);
    state.counters["threads"] = omp_get_max_threads();
}

// The f32 copies of a shape read by the roofline's vectorised loop, split between the threads:
// the bytes/s a matvec could reach on the memory it streams, measured the same way (mean over
// the run, cycling through the copies), beside BM_ReadBandwidth's best pass over a fresh buffer.
void BM_ReadWeights(benchmark::State& state, int64_t n, int64_t k) {
    const WeightSet& set = latest_set<WeightSet>(n, k, WeightFormat::f32);
    const int64_t floats = n * k;
    size_t next = 0;
    float sink = 0.0f;
    for (auto _ : state) {
        const auto* data = reinterpret_cast<const float*>(set.copies[next]);
#pragma omp parallel reduction(+ : sink)
        {
            const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
            const int64_t begin = floats * t / threads / 16 * 16;
            const int64_t end = t + 1 == threads ? floats : floats * (t + 1) / threads / 16 * 16;
            sink += tfx::cli::read_all(data + begin, end - begin);
        }
        next = (next + 1) % set.copies.size();
    }
    benchmark::DoNotOptimize(sink);
    count_bytes(state, floats * 4);
    state.counters["threads"] = omp_get_max_threads();
}

void BM_ReadBandwidth(benchmark::State& state) {
    for (auto _ : state) {
        const tfx::cli::Roofline r = tfx::cli::measure_roofline(omp_get_max_threads());
        state.counters["read_GBps"] = r.read_gb_per_s;
        state.counters["fma_GFLOPs"] = r.fma_gflop_per_s;
    }
}

#define TFX_MATVEC(name, n, k)                                                                                         \
    BENCHMARK_CAPTURE(BM_Matvec, name##_f32, n, k, WeightFormat::f32)->Arg(1)->Arg(4)->Arg(8)->Arg(16)->UseRealTime(); \
    BENCHMARK_CAPTURE(BM_Matvec, name##_bf16, n, k, WeightFormat::bf16)                                                \
        ->Arg(1)                                                                                                       \
        ->Arg(4)                                                                                                       \
        ->Arg(8)                                                                                                       \
        ->Arg(16)                                                                                                      \
        ->UseRealTime();                                                                                               \
    BENCHMARK_CAPTURE(BM_Matvec, name##_f16, n, k, WeightFormat::f16)->Arg(1)->Arg(4)->UseRealTime()

BENCHMARK_CAPTURE(BM_ReadWeights, up_1536x576, 1536, 576)->UseRealTime();
BENCHMARK_CAPTURE(BM_ReadWeights, lm_head_49152x576, 49152, 576)->UseRealTime();
TFX_MATVEC(q_576x576, 576, 576);
TFX_MATVEC(kv_192x576, 192, 576);
TFX_MATVEC(up_1536x576, 1536, 576);
TFX_MATVEC(down_576x1536, 576, 1536);
TFX_MATVEC(lm_head_49152x576, 49152, 576);

#define TFX_QUANT_MATVEC(name, n, k)                                        \
    BENCHMARK_CAPTURE(BM_QuantMatvec, name##_q8_0, n, k, QuantFormat::q8_0) \
        ->Arg(1)                                                            \
        ->Arg(16)                                                           \
        ->Arg(32)                                                           \
        ->Arg(128)                                                          \
        ->UseRealTime();                                                    \
    BENCHMARK_CAPTURE(BM_QuantMatvec, name##_q4_0, n, k, QuantFormat::q4_0) \
        ->Arg(1)                                                            \
        ->Arg(16)                                                           \
        ->Arg(32)                                                           \
        ->Arg(128)                                                          \
        ->UseRealTime();                                                    \
    BENCHMARK_CAPTURE(BM_QuantMatvec, name##_q4_1, n, k, QuantFormat::q4_1)->Arg(1)->Arg(128)->UseRealTime()

TFX_QUANT_MATVEC(q_576x576, 576, 576);
TFX_QUANT_MATVEC(up_1536x576, 1536, 576);
TFX_QUANT_MATVEC(down_576x1536, 576, 1536);
TFX_QUANT_MATVEC(lm_head_49152x576, 49152, 576);
BENCHMARK(BM_ReadBandwidth)->Iterations(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
