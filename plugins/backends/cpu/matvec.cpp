// Highway compiles this file once per x86 target (foreach_target.h re-includes it); the
// HWY_ONCE part at the end dispatches to the best target at run time and owns the threads.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "matvec.cpp"
#include <hwy/cache_control.h>
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>

#include <algorithm>
#include <vector>

#include "matvec.h"
#include "tfx/sdk/half.hpp"

HWY_BEFORE_NAMESPACE();
namespace tfx::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Rows of x sharing one pass over a weight row: each weight vector loaded feeds up to kRows.
constexpr int64_t kRows = 4;
// Interleaved weight rows (R > 1 below) are prefetched this many rows ahead, at the same
// column: the rows are short (a few KB), too short for the hardware prefetcher to ramp up on
// each of the streams. Past the last row the address is only a hint: prefetches never fault.
constexpr int64_t kPrefetchRows = 8;

float weight_at(const void* w, WeightFormat format, int64_t i) {
    switch (format) {
        case WeightFormat::f32:
            return static_cast<const float*>(w)[i];
        case WeightFormat::bf16:
            return sdk::bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
        case WeightFormat::f16:
            return sdk::f16_to_f32(static_cast<const uint16_t*>(w)[i]);
    }
    return 0.0f;
}

// One vector of weights from a row at column c, widened to f32 in registers (bf16/f16 stay
// half-size in memory). For bf16, Highway's promote is a zero-extend and a shift; splitting
// 32-bit pairs into even/odd halves instead (one integer op a weight, x split to match)
// measured 0.6x the bytes/s of this (AVX-512, Zen 5).
template <WeightFormat F, class D>
hn::Vec<D> load_weights(D d, const void* row, int64_t c) {
    if constexpr (F == WeightFormat::f32) {
        return hn::LoadU(d, static_cast<const float*>(row) + c);
    } else if constexpr (F == WeightFormat::f16) {
        const hn::Rebind<hwy::float16_t, D> dh;
        return hn::PromoteTo(d, hn::LoadU(dh, static_cast<const hwy::float16_t*>(row) + c));
    } else {
        const hn::Rebind<hwy::bfloat16_t, D> db;
        return hn::PromoteTo(d, hn::LoadU(db, static_cast<const hwy::bfloat16_t*>(row) + c));
    }
}

// y[i, r] for MM rows of x and weight rows [r0, r1), R weight rows at a time, each read front
// to back. One or two rows of x (decode): R = 1, so each thread is one sequential stream, which
// the hardware prefetcher follows at full speed (measured 1.2-1.4x the bytes/s of four rows
// interleaved with software prefetch, AVX-512, Zen 5). More rows of x: R = 4 with software
// prefetch, so each x vector loaded feeds four weight rows (measured 1.3-1.7x the bytes/s of
// R = 1 at four rows of x; without the prefetch, 1.0-1.1x). The columns past the vector body
// (k not a multiple of the lanes) are summed in scalar.
template <WeightFormat F, int64_t MM, int64_t R>
void rows_of_w(const float* x, const void* w, const float* bias, float* y, int64_t n, int64_t k, int64_t r0,
               int64_t r1) {
    const hn::ScalableTag<float> df;
    using V = hn::Vec<decltype(df)>;
    // Independent accumulators, so FMA latency never stalls the stream; at most 16 (the
    // vector registers of AVX2 hold them and the loads).
    constexpr int64_t U = std::clamp<int64_t>(8 / (MM * R), 1, 4);
    const int64_t e = static_cast<int64_t>(hn::Lanes(df)), body = k / e * e;
    const int64_t bytes_per_weight = F == WeightFormat::f32 ? 4 : 2;
    int64_t r = r0;
    for (; r + R <= r1; r += R) {
        const char* rows = static_cast<const char*>(w) + r * k * bytes_per_weight;
        V acc[MM][R][U];
        for (auto& a : acc) {
            for (auto& b : a) {
                for (auto& v : b) v = hn::Zero(df);
            }
        }
        auto step = [&](int64_t c, int64_t u) {
            V wv[R];
            for (int64_t j = 0; j < R; ++j) {
                if constexpr (R > 1) hwy::Prefetch(rows + ((kPrefetchRows + j) * k + c) * bytes_per_weight);
                wv[j] = load_weights<F>(df, rows + j * k * bytes_per_weight, c);
            }
            for (int64_t i = 0; i < MM; ++i) {
                const V xv = hn::LoadU(df, x + i * k + c);
                for (int64_t j = 0; j < R; ++j) acc[i][j][u] = hn::MulAdd(xv, wv[j], acc[i][j][u]);
            }
        };
        int64_t c = 0;
        for (; c + U * e <= body; c += U * e) {
            for (int64_t u = 0; u < U; ++u) step(c + u * e, u);
        }
        for (; c < body; c += e) step(c, 0);
        for (int64_t i = 0; i < MM; ++i) {
            for (int64_t j = 0; j < R; ++j) {
                V total = acc[i][j][0];
                for (int64_t u = 1; u < U; ++u) total = hn::Add(total, acc[i][j][u]);
                float sum = hn::GetLane(hn::SumOfLanes(df, total));
                const char* row = rows + j * k * bytes_per_weight;
                for (int64_t t = body; t < k; ++t) sum += x[i * k + t] * weight_at(row, F, t);
                if (bias != nullptr) sum += bias[r + j];
                y[i * n + r + j] = sum;
            }
        }
    }
    if constexpr (R > 1) {
        if (r < r1) rows_of_w<F, MM, 1>(x, w, bias, y, n, k, r, r1);
    }
}

