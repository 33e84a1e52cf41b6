// The tiled kernel, for prompts: rows of queries against blocks of keys, with an online softmax.
//
// A sequence with many new tokens attends in items of (kv head, run of its tokens): the item's
// query rows (its tokens x the heads of the group, token-major) sit along the vector lanes,
// transposed once (q^T: [head_dim][rows], pre-scaled). Keys and values go by in blocks of
// kBlockKeys, widened to f32 once for all the item's rows. For each group of up to three row
// vectors, a block's scores s[key][rows] come from FMAs of a broadcast key element with a q^T
// vector; the softmax runs lane-wise across rows (a running maximum and sum per row, earlier
// sums and outputs rescaled by e^(old max - new max): flash attention's online softmax); and
// the outputs, kept transposed (o^T: [head_dim][rows]), gain a broadcast value element times
// the weights' vector. No dot product is ever summed across lanes, and each vector loaded
// feeds a register tile of FMAs, as in a GEMM.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "attention_plan.h"
#include "lanes.h"

namespace tfx::eager_attention {

// New tokens from which a sequence attends tiled.
constexpr int64_t kTiledMinTokens = 16;
// Query rows of an item, sharing each block of keys and values widened into scratch.
constexpr int64_t kItemRows = 48;
// Keys a block holds.
constexpr int64_t kBlockKeys = 32;
// Row vectors a register tile spans.
constexpr int kTileRowVectors = 3;

// Keys (for scores) or head_dim columns (for outputs) a register tile spans: with three row
// vectors, 24 accumulators of 32 AVX-512 registers, 12 of AVX2's 16.
template <int N>
constexpr int64_t kTileDepth = N >= 16 ? 8 : 4;

// An item's scratch, f32: keys and values [kBlockKeys][padded dim] (zero past the block's keys
// and past head_dim), q^T and o^T [padded dim][padded rows], a block's scores or weights
// [kBlockKeys][padded rows], and each row's maximum and sum (rows padded to whole vectors).
struct TiledLayout {
    int64_t dim, padded_dim, rows, padded_rows;
    int64_t keys, values, q, o, scores, max, sum, floats;
    TiledLayout(int64_t head_dim, int64_t item_rows, int64_t lanes, int64_t tile_depth) {
        dim = head_dim;
        padded_dim = (head_dim + tile_depth - 1) / tile_depth * tile_depth;
        rows = item_rows;
        padded_rows = (item_rows + lanes - 1) / lanes * lanes;
        keys = 0;
        values = keys + kBlockKeys * padded_dim;
        q = values + kBlockKeys * padded_dim;
        o = q + padded_dim * padded_rows;
        scores = o + padded_dim * padded_rows;
        max = scores + kBlockKeys * padded_rows;
        sum = max + padded_rows;
        floats = sum + padded_rows;
    }
};

// One item: tokens [t0, t1) of sequence s, the heads of kv head `kv_head`. Row r is token
// t0 + r / group, head kv_head * group + r % group; rows past the last (padding) repeat it.
struct TiledItem {
    const Plan* p;
    int32_t s;
    int64_t kv_head, t0, t1;
    [[gnu::always_inline]] int64_t rows() const { return (t1 - t0) * p->group; }
    [[gnu::always_inline]] int64_t token(int64_t r) const { return t0 + std::min(r, rows() - 1) / p->group; }
    [[gnu::always_inline]] int64_t offset(int64_t r) const {
        const int64_t row = std::min(r, rows() - 1);
        return ((t0 + row / p->group) * p->heads + kv_head * p->group + row % p->group) * p->dim;
    }
};

// Keys [j0, j0 + count) of `rows` widened into scratch as rows of padded_dim; zero elsewhere.
template <class Kv, int N>
[[gnu::always_inline]] inline void widen_block(const SequenceRows<typename Kv::Elem>& rows, const TiledLayout& l,
                                               int64_t j0, int64_t count, float* keys, float* values) {
    using F = typename Lanes<N>::F;
    for (int64_t u = 0; u < kBlockKeys; ++u) {
        float* k_out = keys + u * l.padded_dim;
        float* v_out = values + u * l.padded_dim;
        int64_t d = 0;
        if (u < count) {
            const int64_t row = rows.row_of(j0 + u);
            const typename Kv::Elem* k = rows.keys + row;
            const typename Kv::Elem* v = rows.values + row;
            for (; d + N <= l.dim; d += N) {
                const F key = Kv::template widen_n<N>(k + d), value = Kv::template widen_n<N>(v + d);
                std::memcpy(k_out + d, &key, sizeof key);
                std::memcpy(v_out + d, &value, sizeof value);
            }
            for (; d < l.dim; ++d) k_out[d] = Kv::widen(k[d]), v_out[d] = Kv::widen(v[d]);
        }
        std::fill(k_out + d, k_out + l.padded_dim, 0.0f);
        std::fill(v_out + d, v_out + l.padded_dim, 0.0f);
    }
}

// scores[u][rows of the tile] = sum over d of keys[u][d] * q^T[d][rows], for keys
// [u0, u0 + depth) and row vectors [v0, v0 + V).
template <int N, int V>
[[gnu::always_inline]] inline void tile_scores(const TiledLayout& l, const float* keys, const float* q, float* scores,
                                               int64_t u0, int64_t v0) {
    using F = typename Lanes<N>::F;
    constexpr int64_t kDepth = kTileDepth<N>;
    F acc[kDepth][V] = {};
    for (int64_t d = 0; d < l.dim; ++d) {
        F qv[V];
        for (int v = 0; v < V; ++v) qv[v] = load<F>(q + d * l.padded_rows + (v0 + v) * N);
        for (int64_t u = 0; u < kDepth; ++u) {
            const float key = keys[(u0 + u) * l.padded_dim + d];  // a scalar times a vector: broadcast
            for (int v = 0; v < V; ++v) acc[u][v] += key * qv[v];
        }
    }
    for (int64_t u = 0; u < kDepth; ++u) {
        for (int v = 0; v < V; ++v)
            std::memcpy(scores + (u0 + u) * l.padded_rows + (v0 + v) * N, &acc[u][v], sizeof(F));
    }
}

// o^T[d][rows] = o^T[d][rows] * rescale + sum over keys u of values[u][d] * weights[u][rows],
// for columns [d0, d0 + depth) and row vectors [v0, v0 + V).
template <int N, int V>
[[gnu::always_inline]] inline void tile_values(const TiledLayout& l, const float* values, const float* weights,
                                               const typename Lanes<N>::F* rescale, float* o, int64_t keys, int64_t d0,
                                               int64_t v0) {
    using F = typename Lanes<N>::F;
    constexpr int64_t kDepth = kTileDepth<N>;
    F acc[kDepth][V];
    for (int64_t i = 0; i < kDepth; ++i) {
        for (int v = 0; v < V; ++v) acc[i][v] = load<F>(o + (d0 + i) * l.padded_rows + (v0 + v) * N) * rescale[v];
    }
    for (int64_t u = 0; u < keys; ++u) {
        F w[V];
        for (int v = 0; v < V; ++v) w[v] = load<F>(weights + u * l.padded_rows + (v0 + v) * N);
        for (int64_t i = 0; i < kDepth; ++i) {
            const float value = values[u * l.padded_dim + d0 + i];
            for (int v = 0; v < V; ++v) acc[i][v] += value * w[v];
        }
    }
    for (int64_t i = 0; i < kDepth; ++i) {
        for (int v = 0; v < V; ++v) std::memcpy(o + (d0 + i) * l.padded_rows + (v0 + v) * N, &acc[i][v], sizeof(F));
    }
}

// Row vectors [v0, v0 + V) of an item against the block's keys [j0, j0 + count) (the block's
// first `keys` rows, count rounded up to a tile): scores, masked to each row's visible keys
// (and soft-capped); the online softmax's new maxima and sums; the weighted values.
template <int N, int V>
[[gnu::always_inline]] inline void attend_rows(const Plan& p, const TiledItem& item, const TiledLayout& l,
                                               float* scratch, int64_t v0, int64_t j0, int64_t keys) {
    using F = typename Lanes<N>::F;
    using U = typename Lanes<N>::U;
    constexpr float kLowest = -std::numeric_limits<float>::infinity();
    float* scores = scratch + l.scores;
    for (int64_t u0 = 0; u0 < keys; u0 += kTileDepth<N>)
        tile_scores<N, V>(l, scratch + l.keys, scratch + l.q, scores, u0, v0);
    F rescale[V];
    for (int v = 0; v < V; ++v) {
        // Each lane's visible keys [lo, hi]: key j is visible when j - lo <= hi - lo unsigned.
        U lo, span;
        for (int lane = 0; lane < N; ++lane) {
            const KeyRange visible = visible_keys(p, item.s, item.token((v0 + v) * N + lane));
            lo[lane] = static_cast<uint32_t>(visible.lo);
            span[lane] = static_cast<uint32_t>(visible.hi - visible.lo);
        }
        float* column = scores + (v0 + v) * N;
        F block_max = F{} + kLowest;
        for (int64_t u = 0; u < keys; ++u) {
            F x = load<F>(column + u * l.padded_rows);
            if (p.softcap > 0.0f) {
                for (int lane = 0; lane < N; ++lane) x[lane] = p.softcap * std::tanh(x[lane] / p.softcap);
            }
            const U keep = std::bit_cast<U>((static_cast<uint32_t>(j0 + u) - lo) <= span);
            x = std::bit_cast<F>((std::bit_cast<U>(x) & keep) | (~keep & std::bit_cast<uint32_t>(kLowest)));
            std::memcpy(column + u * l.padded_rows, &x, sizeof x);
            block_max = block_max > x ? block_max : x;
        }
        float* max = scratch + l.max + (v0 + v) * N;
        float* sum = scratch + l.sum + (v0 + v) * N;
        const F old_max = load<F>(max);
        const F new_max = old_max > block_max ? old_max : block_max;
        // Lanes that have seen no visible key keep a maximum of -inf: shift them by 0, so
        // their weights are e^-inf = 0 and nothing is NaN.
        const U unseen = std::bit_cast<U>(new_max == kLowest);
        const F shift = std::bit_cast<F>(std::bit_cast<U>(new_max) & ~unseen);
        rescale[v] = exp_lanes<N>(old_max - shift);  // 0 while old_max is -inf
        F total = load<F>(sum) * rescale[v];
        for (int64_t u = 0; u < keys; ++u) {
            const F e = exp_lanes<N>(load<F>(column + u * l.padded_rows) - shift);
            std::memcpy(column + u * l.padded_rows, &e, sizeof e);
            total += e;
        }
        std::memcpy(max, &new_max, sizeof new_max);
        std::memcpy(sum, &total, sizeof total);
    }
    for (int64_t d0 = 0; d0 < l.padded_dim; d0 += kTileDepth<N>)
        tile_values<N, V>(l, scratch + l.values, scores, rescale, scratch + l.o, keys, d0, v0);
}

// out for one item. scratch: TiledLayout(dim, rows, N, kTileDepth<N>).floats floats.
template <class Kv, int N>
[[gnu::always_inline]] inline void attend_tiled_impl(const Plan& p, int32_t s, int64_t kv_head, int64_t t0, int64_t t1,
                                                     float* scratch) {
    const TiledItem item{&p, s, kv_head, t0, t1};
    const TiledLayout l(p.dim, item.rows(), N, kTileDepth<N>);
    const SequenceRows<typename Kv::Elem> sequence(p, s, kv_head);
    float* q = scratch + l.q;
    for (int64_t r = 0; r < l.padded_rows; ++r) {
        const float* query = p.q + item.offset(r);
        for (int64_t d = 0; d < l.dim; ++d) q[d * l.padded_rows + r] = query[d] * p.scale;
    }
    std::fill(scratch + l.o, scratch + l.o + l.padded_dim * l.padded_rows, 0.0f);
    std::fill(scratch + l.max, scratch + l.max + l.padded_rows, -std::numeric_limits<float>::infinity());
    std::fill(scratch + l.sum, scratch + l.sum + l.padded_rows, 0.0f);
    // lo and hi never decrease from one token to the next.
    const int64_t first = visible_keys(p, s, t0).lo, last = visible_keys(p, s, t1 - 1).hi;
    const int64_t row_vectors = l.padded_rows / N;
    for (int64_t j0 = first; j0 <= last; j0 += kBlockKeys) {
        const int64_t count = std::min(kBlockKeys, last + 1 - j0);
        const int64_t keys = (count + kTileDepth<N> - 1) / kTileDepth<N> * kTileDepth<N>;
        widen_block<Kv, N>(sequence, l, j0, count, scratch + l.keys, scratch + l.values);
        for (int64_t v0 = 0; v0 < row_vectors; v0 += kTileRowVectors) {
            const int64_t v1 = std::min<int64_t>(row_vectors, v0 + kTileRowVectors);
            // Skip rows that see none of the block: their last token's keys end before it, or
            // their first token's begin after it.
            if (visible_keys(p, s, item.token(v1 * N - 1)).hi < j0 ||
                visible_keys(p, s, item.token(v0 * N)).lo > j0 + count - 1)
                continue;
            switch (v1 - v0) {
                case 1:
                    attend_rows<N, 1>(p, item, l, scratch, v0, j0, keys);
                    break;
                case 2:
                    attend_rows<N, 2>(p, item, l, scratch, v0, j0, keys);
                    break;
                default:
                    attend_rows<N, 3>(p, item, l, scratch, v0, j0, keys);
                    break;
            }
        }
    }
    const float* o = scratch + l.o;
    for (int64_t r = 0; r < l.rows; ++r) {
        const float sum = scratch[l.sum + r];
        const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
        float* out = p.out + item.offset(r);
        for (int64_t d = 0; d < l.dim; ++d) out[d] = o[d * l.padded_rows + r] * inverse;
    }
}

}  // namespace tfx::eager_attention
