#include "quant_matvec.h"

// GCC 12's AVX-512 headers fill unused lanes with _mm*_undefined_*(), which -Wuninitialized
// reports once inlined (_mm512_reduce_add_ps, for one): a false positive in its own headers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "matvec.h"
#include "parallel.h"
#include "tfx/sdk/half.hpp"

namespace tfx::cpu {
namespace {

// Position p (0..63) of a pair in the backend's order holds value perm(p) of the pair's 64
// (block 0's 32, then block 1's). Lane j of the integer sums covers positions 4j..4j+3 of each
// 32-byte half: all from block j % 2.
constexpr int perm(int p) {
    const int i = p % 32, half = p / 32, group = i / 4, r = i % 4;
    return (group % 2) * 32 + half * 16 + (group / 2) * 4 + r;
}

// Where value e (0..31) of block `blk` of a pair goes: byte i of a 32-byte half, and the half
// (for q4_0: the nibble, low or high).
struct Slot {
    int byte, half;
};
constexpr Slot slot_of(int blk, int e) {
    const int half = e / 16, rest = e % 16, group = (rest / 4) * 2 + blk;
    return {group * 4 + rest % 4, half};
}

// One row of x quantized for the kernels: int8 values in the pair order, and per block its
// scale and the sum of its int8 values (q4_0 stores q + 8, so its sums subtract 8 x that).
struct QuantizedRows {
    std::vector<int8_t> q;      // [m][pairs * 64]
    std::vector<float> scale;   // [m][pairs * 2]
    std::vector<int32_t> sum;   // [m][pairs * 2]
    int64_t pairs = 0;
};

void quantize_rows(const float* x, int64_t m, int64_t k, QuantizedRows& out) {
    const int64_t pairs = quant_pairs(k);
    out.pairs = pairs;
    out.q.resize(static_cast<size_t>(m * pairs * kQuantPair));
    out.scale.resize(static_cast<size_t>(m * pairs * 2));
    out.sum.resize(static_cast<size_t>(m * pairs * 2));
    parallel_for(m, m * k >= (int64_t{1} << 16), [&](int64_t row) {
        const float* xr = x + row * k;
        for (int64_t p = 0; p < pairs; ++p) {
            int8_t* q = out.q.data() + (row * pairs + p) * kQuantPair;
            for (int blk = 0; blk < 2; ++blk) {
                const int64_t begin = (2 * p + blk) * kQuantBlock, end = std::min(begin + kQuantBlock, k);
                float amax = 0.0f;
                for (int64_t c = begin; c < end; ++c) amax = std::max(amax, std::fabs(xr[c]));
                const float d = amax / 127.0f, inv = d != 0.0f ? 1.0f / d : 0.0f;
                int32_t sum = 0;
                for (int e = 0; e < kQuantBlock; ++e) {
                    const int64_t c = begin + e;
                    const auto v = static_cast<int8_t>(c < end ? std::nearbyint(xr[c] * inv) : 0.0f);
                    const Slot s = slot_of(blk, e);
                    q[s.half * 32 + s.byte] = v;
                    sum += v;
                }
                out.scale[(row * pairs + p) * 2 + blk] = d;
                out.sum[(row * pairs + p) * 2 + blk] = sum;
            }
        }
    });
}

// ---- the kernels: one dot product of a weight row with a quantized row of x ----

struct Operands {
    const uint8_t* wq;
    const uint16_t* ws;
    const int8_t* xq;
    const float* xs;
    const int32_t* xsum;
    int64_t pairs;
};

template <QuantFormat F>
float dot_portable(const Operands& o) {
    float total = 0.0f;
    for (int64_t p = 0; p < o.pairs; ++p) {
        int32_t sums[2] = {0, 0};
        for (int pos = 0; pos < kQuantPair; ++pos) {
            const int blk = perm(pos) / 32;
            int32_t w;
            if constexpr (F == QuantFormat::q8_0) {
                w = static_cast<int8_t>(o.wq[p * kQuantPair + pos]);
            } else {
                const uint8_t b = o.wq[p * 32 + pos % 32];
                w = (pos < 32 ? b & 0x0F : b >> 4) - 8;
            }
            sums[blk] += w * o.xq[p * kQuantPair + pos];
        }
        for (int blk = 0; blk < 2; ++blk) {
            total += sdk::f16_to_f32(o.ws[2 * p + blk]) * o.xs[2 * p + blk] * static_cast<float>(sums[blk]);
        }
    }
    return total;
}

#define TFX_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TFX_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define TFX_TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

// The pair's two 32-bit values (scales, or negated sums) repeated across the lanes: lane j
// gets block j % 2's.
TFX_TARGET_AVX2 inline __m256 pair_scales_256(const uint16_t* ws, const float* xs) {
    uint32_t halves;
    std::memcpy(&halves, ws, 4);
    const __m256 w = _mm256_cvtph_ps(_mm_set1_epi32(static_cast<int>(halves)));
    double scales_of_x;
    std::memcpy(&scales_of_x, xs, 8);
    return _mm256_mul_ps(w, _mm256_castpd_ps(_mm256_set1_pd(scales_of_x)));
}

TFX_TARGET_AVX2 inline float sum_lanes_256(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

template <QuantFormat F>
TFX_TARGET_AVX2 float dot_avx2(const Operands& o) {
    const __m256i ones = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t p = 0; p < o.pairs; ++p) {
        const auto* a = reinterpret_cast<const __m256i*>(o.xq + p * kQuantPair);
        const __m256i a0 = _mm256_loadu_si256(a), a1 = _mm256_loadu_si256(a + 1);
        __m256i sums;
        if constexpr (F == QuantFormat::q8_0) {
            const auto* w = reinterpret_cast<const __m256i*>(o.wq + p * kQuantPair);
            const __m256i w0 = _mm256_loadu_si256(w), w1 = _mm256_loadu_si256(w + 1);
            // u8 x s8 products: |w| times a with w's sign.
            const __m256i p0 = _mm256_maddubs_epi16(_mm256_abs_epi8(w0), _mm256_sign_epi8(a0, w0));
            const __m256i p1 = _mm256_maddubs_epi16(_mm256_abs_epi8(w1), _mm256_sign_epi8(a1, w1));
            sums = _mm256_add_epi32(_mm256_madd_epi16(p0, ones), _mm256_madd_epi16(p1, ones));
        } else {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o.wq + p * 32));
            const __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
            sums = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, a0), ones),
                                    _mm256_madd_epi16(_mm256_maddubs_epi16(hi, a1), ones));
            // The stored values are q + 8: a block's 4 lanes give back 8 x its sum of x, 2 x each.
            int64_t bias;
            const int32_t twice[2] = {2 * o.xsum[2 * p], 2 * o.xsum[2 * p + 1]};
            std::memcpy(&bias, twice, 8);
            sums = _mm256_sub_epi32(sums, _mm256_set1_epi64x(bias));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), pair_scales_256(o.ws + 2 * p, o.xs + 2 * p), acc);
    }
    return sum_lanes_256(acc);
}

