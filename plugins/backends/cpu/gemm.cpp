// Highway compiles this file once per x86 target (foreach_target.h re-includes it); the
// HWY_ONCE part at the end dispatches to the best target at run time and owns the threads.
//
// The layout, in BLAS terms: the output tile is held transposed in registers, kTileRows
// weight rows (output features) by kTileVectors vectors of activation rows. Each step of k
// loads kTileVectors vectors of x, packed so a vector holds one column of k across
// consecutive rows of x, and broadcasts one weight of each of the kTileRows rows: rows of w
// are read front to back as stored, and only x (a few hundred KB per block) is repacked
// per call, once for every weight of a gemm_many.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "gemm.cpp"
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>

#include <algorithm>
#include <array>
#include <utility>

#include "gemm.h"
#include "tfx/sdk/half.hpp"
#include "tile_store.h"

HWY_BEFORE_NAMESPACE();
namespace tfx::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// 32 vector registers: 24 accumulators, 3 vectors of x and one broadcast weight. Eight
// weight rows fill tile_store.h's 8 x 8 transposes.
constexpr int64_t kTileRows = 8, kTileVectors = 3;
#else
// 16 vector registers (AVX2, SSE4): 12 accumulators, 2 vectors of x and one broadcast.
constexpr int64_t kTileRows = 6, kTileVectors = 2;
#endif
// Columns of k per block: a tile's weight rows (kTileRows x this, widened if half) stay in L1.
constexpr int64_t kMaxBlockColumns = 2048;

using Df = hn::ScalableTag<float>;

int64_t tile_columns() {
    return kTileVectors * static_cast<int64_t>(hn::Lanes(Df()));
}

// out[i][c] (a tile of `width` floats a row) = sum_p w[i][p] * xp[p][c] for MM weight rows
// and NV vectors of packed columns: the FMA units' work, everything else is around it.
template <int64_t MM, int64_t NV>
void multiply_tile(const float* HWY_RESTRICT xp, int64_t width, const float* HWY_RESTRICT w, int64_t w_stride,
                   int64_t kc, float* HWY_RESTRICT out) {
    const Df d;
    using V = hn::Vec<Df>;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    V acc[MM][NV];
    for (auto& row : acc) {
        for (auto& v : row) v = hn::Zero(d);
    }
    for (int64_t p = 0; p < kc; ++p) {
        V xv[NV];
        for (int64_t v = 0; v < NV; ++v) xv[v] = hn::Load(d, xp + p * width + v * lanes);
        for (int64_t i = 0; i < MM; ++i) {
            const V wi = hn::Set(d, w[i * w_stride + p]);
            for (int64_t v = 0; v < NV; ++v) acc[i][v] = hn::MulAdd(wi, xv[v], acc[i][v]);
        }
    }
    for (int64_t i = 0; i < MM; ++i) {
        for (int64_t v = 0; v < NV; ++v) hn::Store(acc[i][v], d, out + i * width + v * lanes);
    }
}

// multiply_tile for every MM (1 to kTileRows) and NV (1 to kTileVectors), so the tails of n
// and m run the same loop with fewer registers: kTileKernels[(MM - 1) * kTileVectors + NV - 1].
using TileKernel = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float*);
template <size_t... I>
constexpr std::array<TileKernel, sizeof...(I)> tile_kernels(std::index_sequence<I...>) {
    return {&multiply_tile<static_cast<int64_t>(I) / kTileVectors + 1, static_cast<int64_t>(I) % kTileVectors + 1>...};
}
constexpr auto kTileKernels = tile_kernels(std::make_index_sequence<kTileRows * kTileVectors>());

void TileShape(int64_t* rows, int64_t* columns, int64_t* max_block_columns) {
    *rows = kTileRows;
    *columns = tile_columns();
    *max_block_columns = kMaxBlockColumns;
}

// Packs rows [m0, m0 + mc) of x, columns [k0, k0 + kc), for the column groups [g0, g1): group
// g holds rows m0 + g*width .. + width as xp[g][p][row], zero past mc. Four rows by four
// columns at a time, transposed in 128-bit registers (a third of the scalar loop's time).
void PackRows(const float* x, int64_t k, int64_t m0, int64_t mc, int64_t k0, int64_t kc, int64_t g0, int64_t g1,
              void* packed) {
    const int64_t width = tile_columns();
    float* xp = static_cast<float*>(packed);
    for (int64_t g = g0; g < g1; ++g) {
        float* group = xp + g * kc * width;
        int64_t c = 0;
#if HWY_TARGET != HWY_SCALAR
        const hn::Full128<float> d4;
        for (; c + 4 <= width && g * width + c + 4 <= mc; c += 4) {
            const float* src = x + (m0 + g * width + c) * k + k0;
            int64_t p = 0;
            for (; p + 4 <= kc; p += 4) {
                const auto r0 = hn::LoadU(d4, src + p), r1 = hn::LoadU(d4, src + k + p);
                const auto r2 = hn::LoadU(d4, src + 2 * k + p), r3 = hn::LoadU(d4, src + 3 * k + p);
                // Rows (a0 a1 a2 a3) ... into columns (a0 b0 c0 d0) ...
                const auto ab_lo = hn::InterleaveLower(d4, r0, r1), ab_hi = hn::InterleaveUpper(d4, r0, r1);
                const auto cd_lo = hn::InterleaveLower(d4, r2, r3), cd_hi = hn::InterleaveUpper(d4, r2, r3);
                const hn::Repartition<double, decltype(d4)> d2;
                auto column = [&](auto lo, auto hi, bool upper) {
                    const auto a = hn::BitCast(d2, lo), b = hn::BitCast(d2, hi);
                    return hn::BitCast(d4, upper ? hn::InterleaveUpper(d2, a, b) : hn::InterleaveLower(d2, a, b));
                };
                hn::StoreU(column(ab_lo, cd_lo, false), d4, group + p * width + c);
                hn::StoreU(column(ab_lo, cd_lo, true), d4, group + (p + 1) * width + c);
                hn::StoreU(column(ab_hi, cd_hi, false), d4, group + (p + 2) * width + c);
                hn::StoreU(column(ab_hi, cd_hi, true), d4, group + (p + 3) * width + c);
            }
            for (; p < kc; ++p) {
                for (int64_t j = 0; j < 4; ++j) group[p * width + c + j] = src[j * k + p];
            }
        }
#endif
        for (; c < width; ++c) {
            const int64_t row = g * width + c;
            if (row >= mc) {
                for (int64_t p = 0; p < kc; ++p) group[p * width + c] = 0.0f;
                continue;
            }
            const float* src = x + (m0 + row) * k + k0;
            for (int64_t p = 0; p < kc; ++p) group[p * width + c] = src[p];
        }
    }
}