// Calls fn.template operator()<MM>() with MM = mm (1 to kRows) as a constant: the loops over
// rows of x then unroll fully and the accumulators stay in registers.
template <class Fn>
void with_rows(int64_t mm, Fn&& fn) {
    switch (mm) {
        case 1:
            return fn.template operator()<1>();
        case 2:
            return fn.template operator()<2>();
        case 3:
            return fn.template operator()<3>();
        default:
            return fn.template operator()<4>();
    }
}

// More than kRows rows of x (a batch of decodes) pass over the weights in tiles of about this
// many bytes: every group of kRows rows goes over a tile while it is in L2, so the weights
// stream from memory once per call, not once per group.
constexpr int64_t kTileBytes = int64_t{128} << 10;

template <WeightFormat F>
void matvec_rows(const float* x, const void* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k,
                 int64_t r0, int64_t r1) {
    const int64_t row_bytes = k * (F == WeightFormat::f32 ? 4 : 2);
    const int64_t tile = m <= kRows ? r1 - r0 : std::max<int64_t>(4, kTileBytes / row_bytes / 4 * 4);
    for (int64_t t0 = r0; t0 < r1; t0 += tile) {
        const int64_t t1 = std::min(r1, t0 + tile);
        for (int64_t m0 = 0; m0 < m; m0 += kRows) {
            with_rows(std::min(kRows, m - m0), [&]<int64_t MM>() {
                constexpr int64_t R = MM <= 2 ? 1 : 4;
                rows_of_w<F, MM, R>(x + m0 * k, w, bias, y + m0 * n, n, k, t0, t1);
            });
        }
    }
}

// Output features [r0, r1) of y.
void MatvecRows(const float* x, const void* w, WeightFormat format, const float* bias, float* y, int64_t m, int64_t n,
                int64_t k, int64_t r0, int64_t r1) {
    switch (format) {
        case WeightFormat::f32:
            return matvec_rows<WeightFormat::f32>(x, w, bias, y, m, n, k, r0, r1);
        case WeightFormat::f16:
            return matvec_rows<WeightFormat::f16>(x, w, bias, y, m, n, k, r0, r1);
        case WeightFormat::bf16:
            return matvec_rows<WeightFormat::bf16>(x, w, bias, y, m, n, k, r0, r1);
    }
}

void WidenRange(const uint16_t* src, WeightFormat format, float* dst, int64_t begin, int64_t end) {
    const hn::ScalableTag<float> df;
    const hn::Rebind<hwy::float16_t, decltype(df)> dh;
    const hn::Rebind<hwy::bfloat16_t, decltype(df)> db;
    const int64_t step = static_cast<int64_t>(hn::Lanes(df));
    int64_t i = begin;
    for (; i + step <= end; i += step) {
        const auto v = format == WeightFormat::f16
                           ? hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(src) + i))
                           : hn::PromoteTo(df, hn::LoadU(db, reinterpret_cast<const hwy::bfloat16_t*>(src) + i));
        hn::StoreU(v, df, dst + i);
    }
    for (; i < end; ++i) dst[i] = weight_at(src, format, i);
}

// The target this copy was compiled for: what the dispatch tables pick, as they pick it.
int64_t CompiledTarget() {
    return HWY_TARGET;
}

}  // namespace tfx::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

#include "parallel.h"

#include <cctype>
#include <cstdlib>
#include <stdexcept>

