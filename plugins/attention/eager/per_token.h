// The per-token kernel: one token's heads of one kv group against all its visible keys, in
// two passes (every score, then the softmax and the weighted values). Decode steps take it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "attention_plan.h"
#include "lanes.h"

namespace tfx::eager_attention {

// q · widen(k) over head_dim, accumulated in f32 in N lanes summed pairwise at the end, then
// the tail of head_dim beyond a multiple of N.
template <class Kv, int N>
[[gnu::always_inline]] inline float dot(const float* q, const typename Kv::Elem* k, int64_t dim) {
    using F = typename Lanes<N>::F;
    F acc = {};
    int64_t d = 0;
    for (; d + N <= dim; d += N) acc += load<F>(q + d) * Kv::template widen_n<N>(k + d);
    float sum = sum_lanes<N>(acc);
    for (; d < dim; ++d) sum += q[d] * Kv::widen(k[d]);
    return sum;
}

// Pairs of lanes of the 2N lanes of (a, b) added: the first N/2 taken from the halves of a
// (lane i + lane i + N/2), the rest from b's; or, `adjacent`, lanes 2i and 2i + 1 of (a, b).
template <int N, bool adjacent>
[[gnu::always_inline]] inline typename Lanes<N>::F fold(typename Lanes<N>::F a, typename Lanes<N>::F b) {
    return [&]<int... I>(std::integer_sequence<int, I...>) {
        if constexpr (adjacent) {
            return __builtin_shufflevector(a, b, (2 * I)...) + __builtin_shufflevector(a, b, (2 * I + 1)...);
        } else {
            return __builtin_shufflevector(a, b, (I < N / 2 ? I : I + N / 2)...) +
                   __builtin_shufflevector(a, b, (I < N / 2 ? I + N / 2 : I + N)...);
        }
    }
    (std::make_integer_sequence<int, N>{});
}

// q · widen(k_u) over head_dim for four keys k_u at once (N >= 4): their lane sums share the
// shuffles, each folding two vectors into one, ~1/3 the work of four separate sums.
template <class Kv, int N>
[[gnu::always_inline]] inline void dot4(const float* q, const typename Kv::Elem* k, int64_t row_stride, int64_t dim,
                                        float* out) {
    using F = typename Lanes<N>::F;
    F acc[4] = {};
    int64_t d = 0;
    for (; d + N <= dim; d += N) {
        const F qv = load<F>(q + d);
        for (int64_t u = 0; u < 4; ++u) acc[u] += qv * Kv::template widen_n<N>(k + u * row_stride + d);
    }
    F sums = fold<N, true>(fold<N, false>(acc[0], acc[1]), fold<N, false>(acc[2], acc[3]));
    for (int width = N / 4; width > 1; width /= 2) sums = fold<N, true>(sums, sums);
    // The four sums leave as one 16-byte store: reading them lane by lane goes through the
    // stack, and each scalar load waits on the wide store before it (a store-forwarding stall
    // that measured 15% of a long-context decode step).
    using F4 = float __attribute__((vector_size(16)));
    const F4 four = __builtin_shufflevector(sums, sums, 0, 1, 2, 3);
    std::memcpy(out, &four, sizeof four);
    if (d < dim) {
        for (int64_t u = 0; u < 4; ++u) {
            for (int64_t t = d; t < dim; ++t) out[u] += q[t] * Kv::widen(k[u * row_stride + t]);
        }
    }
}

// row[j] = scale * row[j] (soft-capped: softcap * tanh(row[j] / softcap)) for j in
// [0, count); returns the largest.
template <int N>
[[gnu::always_inline]] inline float scale_row(float* row, int64_t count, float scale, float softcap) {
    using F = typename Lanes<N>::F;
    constexpr float kLowest = -std::numeric_limits<float>::infinity();
    float max = kLowest;
    int64_t j = 0;
    if (softcap <= 0.0f) {
        F top = F{} + kLowest;
        for (; j + N <= count; j += N) {
            const F v = load<F>(row + j) * scale;
            std::memcpy(row + j, &v, sizeof v);
            top = top > v ? top : v;
        }
        for (int l = 0; l < N; ++l) max = std::max(max, top[l]);
    }
    for (; j < count; ++j) {
        row[j] *= scale;
        if (softcap > 0.0f) row[j] = softcap * std::tanh(row[j] / softcap);
        max = std::max(max, row[j]);
    }
    return max;
}

// row[j] = e^(row[j] - max) for j in [0, count); returns their sum.
template <int N>
[[gnu::always_inline]] inline float exp_shifted(float* row, int64_t count, float max) {
    using F = typename Lanes<N>::F;
    F total = {};
    int64_t j = 0;
    for (; j + N <= count; j += N) {
        const F e = exp_lanes<N>(load<F>(row + j) - max);
        std::memcpy(row + j, &e, sizeof e);
        total += e;
    }
    float sum = sum_lanes<N>(total);
    for (; j < count; ++j) {
        row[j] = std::exp(row[j] - max);
        sum += row[j];
    }
    return sum;
}

// Rows are a kv_heads * head_dim stride apart, often too far for the hardware's prefetchers,
// so the kernel asks for the row kPrefetchRows ahead itself (in the same block, or the next
// one, `next`, whose first position is `end`) where rows are at least kPrefetchStride bytes
// apart. Closer rows the hardware follows, and asking as well costs: tinystories (256-byte
// rows) decodes at 4000 positions 8% faster without it, SmolLM-135M (768) at 2000 4% slower.
constexpr int64_t kPrefetchRows = 8;
constexpr int64_t kPrefetchStride = 512;

template <class Elem>
[[gnu::always_inline]] inline void prefetch_ahead(const Elem* row, const Elem* next, int64_t j, int64_t end, int64_t hi,
                                                  int64_t row_stride, int64_t dim) {
    const int64_t ahead = j + kPrefetchRows;
    if (ahead > hi) return;
    const Elem* target = ahead < end ? row + kPrefetchRows * row_stride
                                     : (next != nullptr ? next + (ahead - end) * row_stride : nullptr);
    if (target == nullptr) return;
    const char* bytes = reinterpret_cast<const char*>(target);
    for (int64_t b = 0; b < dim * static_cast<int64_t>(sizeof(Elem)); b += 64) __builtin_prefetch(bytes + b);
}

// DeBERTa's relative terms (ABI 2.7), added to head h0 + i's q·k of each key j in [lo, hi]
// before scaling: q_t · relative_k[c, h] + k_j · relative_q[c, h], c the row of j's distance.
// Cache-less, so key j is the sequence's own new token j.
inline void add_disentangled(const Plan& p, int32_t s, int64_t t, int64_t h0, int64_t count, int64_t lo, int64_t hi,
                             float* scores) {
    const int64_t dim = p.dim, first = p.seq_start[s], pos = t - first, span = p.relative_span;
    auto dot = [dim](const float* a, const float* b) {
        float sum = 0.0f;
        for (int64_t d = 0; d < dim; ++d) sum += a[d] * b[d];
        return sum;
    };
    for (int64_t i = 0; i < count; ++i) {
        const int64_t h = h0 + i;
        const float* q = p.q + (t * p.heads + h) * dim;
        float* row = scores + i * p.max_keys - lo;
        for (int64_t j = lo; j <= hi; ++j) {
            const int64_t c = p.relative_columns[std::clamp(j - pos, -span, span) + span];
            if (p.relative_k != nullptr) row[j] += dot(q, p.relative_k + (c * p.heads + h) * dim);
            if (p.relative_q != nullptr)
                row[j] +=
                    dot(p.k + ((first + j) * p.kv_heads + h / p.group) * dim, p.relative_q + (c * p.heads + h) * dim);
        }
    }
}

// Heads of one kv group computed together, so that each key and value row is read once for
// all of them.
constexpr int64_t kMaxHeadsTogether = 8;

// out[t, h] for h in [h0, h1) (heads of one kv head) = softmax(scale · q·k over sequence s's
// visible keys) · values. Each head's arithmetic is the same whichever heads it is computed
// with. The keys are walked a block at a time. scores: (h1 - h0) rows of max_keys.
template <class Kv, int N>
[[gnu::always_inline]] inline void attend_heads_impl(const Plan& p, int32_t s, int64_t t, int64_t h0, int64_t h1,
                                                     float* scores) {
    using Elem = typename Kv::Elem;
    const SequenceRows<Elem> rows(p, s, h0 / p.group);
    const Elem* keys = rows.keys;
    const Elem* values = rows.values;
    const int64_t dim = p.dim, row_stride = rows.row_stride, block_size = rows.block_size, count = h1 - h0,
                  width = p.max_keys;
    const KeyRange visible = visible_keys(p, s, t);
    const int64_t lo = visible.lo, hi = visible.hi;
    const float* q = p.q + (t * p.heads + h0) * dim;
    float* o = p.out + (t * p.heads + h0) * dim;
    std::fill(o, o + count * dim, 0.0f);
    if (hi < lo) return;
    auto row_of = [&](int64_t column, int64_t j) { return rows.row_of(column, j); };

    const bool prefetch = row_stride * static_cast<int64_t>(sizeof(Elem)) >= kPrefetchStride;
    const float scale = p.scale, softcap = p.softcap;
    float max[kMaxHeadsTogether], sum[kMaxHeadsTogether];
    for (int64_t j = lo; j <= hi;) {
        const int64_t column = j / block_size, end = std::min(hi + 1, (column + 1) * block_size);
        const Elem* k = keys + row_of(column, j);
        const Elem* next = end <= hi ? keys + row_of(column + 1, end) : nullptr;
        for (; j + 4 <= end; j += 4, k += 4 * row_stride) {
            if (prefetch) {
                for (int64_t u = 0; u < 4; ++u)
                    prefetch_ahead(k + u * row_stride, next, j + u, end, hi, row_stride, dim);
            }
            for (int64_t i = 0; i < count; ++i)
                dot4<Kv, N>(q + i * dim, k, row_stride, dim, scores + i * width + j - lo);
        }
        for (; j < end; ++j, k += row_stride) {
            if (prefetch) prefetch_ahead(k, next, j, end, hi, row_stride, dim);
            for (int64_t i = 0; i < count; ++i) scores[i * width + j - lo] = dot<Kv, N>(q + i * dim, k, dim);
        }
    }
    if (p.relative_columns != nullptr) add_disentangled(p, s, t, h0, count, lo, hi, scores);
    for (int64_t i = 0; i < count; ++i) max[i] = scale_row<N>(scores + i * width, hi - lo + 1, scale, softcap);
    if (p.relative_bias != nullptr) {  // + the bias of each key's distance (T5), after scaling
        const int64_t pos = p.context_len[s] + (t - p.seq_start[s]), span = p.relative_span;
        for (int64_t i = 0; i < count; ++i) {
            float* row = scores + i * width;
            const float* bias = p.relative_bias + h0 + i;
            max[i] = -std::numeric_limits<float>::infinity();
            for (int64_t j = lo; j <= hi; ++j) {
                row[j - lo] += bias[(std::clamp(j - pos, -span, span) + span) * p.heads];
                max[i] = std::max(max[i], row[j - lo]);
            }
        }
    }
    for (int64_t i = 0; i < count; ++i) {
        sum[i] = 0.0f;
        float* row = scores + i * width;
        if (max[i] == -std::numeric_limits<float>::infinity()) {  // no finite score: leave the output 0
            std::fill(row, row + (hi - lo + 1), 0.0f);
            continue;
        }
        sum[i] = exp_shifted<N>(row, hi - lo + 1, max[i]);
    }
    // o[i] = sum over keys of e[i][j] * v_j / sum[i], a vector of head_dim at a time, summed in
    // four register accumulators (keys interleaved): accumulating into o in memory instead
    // chains every key's add through a store and a reload. Heads go in pairs, so each value
    // vector loaded feeds two; a head's sums are the same whichever head it is paired with.
    using F = typename Lanes<N>::F;
    auto weighted_sum = [&]<int64_t H>(int64_t i0) {
        const float* e[H];  // e[h][j] for j in [lo, hi]
        float inverse[H];
        for (int64_t h = 0; h < H; ++h) {
            e[h] = scores + (i0 + h) * width - lo;
            inverse[h] = sum[i0 + h] > 0.0f ? 1.0f / sum[i0 + h] : 0.0f;
        }
        for (int64_t d = 0; d < dim; d += N) {
            const int64_t lanes = std::min<int64_t>(N, dim - d);
            F acc[H][4] = {};
            float tail[H][N] = {};
            for (int64_t j = lo; j <= hi;) {
                const int64_t column = j / block_size, end = std::min(hi + 1, (column + 1) * block_size);
                const Elem* v = values + row_of(column, j) + d;
                if (lanes == N) {
                    for (; j + 4 <= end; j += 4, v += 4 * row_stride) {
                        for (int64_t u = 0; u < 4; ++u) {
                            const F value = Kv::template widen_n<N>(v + u * row_stride);
                            for (int64_t h = 0; h < H; ++h) acc[h][u] += e[h][j + u] * value;
                        }
                    }
                    for (; j < end; ++j, v += row_stride) {
                        const F value = Kv::template widen_n<N>(v);
                        for (int64_t h = 0; h < H; ++h) acc[h][0] += e[h][j] * value;
                    }
                } else {  // the last columns of a head_dim that is not a multiple of N
                    for (; j < end; ++j, v += row_stride) {
                        for (int64_t l = 0; l < lanes; ++l) {
                            const float value = Kv::widen(v[l]);
                            for (int64_t h = 0; h < H; ++h) tail[h][l] += e[h][j] * value;
                        }
                    }
                }
            }
            for (int64_t h = 0; h < H; ++h) {
                const F total = ((acc[h][0] + acc[h][1]) + (acc[h][2] + acc[h][3])) * inverse[h];
                float* out = o + (i0 + h) * dim + d;
                for (int64_t l = 0; l < lanes; ++l) out[l] = lanes == N ? total[l] : tail[h][l] * inverse[h];
            }
        }
    };
    int64_t i = 0;
    for (; i + 2 <= count; i += 2) weighted_sum.template operator()<2>(i);
    if (i < count) weighted_sum.template operator()<1>(i);
}

}  // namespace tfx::eager_attention