// One AVX-512 loop, compiled twice (GCC attaches instruction sets to whole functions): with
// VNNI, vpdpbusd sums four u8 x s8 products a lane; without, vpmaddubsw + vpmaddwd do.
#define TFX_QUANT_DOT_AVX512(VNNI)                                                                                 \
    const __m512i ones = _mm512_set1_epi16(1), low4 = _mm512_set1_epi8(0x0F);                                     \
    __m512 acc = _mm512_setzero_ps();                                                                              \
    for (int64_t p = 0; p < o.pairs; ++p) {                                                                        \
        const __m512i a = _mm512_loadu_si512(o.xq + p * kQuantPair);                                               \
        __m512i w, x, start = _mm512_setzero_si512();                                                              \
        if constexpr (F == QuantFormat::q8_0) {                                                                    \
            /* u8 x s8 products: |w| times x with w's sign. */                                                     \
            const __m512i raw = _mm512_loadu_si512(o.wq + p * kQuantPair);                                         \
            w = _mm512_abs_epi8(raw);                                                                              \
            x = _mm512_mask_sub_epi8(a, _mm512_movepi8_mask(raw), _mm512_setzero_si512(), a);                     \
        } else {                                                                                                   \
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o.wq + p * 32));                 \
            w = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1), low4); \
            x = a;                                                                                                 \
            /* The stored values are q + 8: a block's 8 lanes start at -(its sum of x), 8 x in all. */            \
            int64_t negated;                                                                                       \
            const int32_t sums[2] = {-o.xsum[2 * p], -o.xsum[2 * p + 1]};                                          \
            std::memcpy(&negated, sums, 8);                                                                        \
            start = _mm512_set1_epi64(negated);                                                                    \
        }                                                                                                          \
        __m512i sums;                                                                                              \
        if constexpr (VNNI) {                                                                                      \
            sums = _mm512_dpbusd_epi32(start, w, x);                                                               \
        } else {                                                                                                   \
            sums = _mm512_add_epi32(start, _mm512_madd_epi16(_mm512_maddubs_epi16(w, x), ones));                   \
        }                                                                                                          \
        uint32_t halves;                                                                                           \
        std::memcpy(&halves, o.ws + 2 * p, 4);                                                                     \
        double scales_of_x;                                                                                        \
        std::memcpy(&scales_of_x, o.xs + 2 * p, 8);                                                                \
        const __m512 scales = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_set1_epi32(static_cast<int>(halves))),         \
                                            _mm512_castpd_ps(_mm512_set1_pd(scales_of_x)));                        \
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scales, acc);                                             \
    }                                                                                                              \
    return _mm512_reduce_add_ps(acc);

