#include "kernels.h"

// GCC 12 reports its own AVX-512 intrinsic headers (_mm512_undefined_ps) as
// maybe-uninitialized; the warning is a known false positive there.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tfx/backend.h"
#include "tfx/sdk/half.hpp"

namespace tfx::cpu {
namespace {

float apply(int32_t act, float v) {
    switch (act) {
        case TFX_ACT_SILU:
            return v / (1.0f + std::exp(-v));
        case TFX_ACT_GELU:
            return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
        case TFX_ACT_GELU_TANH: {
            const float inner = 0.7978845608028654f * (v + 0.044715f * v * v * v);
            return 0.5f * v * (1.0f + std::tanh(inner));
        }
        case TFX_ACT_RELU:
            return v > 0.0f ? v : 0.0f;
        case TFX_ACT_TANH:
            return std::tanh(v);
        default:
            return v;
    }
}

// Loads 16 half-precision weights (masked tail) widened to f32.
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load_half16(const uint16_t* p, bool is_f16,
                                                                               __mmask16 mask) {
    __m256i raw = _mm256_maskz_loadu_epi16(mask, p);
    if (is_f16) return _mm512_cvtph_ps(raw);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

// 16 weights (masked tail) as f32: loaded as is, or half precision widened.
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load_weights16(const float* p, bool,
                                                                                  __mmask16 mask) {
    return _mm512_maskz_loadu_ps(mask, p);
}
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load_weights16(const uint16_t* p, bool is_f16,
                                                                                  __mmask16 mask) {
    return load_half16(p, is_f16, mask);
}

// Four rows of x against four rows of w: 16 accumulators, each weight vector loaded (and
// widened) once and used four times; four weight streams in flight keep the memory system
// busy when decoding (one row of x). Parallel over blocks of output features.
template <class Weight>
__attribute__((target("avx512f,avx512bw,avx512vl,fma"))) void gemm_avx512(const float* x, const Weight* w, bool is_f16,
                                                                          const float* bias, float* y, int64_t m,
                                                                          int64_t n, int64_t k) {
    constexpr int64_t kRows = 4;  // of x
    constexpr int64_t kCols = 4;  // rows of w = output features
    const int64_t blocks = (n + kCols - 1) / kCols;
#pragma omp parallel for schedule(static)
    for (int64_t block = 0; block < blocks; ++block) {
        const int64_t n0 = block * kCols;
        const int64_t nn = std::min<int64_t>(kCols, n - n0);
        for (int64_t m0 = 0; m0 < m; m0 += kRows) {
            const int64_t mm = std::min<int64_t>(kRows, m - m0);
            __m512 acc[kRows][kCols];
            for (auto& row : acc) {
                for (auto& a : row) a = _mm512_setzero_ps();
            }
            for (int64_t kk = 0; kk < k; kk += 16) {
                const int64_t left = k - kk;
                const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
                __m512 wv[kCols];
                for (int64_t j = 0; j < kCols; ++j) {
                    wv[j] = j < nn ? load_weights16(w + (n0 + j) * k + kk, is_f16, mask) : _mm512_setzero_ps();
                }
                for (int64_t i = 0; i < mm; ++i) {
                    const __m512 xv = _mm512_maskz_loadu_ps(mask, x + (m0 + i) * k + kk);
                    for (int64_t j = 0; j < kCols; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
                }
            }
            for (int64_t i = 0; i < mm; ++i) {
                for (int64_t j = 0; j < nn; ++j) {
                    float v = _mm512_reduce_add_ps(acc[i][j]);
                    if (bias != nullptr) v += bias[n0 + j];
                    y[(m0 + i) * n + n0 + j] = v;
                }
            }
        }
    }
}

// bf16 weights without a widening instruction: a 512-bit load holds 32 weights; shifting
// each 32-bit lane left by 16 gives the even ones as f32, masking off the low half gives the
// odd ones. x is split into matching even/odd halves once per call, so each weight costs
// two cheap integer ops instead of a widening load. Tails shorter than 32 use the 16-wide path.
__attribute__((target("avx512f,avx512bw,avx512vl,fma"))) void gemm_bf16_pairs_avx512(const float* x, const uint16_t* w,
                                                                                     const float* bias, float* y,
                                                                                     int64_t m, int64_t n, int64_t k) {
    constexpr int64_t kRows = 4, kCols = 4, kChunk = 32;
    const int64_t paired = k / kChunk * kChunk;
    thread_local std::vector<float> split;
    split.resize(static_cast<size_t>(m * paired));
    for (int64_t r = 0; r < m; ++r) {
        for (int64_t c = 0; c < paired; c += kChunk) {
            for (int64_t i = 0; i < kChunk / 2; ++i) {
                split[r * paired + c + i] = x[r * k + c + 2 * i];
                split[r * paired + c + kChunk / 2 + i] = x[r * k + c + 2 * i + 1];
            }
        }
    }
    const float* xs = split.data();
    const int64_t blocks = (n + kCols - 1) / kCols;
#pragma omp parallel for schedule(static)
    for (int64_t block = 0; block < blocks; ++block) {
        const int64_t n0 = block * kCols;
        const int64_t nn = std::min<int64_t>(kCols, n - n0);
        const __m512i high_half = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
        for (int64_t m0 = 0; m0 < m; m0 += kRows) {
            const int64_t mm = std::min<int64_t>(kRows, m - m0);
            __m512 acc[kRows][kCols];
            for (auto& row : acc) {
                for (auto& a : row) a = _mm512_setzero_ps();
            }
            for (int64_t c = 0; c < paired; c += kChunk) {
                __m512 even[kCols], odd[kCols];
                for (int64_t j = 0; j < kCols; ++j) {
                    const __m512i raw = j < nn ? _mm512_loadu_si512(w + (n0 + j) * k + c) : _mm512_setzero_si512();
                    even[j] = _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16));
                    odd[j] = _mm512_castsi512_ps(_mm512_and_si512(raw, high_half));
                }
                for (int64_t i = 0; i < mm; ++i) {
                    const __m512 xe = _mm512_loadu_ps(xs + (m0 + i) * paired + c);
                    const __m512 xo = _mm512_loadu_ps(xs + (m0 + i) * paired + c + kChunk / 2);
                    for (int64_t j = 0; j < kCols; ++j) {
                        acc[i][j] = _mm512_fmadd_ps(xe, even[j], acc[i][j]);
                        acc[i][j] = _mm512_fmadd_ps(xo, odd[j], acc[i][j]);
                    }
                }
            }
            for (int64_t kk = paired; kk < k; kk += 16) {
                const int64_t left = k - kk;
                const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
                for (int64_t j = 0; j < nn; ++j) {
                    const __m512 wv = load_half16(w + (n0 + j) * k + kk, false, mask);
                    for (int64_t i = 0; i < mm; ++i) {
                        acc[i][j] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x + (m0 + i) * k + kk), wv, acc[i][j]);
                    }
                }
            }
            for (int64_t i = 0; i < mm; ++i) {
                for (int64_t j = 0; j < nn; ++j) {
                    float v = _mm512_reduce_add_ps(acc[i][j]);
                    if (bias != nullptr) v += bias[n0 + j];
                    y[(m0 + i) * n + n0 + j] = v;
                }
            }
        }
    }
}