namespace tfx::cpu {
HWY_EXPORT(MatvecRows);
HWY_EXPORT(WidenRange);
HWY_EXPORT(CompiledTarget);

namespace {

// Below this many weights a call runs on one thread: waking the others costs more than it
// saves. At 2^15, tinystories-656k's MLP matrices (49k weights) went to two threads and
// decoded at 0.8x the one-thread speed (AVX-512 Zen 5); at 2^16 two threads match one, and
// SmolLM-135M's smallest matrix (110k) still splits.
constexpr int64_t kParallelMinWeights = int64_t{1} << 16;

// The targets compiled in that this CPU runs, best first; first read while no cap is set
// (use_isa lifts the cap before it asks).
const std::vector<int64_t>& runnable_targets() {
    static const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
    return targets;
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace

void settle_isa_dispatch() {
    static const bool settled = [] {
        const char* cap = std::getenv("TFX_CPU_ISA");
        use_isa(cap != nullptr ? cap : "");
        return true;
    }();
    (void)settled;
}

namespace {

// Splits [0, count) into one contiguous range per thread (each streams its own rows of w).
template <class Fn>
void split_across_threads(int64_t count, bool parallel, Fn&& fn) {
    if (!use_threads(parallel)) return fn(0, count);
#pragma omp parallel
    {
        const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t begin = count * t / threads, end = count * (t + 1) / threads;
        if (begin < end) fn(begin, end);
    }
}

}  // namespace

void matvec(const float* x, const void* w, WeightFormat format, const float* bias, float* y, int64_t m, int64_t n,
            int64_t k) {
    const MatvecWeight one{w, format, bias, y, n};
    matvec_many(x, &one, 1, m, k);
}

void matvec_many(const float* x, const MatvecWeight* ws, int count, int64_t m, int64_t k) {
    settle_isa_dispatch();
    const auto kernel = &HWY_DYNAMIC_DISPATCH(MatvecRows);
    int64_t rows = 0;
    for (int i = 0; i < count; ++i) rows += ws[i].n;
    // Rows numbered across the weights one after another; each thread's range may span several.
    split_across_threads(rows, rows * k >= kParallelMinWeights, [&](int64_t begin, int64_t end) {
        int64_t first = 0;
        for (int i = 0; i < count; ++i) {
            const int64_t a = std::max(begin, first), b = std::min(end, first + ws[i].n);
            if (a < b) kernel(x, ws[i].w, ws[i].format, ws[i].bias, ws[i].y, m, ws[i].n, k, a - first, b - first);
            first += ws[i].n;
        }
    });
}

void widen(const uint16_t* src, WeightFormat format, float* dst, int64_t n) {
    settle_isa_dispatch();
    const auto kernel = &HWY_DYNAMIC_DISPATCH(WidenRange);
    constexpr int64_t kChunk = 4096;  // whole vectors per thread
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    split_across_threads(chunks, n >= kParallelMinWeights, [&](int64_t begin, int64_t end) {
        kernel(src, format, dst, begin * kChunk, std::min(end * kChunk, n));
    });
}

std::vector<std::string> isa_targets() {
    settle_isa_dispatch();
    std::vector<std::string> names;
    for (int64_t target : runnable_targets()) names.push_back(lower(hwy::TargetName(target)));
    return names;
}

std::string isa_in_use() {
    settle_isa_dispatch();
    return lower(hwy::TargetName(HWY_DYNAMIC_DISPATCH(CompiledTarget)()));
}

void use_isa(const std::string& wanted) {
    // Highway 1.0 caps its dispatch only through its test hook; it is process-wide.
    hwy::SetSupportedTargetsForTest(0);
    runnable_targets();
    const std::string name = lower(wanted) == "avx512" ? "avx3" : lower(wanted);
    int64_t chosen = 0;
    if (!name.empty()) {
        std::string known;
        for (int64_t target : runnable_targets()) {
            const std::string target_name = lower(hwy::TargetName(target));
            if (target_name == name || (name == "portable" && (target == HWY_EMU128 || target == HWY_SCALAR))) {
                chosen = target;
            }
            known += (known.empty() ? "" : ", ") + target_name;
        }
        if (chosen == 0) {
            throw std::invalid_argument("TFX_CPU_ISA: '" + wanted + "' is not a target this CPU runs (" + known +
                                        ", portable; avx512 = avx3)");
        }
        hwy::SetSupportedTargetsForTest(chosen);
    }
    hwy::GetChosenTarget().Update(hwy::SupportedTargets());
}

}  // namespace tfx::cpu
#endif  // HWY_ONCE