template <QuantFormat F>
TFX_TARGET_AVX512 float dot_avx512(const Operands& o) {
    TFX_QUANT_DOT_AVX512(false)
}

template <QuantFormat F>
TFX_TARGET_VNNI float dot_vnni(const Operands& o) {
    TFX_QUANT_DOT_AVX512(true)
}
#undef TFX_QUANT_DOT_AVX512

using DotFn = float (*)(const Operands&);

template <QuantFormat F>
DotFn dot_for(QuantKernel kernel) {
    switch (kernel) {
        case QuantKernel::avx512_vnni:
            return &dot_vnni<F>;
        case QuantKernel::avx512:
            return &dot_avx512<F>;
        case QuantKernel::avx2:
            return &dot_avx2<F>;
        case QuantKernel::portable:
            break;
    }
    return &dot_portable<F>;
}

// y[i, r] for rows [r0, r1) of w and every row i of x: the weight row (a few KB) stays in the
// L1 cache while each row of x is dotted with it.
void rows_of_w(DotFn dot, const QuantizedRows& xq, const QuantizedWeight& w, const float* bias, float* y, int64_t m,
               int64_t r0, int64_t r1) {
    const int64_t pairs = quant_pairs(w.k), row_bytes = pairs * quant_pair_bytes(w.format);
    for (int64_t r = r0; r < r1; ++r) {
        Operands o{w.quants + r * row_bytes, w.scales + r * pairs * 2, nullptr, nullptr, nullptr, pairs};
        for (int64_t i = 0; i < m; ++i) {
            o.xq = xq.q.data() + i * pairs * kQuantPair;
            o.xs = xq.scale.data() + i * pairs * 2;
            o.xsum = xq.sum.data() + i * pairs * 2;
            y[i * w.n + r] = dot(o) + (bias != nullptr ? bias[r] : 0.0f);
        }
    }
}

DotFn dot_of(QuantKernel kernel, QuantFormat format) {
    return format == QuantFormat::q8_0 ? dot_for<QuantFormat::q8_0>(kernel) : dot_for<QuantFormat::q4_0>(kernel);
}

// Below this many weights a call runs on one thread (as the float matvec: waking the other
// threads costs more than it saves).
constexpr int64_t kParallelMinWeights = int64_t{1} << 16;

}  // namespace

int64_t ggml_row_bytes(QuantFormat format, int64_t k) {
    if (k <= 0 || k % kQuantBlock != 0) return 0;
    return k / kQuantBlock * (2 + (format == QuantFormat::q8_0 ? kQuantBlock : kQuantBlock / 2));
}