bool has_avx512() {
    static const bool avx512 =
        __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    return avx512;
}

void gemm_half_portable(const float* x, const uint16_t* w, bool is_f16, const float* bias, float* y, int64_t m,
                        int64_t n, int64_t k) {
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; ++j) {
        for (int64_t i = 0; i < m; ++i) {
            float acc = 0.0f;
            for (int64_t kk = 0; kk < k; ++kk) {
                const uint16_t h = w[j * k + kk];
                acc += x[i * k + kk] * (is_f16 ? sdk::f16_to_f32(h) : sdk::bf16_to_f32(h));
            }
            y[i * n + j] = acc + (bias != nullptr ? bias[j] : 0.0f);
        }
    }
}

}  // namespace

void gemm_half_weights(const float* x, const uint16_t* w, bool is_f16, const float* bias, float* y, int64_t m,
                       int64_t n, int64_t k) {
    if (has_avx512() && !is_f16) {
        gemm_bf16_pairs_avx512(x, w, bias, y, m, n, k);
    } else if (has_avx512()) {
        gemm_avx512(x, w, is_f16, bias, y, m, n, k);
    } else {
        gemm_half_portable(x, w, is_f16, bias, y, m, n, k);
    }
}

bool gemm_f32_small(const float* x, const float* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k) {
    if (!has_avx512()) return false;
    gemm_avx512(x, w, false, bias, y, m, n, k);
    return true;
}

