// Highway compiles the loops once per x86 target; the HWY_ONCE part runs the best one.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "apps/tfx/roofline.cpp"
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>

#include <cstdint>
#include <cstring>

HWY_BEFORE_NAMESPACE();
namespace tfx::cli::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Sums floats [0, n) with eight independent accumulators: loads, not adds, are the limit.
float ReadAll(const float* data, int64_t n) {
    const hn::ScalableTag<float> d;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    auto a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    int64_t i = 0;
    for (; i + 8 * lanes <= n; i += 8 * lanes) {
        a0 = hn::Add(a0, hn::LoadU(d, data + i));
        a1 = hn::Add(a1, hn::LoadU(d, data + i + lanes));
        a2 = hn::Add(a2, hn::LoadU(d, data + i + 2 * lanes));
        a3 = hn::Add(a3, hn::LoadU(d, data + i + 3 * lanes));
        a4 = hn::Add(a4, hn::LoadU(d, data + i + 4 * lanes));
        a5 = hn::Add(a5, hn::LoadU(d, data + i + 5 * lanes));
        a6 = hn::Add(a6, hn::LoadU(d, data + i + 6 * lanes));
        a7 = hn::Add(a7, hn::LoadU(d, data + i + 7 * lanes));
    }
    float sum = hn::GetLane(hn::SumOfLanes(
        d, hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)), hn::Add(hn::Add(a4, a5), hn::Add(a6, a7)))));
    for (; i < n; ++i) sum += data[i];
    return sum;
}

// `iterations` rounds of 12 independent vector FMA chains (enough to cover the FMA latency
// on two pipes); returns the flops done and a value the compiler cannot drop. Each chain
// starts from its own value: chains equal from the start are one chain to the optimiser,
// which then ran a single latency-bound FMA a round and reported 1.6x this machine's real
// peak (GCC 12, AVX-512, Zen 5).
float FmaChains(int64_t iterations, double* flops) {
    const hn::ScalableTag<float> d;
    const auto m = hn::Set(d, 0.999999f), c = hn::Set(d, 1e-7f);
    const auto one = hn::Set(d, 1.0f), step = hn::Set(d, 1.0f / 16);
    auto a0 = one, a1 = hn::Add(a0, step), a2 = hn::Add(a1, step), a3 = hn::Add(a2, step), a4 = hn::Add(a3, step),
         a5 = hn::Add(a4, step), a6 = hn::Add(a5, step), a7 = hn::Add(a6, step), a8 = hn::Add(a7, step),
         a9 = hn::Add(a8, step), a10 = hn::Add(a9, step), a11 = hn::Add(a10, step);
    for (int64_t i = 0; i < iterations; ++i) {
        a0 = hn::MulAdd(a0, m, c), a1 = hn::MulAdd(a1, m, c), a2 = hn::MulAdd(a2, m, c);
        a3 = hn::MulAdd(a3, m, c), a4 = hn::MulAdd(a4, m, c), a5 = hn::MulAdd(a5, m, c);
        a6 = hn::MulAdd(a6, m, c), a7 = hn::MulAdd(a7, m, c), a8 = hn::MulAdd(a8, m, c);
        a9 = hn::MulAdd(a9, m, c), a10 = hn::MulAdd(a10, m, c), a11 = hn::MulAdd(a11, m, c);
    }
    *flops = 2.0 * 12.0 * static_cast<double>(hn::Lanes(d)) * static_cast<double>(iterations);
    const auto all =
        hn::Add(hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)), hn::Add(hn::Add(a4, a5), hn::Add(a6, a7))),
                hn::Add(hn::Add(a8, a9), hn::Add(a10, a11)));
    return hn::GetLane(hn::SumOfLanes(d, all));
}

int64_t CompiledTarget() {
    return HWY_TARGET;
}

}  // namespace tfx::cli::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "apps/tfx/roofline.h"

namespace tfx::cli {
HWY_EXPORT(ReadAll);
HWY_EXPORT(FmaChains);
HWY_EXPORT(CompiledTarget);

namespace {

using Clock = std::chrono::steady_clock;

// Runs work(thread) on `threads` threads released together; the seconds until the last ends.
template <class Work>
double timed_on_threads(int threads, Work work) {
    std::barrier start(threads + 1);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            start.arrive_and_wait();
            work(t);
        });
    }
    start.arrive_and_wait();
    const auto t0 = Clock::now();
    for (auto& thread : pool) thread.join();
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::atomic<float> g_sink{0};  // keeps the measured loops' results alive

}  // namespace

Roofline measure_roofline(int threads) {
    Roofline r;
    r.simd_target = hwy::TargetName(HWY_DYNAMIC_DISPATCH(CompiledTarget)());
    for (char& c : r.simd_target) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));

    // 1 GiB: far past any last-level cache, as a model's weights are. Each thread reads (and
    // first writes, so its pages are its own) one contiguous slice, 64-byte aligned as the
    // backends' weights are: from malloc's 16-byte alignment every AVX-512 load spans two cache
    // lines, which measured 0.7x the bytes/s (Zen 5) and would understate the limit.
    constexpr int64_t kFloats = int64_t{1} << 28;
    const std::unique_ptr<float, decltype(&std::free)> buffer(
        static_cast<float*>(std::aligned_alloc(64, kFloats * sizeof(float))), &std::free);
    if (buffer == nullptr) throw std::bad_alloc();
    const int64_t slice = kFloats / threads / 16 * 16;  // whole cache lines per thread
    timed_on_threads(threads, [&](int t) { std::fill_n(buffer.get() + t * slice, slice, 1.0f); });
    const auto read = &HWY_DYNAMIC_DISPATCH(ReadAll);
    double best = 1e30;
    for (int pass = 0; pass < 5; ++pass) {
        best = std::min(best, timed_on_threads(threads, [&](int t) {
                            g_sink.store(g_sink.load() + read(buffer.get() + t * slice, slice));
                        }));
    }
    r.read_gb_per_s = static_cast<double>(slice * threads) * sizeof(float) / best / 1e9;

    const auto fma = &HWY_DYNAMIC_DISPATCH(FmaChains);
    constexpr int64_t kIterations = 50'000'000;
    std::vector<double> flops(static_cast<size_t>(threads));
    best = 1e30;
    for (int pass = 0; pass < 3; ++pass) {
        best = std::min(best, timed_on_threads(threads, [&](int t) {
                            g_sink.store(g_sink.load() + fma(kIterations, &flops[static_cast<size_t>(t)]));
                        }));
    }
    double total = 0;
    for (double f : flops) total += f;
    r.fma_gflop_per_s = total / best / 1e9;
    return r;
}

float read_all(const float* data, int64_t n) {
    return HWY_DYNAMIC_DISPATCH(ReadAll)(data, n);
}

}  // namespace tfx::cli
#endif  // HWY_ONCE