void repack_ggml_rows(QuantFormat format, const uint8_t* src, int64_t rows, int64_t k, uint8_t* quants,
                      uint16_t* scales) {
    const int64_t blocks = k / kQuantBlock, pairs = quant_pairs(k), pair_bytes = quant_pair_bytes(format);
    const int64_t block_bytes = 2 + (format == QuantFormat::q8_0 ? kQuantBlock : kQuantBlock / 2);
    parallel_for(rows, rows * k >= kParallelMinWeights, [&](int64_t r) {
        uint8_t* q = quants + r * pairs * pair_bytes;
        uint16_t* s = scales + r * pairs * 2;
        // Padding: scale 0, and for q4_0 the stored 8 that means 0.
        std::memset(q, format == QuantFormat::q8_0 ? 0 : 0x88, static_cast<size_t>(pairs * pair_bytes));
        std::fill(s, s + pairs * 2, uint16_t{0});
        for (int64_t b = 0; b < blocks; ++b) {
            const uint8_t* block = src + (r * blocks + b) * block_bytes;
            std::memcpy(&s[b], block, 2);
            const int64_t p = b / 2;
            const int blk = static_cast<int>(b % 2);
            for (int e = 0; e < kQuantBlock; ++e) {
                const Slot slot = slot_of(blk, e);
                if (format == QuantFormat::q8_0) {
                    q[p * kQuantPair + slot.half * 32 + slot.byte] = block[2 + e];
                } else {
                    const uint8_t value = e < 16 ? block[2 + e] & 0x0F : block[2 + e - 16] >> 4;
                    uint8_t& byte = q[p * 32 + slot.byte];
                    byte = slot.half == 0 ? static_cast<uint8_t>((byte & 0xF0) | value)
                                          : static_cast<uint8_t>((byte & 0x0F) | (value << 4));
                }
            }
        }
    });
}

std::vector<QuantKernel> quant_kernels() {
    std::vector<QuantKernel> out{QuantKernel::portable};
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back(QuantKernel::avx2);
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
        out.push_back(QuantKernel::avx512);
        if (__builtin_cpu_supports("avx512vnni")) out.push_back(QuantKernel::avx512_vnni);
    }
    return out;
}

QuantKernel quant_kernel_in_use() {
    // The float kernels' dispatch target caps these too, so TFX_CPU_ISA=avx2 runs AVX2 code
    // everywhere (Highway's AVX3 targets all include AVX-512 F/BW/VL/DQ).
    const std::string target = isa_in_use();
    const QuantKernel best = quant_kernels().back();
    QuantKernel cap = QuantKernel::portable;
    if (target.rfind("avx3", 0) == 0) {
        cap = QuantKernel::avx512_vnni;
    } else if (target == "avx2") {
        cap = QuantKernel::avx2;
    }
    return std::min(best, cap);
}

std::string quant_kernel_name(QuantKernel kernel) {
    switch (kernel) {
        case QuantKernel::avx512_vnni:
            return "avx512-vnni";
        case QuantKernel::avx512:
            return "avx512";
        case QuantKernel::avx2:
            return "avx2";
        case QuantKernel::portable:
            break;
    }
    return "portable";
}

void quant_matmul_with(QuantKernel kernel, const float* x, const QuantizedWeight& w, const float* bias, float* y,
                       int64_t m) {
    QuantizedRows xq;
    quantize_rows(x, m, w.k, xq);
    rows_of_w(dot_of(kernel, w.format), xq, w, bias, y, m, 0, w.n);
}

void quant_matmul(const float* x, const QuantizedWeight& w, const float* bias, float* y, int64_t m) {
    thread_local QuantizedRows scratch;  // grow-only: no allocation per decode step
    // A plain reference: inside the parallel region the name `scratch` would mean each
    // thread's own (empty) copy.
    QuantizedRows& xq = scratch;
    quantize_rows(x, m, w.k, xq);
    const DotFn dot = dot_of(quant_kernel_in_use(), w.format);
    if (!use_threads(w.n * w.k >= kParallelMinWeights)) return rows_of_w(dot, xq, w, bias, y, m, 0, w.n);
#pragma omp parallel
    {
        const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t begin = w.n * t / threads, end = w.n * (t + 1) / threads;
        if (begin < end) rows_of_w(dot, xq, w, bias, y, m, begin, end);
    }
}

}  // namespace tfx::cpu
