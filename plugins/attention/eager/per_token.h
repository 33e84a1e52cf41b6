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

// q · widen(k_u) over head_dim for N keys k_u at once: the N lane sums folded in a tree, N - 1
// folds (3/4 of dot4's per key at N = 16), the N sums leaving as one vector store.
template <class Kv, int N>
[[gnu::always_inline]] inline void dot_lanes(const float* q, const typename Kv::Elem* k, int64_t row_stride,
                                             int64_t dim, float* out) {
    using F = typename Lanes<N>::F;
    F acc[N] = {};
    int64_t d = 0;
    for (; d + N <= dim; d += N) {
        const F qv = load<F>(q + d);
        for (int64_t u = 0; u < N; ++u) acc[u] += qv * Kv::template widen_n<N>(k + u * row_stride + d);
    }
    // Pairs of keys, each in half a vector; then each level halves the partial sums a key has
    // and doubles the keys a vector holds, in key order, until lane u holds key u's sum.
    for (int u = 0; u < N / 2; ++u) acc[u] = fold<N, false>(acc[2 * u], acc[2 * u + 1]);
    for (int vectors = N / 4; vectors >= 1; vectors /= 2) {
        for (int u = 0; u < vectors; ++u) acc[u] = fold<N, true>(acc[2 * u], acc[2 * u + 1]);
    }
    std::memcpy(out, &acc[0], sizeof(F));
    if (d < dim) {
        for (int64_t u = 0; u < N; ++u) {
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

// Heads computed together, so that each key and value row is read once for all of them.
constexpr int64_t kMaxHeadsTogether = 8;

// A kv head's part of a cache row below this many bytes is too narrow to read alone: with
// head_dim 16 in f32 (64 bytes of a 256-byte row of four kv heads) a walk over one kv head
// reads one cache line in four, at half the rate of a walk over whole rows (the prefetchers
// follow it less well). Then one item takes the heads of several kv heads, and reads whole rows.
constexpr int64_t kNarrowHeadBytes = 128;

// scores[i][j - lo] = q_i · k_j for the count heads (q_i at q + i * dim) and keys [lo, hi], a
// block of keys at a time. Spanning: the heads' kv heads differ, head i's part of a row at
// head_offset[i].
template <class Kv, int N, bool Spanning>
[[gnu::always_inline]] inline void score_keys(const SequenceRows<typename Kv::Elem>& rows, const float* q, int64_t dim,
                                              int64_t count, const int64_t* head_offset, int64_t lo, int64_t hi,
                                              int64_t row_span, float* scores, int64_t width) {
    using Elem = typename Kv::Elem;
    const int64_t row_stride = rows.row_stride, block_size = rows.block_size;
    const bool prefetch = row_stride * static_cast<int64_t>(sizeof(Elem)) >= kPrefetchStride;
    for (int64_t j = lo; j <= hi;) {
        const int64_t column = j / block_size, end = std::min(hi + 1, (column + 1) * block_size);
        const Elem* k = rows.keys + rows.row_of(column, j);
        const Elem* next = end <= hi ? rows.keys + rows.row_of(column + 1, end) : nullptr;
        if constexpr (N > 4) {
            for (; j + N <= end; j += N, k += N * row_stride) {
                if (prefetch) {
                    for (int64_t u = 0; u < N; ++u)
                        prefetch_ahead(k + u * row_stride, next, j + u, end, hi, row_stride, row_span);
                }
                for (int64_t i = 0; i < count; ++i) {
                    const Elem* key = Spanning ? k + head_offset[i] : k;
                    dot_lanes<Kv, N>(q + i * dim, key, row_stride, dim, scores + i * width + j - lo);
                }
            }
        }
        for (; j + 4 <= end; j += 4, k += 4 * row_stride) {
            if (prefetch) {
                for (int64_t u = 0; u < 4; ++u)
                    prefetch_ahead(k + u * row_stride, next, j + u, end, hi, row_stride, row_span);
            }
            for (int64_t i = 0; i < count; ++i) {
                const Elem* key = Spanning ? k + head_offset[i] : k;
                dot4<Kv, N>(q + i * dim, key, row_stride, dim, scores + i * width + j - lo);
            }
        }
        for (; j < end; ++j, k += row_stride) {
            if (prefetch) prefetch_ahead(k, next, j, end, hi, row_stride, row_span);
            for (int64_t i = 0; i < count; ++i)
                scores[i * width + j - lo] = dot<Kv, N>(q + i * dim, Spanning ? k + head_offset[i] : k, dim);
        }
    }
}

// out[t, h] for h in [h0, h1) = softmax(scale · q·k over sequence s's visible keys) · values.
// The heads are one kv group's, or (narrow rows) whole groups of consecutive kv heads. Each
// head's arithmetic is the same whichever heads it is computed with. The keys are walked a
// block at a time. scores: (h1 - h0) rows of max_keys.
template <class Kv, int N>
[[gnu::always_inline]] inline void attend_heads_impl(const Plan& p, int32_t s, int64_t t, int64_t h0, int64_t h1,
                                                     float* scores) {
    using Elem = typename Kv::Elem;
    const int64_t first_kv = h0 / p.group, last_kv = (h1 - 1) / p.group;
    const SequenceRows<Elem> rows(p, s, first_kv);
    const Elem* values = rows.values;
    const int64_t dim = p.dim, row_stride = rows.row_stride, block_size = rows.block_size, count = h1 - h0,
                  width = p.max_keys, row_span = (last_kv - first_kv + 1) * dim;
    // Where head h0 + i's kv head starts in a row, from first_kv's part.
    int64_t head_offset[kMaxHeadsTogether];
    for (int64_t i = 0; i < count; ++i) head_offset[i] = ((h0 + i) / p.group - first_kv) * dim;
    const KeyRange visible = visible_keys(p, s, t);
    const int64_t lo = visible.lo, hi = visible.hi;
    const float* q = p.q + (t * p.heads + h0) * dim;
    float* o = p.out + (t * p.heads + h0) * dim;
    std::fill(o, o + count * dim, 0.0f);
    if (hi < lo) return;
    auto row_of = [&](int64_t column, int64_t j) { return rows.row_of(column, j); };

    const float scale = p.scale, softcap = p.softcap;
    float max[kMaxHeadsTogether], sum[kMaxHeadsTogether];
    if (last_kv > first_kv) {
        score_keys<Kv, N, true>(rows, q, dim, count, head_offset, lo, hi, row_span, scores, width);
    } else {
        score_keys<Kv, N, false>(rows, q, dim, count, head_offset, lo, hi, row_span, scores, width);
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
    // U register accumulators per head (keys interleaved): accumulating into o in memory
    // instead chains every key's add through a store and a reload. H heads go together, so
    // each value row is read once for them (one vector load for heads of the same kv head); a
    // head's sums are the same whichever heads it goes with, for a given U.
    using F = typename Lanes<N>::F;
    // Shared: all H heads read one kv head's values (one load for them all).
    auto weighted_sum = [&]<int64_t H, int64_t U, bool Shared>(int64_t i0) __attribute__((always_inline)) {
        const float* e[H];  // e[h][j] for j in [lo, hi]
        float inverse[H];
        int64_t offset[H];
        for (int64_t h = 0; h < H; ++h) {
            e[h] = scores + (i0 + h) * width - lo;
            inverse[h] = sum[i0 + h] > 0.0f ? 1.0f / sum[i0 + h] : 0.0f;
            offset[h] = head_offset[Shared ? i0 : i0 + h];
        }
        for (int64_t d = 0; d < dim; d += N) {
            const int64_t lanes = std::min<int64_t>(N, dim - d);
            F acc[H][U] = {};
            float tail[H][N] = {};
            for (int64_t j = lo; j <= hi;) {
                const int64_t column = j / block_size, end = std::min(hi + 1, (column + 1) * block_size);
                const Elem* v = values + row_of(column, j) + d;
                if (lanes == N) {
                    for (; j + U <= end; j += U, v += U * row_stride) {
                        for (int64_t u = 0; u < U; ++u) {
                            if constexpr (Shared) {
                                const F value = Kv::template widen_n<N>(v + offset[0] + u * row_stride);
                                for (int64_t h = 0; h < H; ++h) acc[h][u] += e[h][j + u] * value;
                            } else {
                                for (int64_t h = 0; h < H; ++h)
                                    acc[h][u] += e[h][j + u] * Kv::template widen_n<N>(v + offset[h] + u * row_stride);
                            }
                        }
                    }
                    for (; j < end; ++j, v += row_stride) {
                        for (int64_t h = 0; h < H; ++h) acc[h][0] += e[h][j] * Kv::template widen_n<N>(v + offset[h]);
                    }
                } else {  // the last columns of a head_dim that is not a multiple of N
                    for (; j < end; ++j, v += row_stride) {
                        for (int64_t h = 0; h < H; ++h) {
                            const Elem* row = v + offset[h];
                            for (int64_t l = 0; l < lanes; ++l) tail[h][l] += e[h][j] * Kv::widen(row[l]);
                        }
                    }
                }
            }
            for (int64_t h = 0; h < H; ++h) {
                F total = acc[h][0];
                if constexpr (U == 4) total = (acc[h][0] + acc[h][1]) + (acc[h][2] + acc[h][3]);
                if constexpr (U == 2) total = acc[h][0] + acc[h][1];
                total *= inverse[h];
                float* out = o + (i0 + h) * dim + d;
                for (int64_t l = 0; l < lanes; ++l) out[l] = lanes == N ? total[l] : tail[h][l] * inverse[h];
            }
        }
    };
    // U depends only on the shape, so a head's result does not depend on how the threads split
    // the heads: four accumulators a head, or with narrow rows two, for up to 8 heads a pass.
    int64_t i = 0;
    if (dim * static_cast<int64_t>(sizeof(Elem)) < kNarrowHeadBytes) {
        if constexpr (N >= 16) {  // 16 accumulators: AVX-512's 32 registers hold them
            for (; i + 8 <= count; i += 8) weighted_sum.template operator()<8, 2, false>(i);
        }
        for (; i + 4 <= count; i += 4) weighted_sum.template operator()<4, 2, false>(i);
        for (; i + 2 <= count; i += 2) weighted_sum.template operator()<2, 2, false>(i);
        if (i < count) weighted_sum.template operator()<1, 2, true>(i);
        return;
    }
    for (; i + 2 <= count; i += 2) weighted_sum.template operator()<2, 4, true>(i);
    if (i < count) weighted_sum.template operator()<1, 4, true>(i);
}

}  // namespace tfx::eager_attention
