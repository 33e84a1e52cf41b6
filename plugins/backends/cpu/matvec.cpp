// Highway compiles this file once per x86 target (foreach_target.h re-includes it); the
// HWY_ONCE part at the end dispatches to the best target at run time and owns the threads.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "matvec.cpp"
#include <hwy/cache_control.h>
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "matvec.h"
#include "tfx/sdk/half.hpp"

HWY_BEFORE_NAMESPACE();
namespace tfx::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int64_t kRows = 4;  // rows of x per tile
constexpr int64_t kCols = 4;  // rows of w (output features) per tile: four weight streams in flight
// Each step prefetches the weights this many rows ahead, at the same column: rows of a decode
// matmul are short (a few KB), too short for the hardware prefetcher to ramp up on each of the
// four streams, and the explicit prefetch measured 1.3x faster decode (bf16, AVX-512, Zen 5).
// Past the last row the address is only a hint: prefetches never fault.
constexpr int64_t kPrefetchRows = 2 * kCols;

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

// The tile's sums, plus the columns past the vector body (scalar), plus the bias.
template <int64_t MM, class D, class V>
void store_tile(D d, V (&acc)[MM][kCols], const float* x, const void* w, WeightFormat format, const float* bias,
                float* y, int64_t m0, int64_t n0, int64_t nn, int64_t n, int64_t k, int64_t body) {
    for (int64_t i = 0; i < MM; ++i) {
        for (int64_t j = 0; j < nn; ++j) {
            float v = hn::GetLane(hn::SumOfLanes(d, acc[i][j]));
            for (int64_t c = body; c < k; ++c) v += x[(m0 + i) * k + c] * weight_at(w, format, (n0 + j) * k + c);
            if (bias != nullptr) v += bias[n0 + j];
            y[(m0 + i) * n + n0 + j] = v;
        }
    }
}

// Calls tile.template operator()<MM>() with MM = mm (1 to 4) as a constant: the tile's loops
// then unroll fully and its accumulators stay in registers.
template <class Tile>
void with_rows(int64_t mm, Tile&& tile) {
    switch (mm) {
        case 1:
            return tile.template operator()<1>();
        case 2:
            return tile.template operator()<2>();
        case 3:
            return tile.template operator()<3>();
        default:
            return tile.template operator()<4>();
    }
}

// f32 or f16 weights: one vector of weights per row and step, each used for up to four rows of x.
template <WeightFormat F>
void tiles_widened(const float* x, const void* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k,
                   int64_t block_begin, int64_t block_end) {
    const hn::ScalableTag<float> df;
    using V = hn::Vec<decltype(df)>;
    const int64_t step = static_cast<int64_t>(hn::Lanes(df));
    const int64_t body = k / step * step;
    constexpr int64_t kWeightBytes = F == WeightFormat::f32 ? 4 : 2;
    auto load = [&](int64_t row, int64_t c) -> V {
        if constexpr (F == WeightFormat::f32) {
            return hn::LoadU(df, static_cast<const float*>(w) + row * k + c);
        } else {
            const hn::Rebind<hwy::float16_t, decltype(df)> dh;
            return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(w) + row * k + c));
        }
    };
    for (int64_t block = block_begin; block < block_end; ++block) {
        const int64_t n0 = block * kCols, nn = std::min(kCols, n - n0);
        for (int64_t m0 = 0; m0 < m; m0 += kRows) {
            with_rows(std::min(kRows, m - m0), [&]<int64_t MM>() {
                V acc[MM][kCols];
                for (auto& row : acc) {
                    for (auto& a : row) a = hn::Zero(df);
                }
                for (int64_t c = 0; c < body; c += step) {
                    V wv[kCols];
                    for (int64_t j = 0; j < kCols; ++j) {
                        hwy::Prefetch(static_cast<const char*>(w) + ((n0 + kPrefetchRows + j) * k + c) * kWeightBytes);
                        wv[j] = j < nn ? load(n0 + j, c) : hn::Zero(df);
                    }
                    for (int64_t i = 0; i < MM; ++i) {
                        const V xv = hn::LoadU(df, x + (m0 + i) * k + c);
                        for (int64_t j = 0; j < kCols; ++j) acc[i][j] = hn::MulAdd(xv, wv[j], acc[i][j]);
                    }
                }
                store_tile<MM>(df, acc, x, w, F, bias, y, m0, n0, nn, n, k, body);
            });
        }
    }
}