// Rows [0, rows) of w's columns [k0, k0 + kc), widened from bf16/f16 into dst[rows][kc].
void widen_tile(const uint16_t* w, WeightFormat format, int64_t k, int64_t k0, int64_t kc, int64_t rows, float* dst) {
    const Df d;
    const hn::Rebind<hwy::float16_t, Df> dh;
    const hn::Rebind<hwy::bfloat16_t, Df> db;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    for (int64_t i = 0; i < rows; ++i) {
        const uint16_t* src = w + i * k + k0;
        float* out = dst + i * kc;
        int64_t p = 0;
        for (; p + lanes <= kc; p += lanes) {
            const auto v = format == WeightFormat::f16
                               ? hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(src) + p))
                               : hn::PromoteTo(d, hn::LoadU(db, reinterpret_cast<const hwy::bfloat16_t*>(src) + p));
            hn::StoreU(v, d, out + p);
        }
        for (; p < kc; ++p) out[p] = format == WeightFormat::f16 ? sdk::f16_to_f32(src[p]) : sdk::bf16_to_f32(src[p]);
    }
}

// Output features [r0, r1) of one weight for the packed block (rows m0 .. m0 + mc of x,
// columns k0 .. k0 + kc): y = the block's product (+ bias) when `first`, y += it after.
void TileRange(const void* packed, int64_t m0, int64_t mc, int64_t k0, int64_t kc, bool first, const MatvecWeight* w,
               int64_t k, int64_t r0, int64_t r1) {
    const int64_t width = tile_columns(), lanes = static_cast<int64_t>(hn::Lanes(Df()));
    const float* xp = static_cast<const float*>(packed);
    HWY_ALIGN float widened[kTileRows * kMaxBlockColumns];
    HWY_ALIGN float out[kTileRows * kTileVectors * HWY_MAX_BYTES / sizeof(float)];
    for (int64_t r = r0; r < r1; r += kTileRows) {
        const int64_t rows = std::min(kTileRows, r1 - r);
        const float* tile_w = nullptr;
        int64_t stride = k;
        if (w->format == WeightFormat::f32) {
            tile_w = static_cast<const float*>(w->w) + r * k + k0;
        } else {
            widen_tile(static_cast<const uint16_t*>(w->w) + r * k, w->format, k, k0, kc, rows, widened);
            tile_w = widened, stride = kc;
        }
        for (int64_t c0 = 0; c0 < mc; c0 += width) {
            const int64_t columns = std::min(width, mc - c0), vectors = (columns + lanes - 1) / lanes;
            kTileKernels[static_cast<size_t>((rows - 1) * kTileVectors + vectors - 1)](xp + c0 * kc, width, tile_w,
                                                                                       stride, kc, out);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
            store_tile_transposed(out, width, rows, columns, first, w->bias != nullptr ? w->bias + r : nullptr,
                                  w->y + (m0 + c0) * w->n + r, w->n);
#else
            for (int64_t c = 0; c < columns; ++c) {
                float* y = w->y + (m0 + c0 + c) * w->n + r;
                for (int64_t i = 0; i < rows; ++i) {
                    const float v = out[i * width + c];
                    y[i] = first ? v + (w->bias != nullptr ? w->bias[r + i] : 0.0f) : y[i] + v;
                }
            }
#endif
        }
    }
}

}  // namespace tfx::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "gemm_blocked.h"

namespace tfx::cpu {
HWY_EXPORT(TileShape);
HWY_EXPORT(PackRows);
HWY_EXPORT(TileRange);

void gemm_many(const float* x, const MatvecWeight* ws, int count, int64_t m, int64_t k) {
    settle_isa_dispatch();
    BlockedKernels kernels;
    HWY_DYNAMIC_DISPATCH(TileShape)(&kernels.tile_rows, &kernels.width, &kernels.max_block_columns);
    kernels.pack = &HWY_DYNAMIC_DISPATCH(PackRows);
    kernels.multiply = &HWY_DYNAMIC_DISPATCH(TileRange);
    run_blocked(kernels, x, ws, count, m, k);
}

}  // namespace tfx::cpu
#endif  // HWY_ONCE