void widen(const uint16_t* src, bool is_f16, float* dst, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = is_f16 ? sdk::f16_to_f32(src[i]) : sdk::bf16_to_f32(src[i]);
}

void rms_norm(const float* x, const float* w, float eps, float offset, float* y, int64_t rows, int64_t dim) {
#pragma omp parallel for schedule(static) if (rows > 1)
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * dim;
        float* yr = y + r * dim;
        float sum = 0.0f;
        for (int64_t i = 0; i < dim; ++i) sum += xr[i] * xr[i];
        const float inv = 1.0f / std::sqrt(sum / static_cast<float>(dim) + eps);
        for (int64_t i = 0; i < dim; ++i) yr[i] = (offset + w[i]) * (xr[i] * inv);
    }
}

void layer_norm(const float* x, const float* w, const float* b, float eps, float* y, int64_t rows, int64_t dim) {
#pragma omp parallel for schedule(static) if (rows > 1)
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * dim;
        float* yr = y + r * dim;
        float mean = 0.0f;
        for (int64_t i = 0; i < dim; ++i) mean += xr[i];
        mean /= static_cast<float>(dim);
        float var = 0.0f;
        for (int64_t i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
        var /= static_cast<float>(dim);
        const float inv = 1.0f / std::sqrt(var + eps);
        for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] - mean) * inv * w[i] + (b != nullptr ? b[i] : 0.0f);
    }
}

void rope(float* x, const int32_t* positions, const float* inv_freq, float attention_scaling, int64_t tokens,
          int64_t heads, int64_t head_dim, int64_t half) {
#pragma omp parallel for schedule(static) if (tokens > 1)
    for (int64_t t = 0; t < tokens; ++t) {
        // cos and sin of this token's angles, once for all heads (grow-only, per thread).
        thread_local std::vector<float> angles;
        angles.resize(static_cast<size_t>(2 * half));
        float* c = angles.data();
        float* s = c + half;
        const float position = static_cast<float>(positions[t]);
        for (int64_t i = 0; i < half; ++i) {
            const float angle = position * inv_freq[i];
            c[i] = std::cos(angle) * attention_scaling;
            s[i] = std::sin(angle) * attention_scaling;
        }
        for (int64_t h = 0; h < heads; ++h) {
            float* v = x + (t * heads + h) * head_dim;
            for (int64_t i = 0; i < half; ++i) {
                const float a = v[i];
                const float b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}

void activation(int32_t act, const float* x, float* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 4096)
    for (int64_t i = 0; i < n; ++i) y[i] = apply(act, x[i]);
}

void gated_activation(int32_t act, const float* gate, const float* up, float* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 4096)
    for (int64_t i = 0; i < n; ++i) y[i] = apply(act, gate[i]) * up[i];
}

void softmax(const float* x, float* y, int64_t rows, int64_t dim) {
#pragma omp parallel for schedule(static) if (rows > 1)
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * dim;
        float* yr = y + r * dim;
        const float max = *std::max_element(xr, xr + dim);
        float sum = 0.0f;
        for (int64_t i = 0; i < dim; ++i) sum += (yr[i] = std::exp(xr[i] - max));
        for (int64_t i = 0; i < dim; ++i) yr[i] /= sum;
    }
}

void weighted_sum(const float* x, const float* w, float* y, int64_t n, int64_t k, int64_t dim) {
#pragma omp parallel for schedule(static) if (n > 1 && n * k * dim > 16384)
    for (int64_t t = 0; t < n; ++t) {
        float* yt = y + t * dim;
        for (int64_t d = 0; d < dim; ++d) yt[d] = 0.0f;
        for (int64_t s = 0; s < k; ++s) {
            const float ws = w[t * k + s];
            const float* xs = x + (t * k + s) * dim;
            for (int64_t d = 0; d < dim; ++d) yt[d] += ws * xs[d];
        }
    }
}

}  // namespace tfx::cpu