// bf16 weights without a widening shuffle: a vector of 32-bit lanes holds two bf16 weights;
// shifting each lane left by 16 gives the even ones as f32, masking off the low half the odd
// ones. x is split once per call into matching even/odd halves per step, so each weight costs
// one cheap integer op.
void tiles_bf16(const float* x, const void* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k,
                int64_t block_begin, int64_t block_end) {
    const hn::ScalableTag<float> df;
    const hn::RebindToUnsigned<decltype(df)> du;
    using V = hn::Vec<decltype(df)>;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
    const int64_t step = 2 * lanes;
    const int64_t body = k / step * step;
    thread_local std::vector<float> split;
    split.resize(static_cast<size_t>(m * body));
    for (int64_t r = 0; r < m; ++r) {
        for (int64_t c = 0; c < body; c += step) {
            for (int64_t i = 0; i < lanes; ++i) {
                split[r * body + c + i] = x[r * k + c + 2 * i];
                split[r * body + c + lanes + i] = x[r * k + c + 2 * i + 1];
            }
        }
    }
    const float* xs = split.data();
    const auto* w16 = static_cast<const uint16_t*>(w);
    const auto high_half = hn::Set(du, 0xffff0000u);
    for (int64_t block = block_begin; block < block_end; ++block) {
        const int64_t n0 = block * kCols, nn = std::min(kCols, n - n0);
        for (int64_t m0 = 0; m0 < m; m0 += kRows) {
            with_rows(std::min(kRows, m - m0), [&]<int64_t MM>() {
                V acc[MM][kCols];
                for (auto& row : acc) {
                    for (auto& a : row) a = hn::Zero(df);
                }
                for (int64_t c = 0; c < body; c += step) {
                    V even[kCols], odd[kCols];
                    for (int64_t j = 0; j < kCols; ++j) {
                        hwy::Prefetch(w16 + (n0 + kPrefetchRows + j) * k + c);
                        const auto pairs =
                            j < nn ? hn::LoadU(du, reinterpret_cast<const uint32_t*>(w16 + (n0 + j) * k + c))
                                   : hn::Zero(du);
                        even[j] = hn::BitCast(df, hn::ShiftLeft<16>(pairs));
                        odd[j] = hn::BitCast(df, hn::And(pairs, high_half));
                    }
                    for (int64_t i = 0; i < MM; ++i) {
                        const V xe = hn::LoadU(df, xs + (m0 + i) * body + c);
                        const V xo = hn::LoadU(df, xs + (m0 + i) * body + c + lanes);
                        for (int64_t j = 0; j < kCols; ++j) {
                            acc[i][j] = hn::MulAdd(xe, even[j], acc[i][j]);
                            acc[i][j] = hn::MulAdd(xo, odd[j], acc[i][j]);
                        }
                    }
                }
                store_tile<MM>(df, acc, x, w, WeightFormat::bf16, bias, y, m0, n0, nn, n, k, body);
            });
        }
    }
}

// Output rows [block_begin * 4, block_end * 4) of y.
void MatvecBlocks(const float* x, const void* w, WeightFormat format, const float* bias, float* y, int64_t m, int64_t n,
                  int64_t k, int64_t block_begin, int64_t block_end) {
    switch (format) {
        case WeightFormat::f32:
            return tiles_widened<WeightFormat::f32>(x, w, bias, y, m, n, k, block_begin, block_end);
        case WeightFormat::f16:
            return tiles_widened<WeightFormat::f16>(x, w, bias, y, m, n, k, block_begin, block_end);
        case WeightFormat::bf16:
            return tiles_bf16(x, w, bias, y, m, n, k, block_begin, block_end);
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

#include <cctype>
#include <cstdlib>
#include <stdexcept>

namespace tfx::cpu {
HWY_EXPORT(MatvecBlocks);
HWY_EXPORT(WidenRange);
HWY_EXPORT(CompiledTarget);

namespace {

// Below this many weights a call runs on one thread: waking the others costs more than it saves.
constexpr int64_t kParallelMinWeights = int64_t{1} << 15;

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

// The chosen target, settled before any thread reads the dispatch tables (the first dispatch
// would otherwise initialize them from several threads at once). TFX_CPU_ISA applies here.
void settle_dispatch() {
    static const bool settled = [] {
        const char* cap = std::getenv("TFX_CPU_ISA");
        use_isa(cap != nullptr ? cap : "");
        return true;
    }();
    (void)settled;
}

// Splits [0, count) into one contiguous range per thread (each streams its own rows of w).
template <class Fn>
void split_across_threads(int64_t count, bool parallel, Fn&& fn) {
    if (!parallel) return fn(0, count);
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
    settle_dispatch();
    const auto kernel = &HWY_DYNAMIC_DISPATCH(MatvecBlocks);
    const int64_t blocks = (n + 3) / 4;
    split_across_threads(blocks, n * k >= kParallelMinWeights,
                         [&](int64_t begin, int64_t end) { kernel(x, w, format, bias, y, m, n, k, begin, end); });
}

void widen(const uint16_t* src, WeightFormat format, float* dst, int64_t n) {
    settle_dispatch();
    const auto kernel = &HWY_DYNAMIC_DISPATCH(WidenRange);
    constexpr int64_t kChunk = 4096;  // whole vectors per thread
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    split_across_threads(chunks, n >= kParallelMinWeights, [&](int64_t begin, int64_t end) {
        kernel(src, format, dst, begin * kChunk, std::min(end * kChunk, n));
    });
}

std::vector<std::string> isa_targets() {
    settle_dispatch();
    std::vector<std::string> names;
    for (int64_t target : runnable_targets()) names.push_back(lower(hwy::TargetName(target)));
    return names;
}

std::string isa_in_use() {
    settle_dispatch();
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
