// Eager attention, the reference (ABI 2.0): over a ragged batch of sequences and a paged KV
// cache. Each new token's key and value are first written to its cache slot (narrowed to the
// cache's dtype), then every token attends over its sequence's positions 0..p, read through
// the block table: scores = scale · q·k in f32 (optionally soft-capped), masked (causal,
// sliding window), softmax in f32 with the maximum subtracted, times v. Grouped-query heads
// share kv head h / (heads / kv_heads).
//
// The kernel runs inside the backend's run_kernel, so the tensors' device memory (the block
// table and slot mapping included) is addressable here. Work is split with OpenMP over
// (token, kv head, heads of its group): the heads sharing a kv head read each cache row once.
// Loops over head_dim run on f32 vectors (AVX-512, AVX2 or SSE, chosen once from the CPU),
// widening bf16/f16 rows as they are read. Scratch is per thread and reused, so a warm call
// allocates nothing. Each head's result is computed the same way however the work is split.
#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tfx/sdk/half.hpp"
#include "tfx/sdk/plugin.hpp"
#include "tfx/sdk/tensor.hpp"

#define TFX_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define TFX_OMP(x) TFX_PRAGMA(omp x)
#else
#define TFX_OMP(x)
#endif

namespace {

using tfx::sdk::Error;

[[noreturn]] void fail(const std::string& message) {
    throw Error(TFX_ERR_INVALID_ARGUMENT, "attention: " + message);
}

std::string shape_of(const tfx_tensor* t) {
    std::string s = "[";
    for (int32_t i = 0; i < t->ndim; ++i) s += (i ? ", " : "") + std::to_string(t->shape[i]);
    return s + "] " + tfx::sdk::dtype_name(t->dtype);
}

bool same_device(const tfx_device& a, const tfx_device& b) {
    return a.device_type == b.device_type && a.device_id == b.device_id;
}

// Checks that `t` is a compact tensor of `dtype` whose dims are `shape` (-1: any), with data.
void require(const tfx_tensor* t, const char* name, tfx_dtype dtype, std::initializer_list<int64_t> shape,
             const char* expected) {
    if (t == nullptr) fail(std::string(name) + " is missing");
    bool ok = t->ndim == static_cast<int32_t>(shape.size()) && t->shape != nullptr && t->dtype == dtype;
    int64_t stride = 1;  // ends as the element count
    if (ok) {
        for (int32_t i = t->ndim - 1; i >= 0; --i) {
            const int64_t want = shape.begin()[i];
            if (t->shape[i] < 0 || (want >= 0 && t->shape[i] != want)) ok = false;
            if (t->strides != nullptr && t->shape[i] > 1 && t->strides[i] != stride) ok = false;
            stride *= t->shape[i];
        }
    }
    if (!ok) {
        fail(std::string(name) + " must be a compact " + expected + " " + tfx::sdk::dtype_name(dtype) +
             " tensor, got " + (t->shape != nullptr ? shape_of(t) : std::string("no shape")) +
             (t->strides != nullptr ? " (strided)" : ""));
    }
    if (t->data == nullptr && stride > 0) fail(std::string(name) + " has no data");
}

template <class T>
T* data_of(const tfx_tensor* t) {
    return reinterpret_cast<T*>(static_cast<char*>(t->data) + t->byte_offset);
}

// ---- cache element types: widening on read, one element or N at a time (GCC vector
// extensions, N floats filling one register: 16 for AVX-512, 8 for AVX2, 4 for SSE), and
// narrowing on write (round to nearest even) ----

template <int N>
struct Lanes {
    typedef float F __attribute__((vector_size(N * sizeof(float))));
    typedef uint32_t U __attribute__((vector_size(N * sizeof(uint32_t))));
    typedef uint16_t H __attribute__((vector_size(N * sizeof(uint16_t))));
};

template <class Vector, class Elem>
[[gnu::always_inline]] inline Vector load(const Elem* p) {
    Vector v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

struct F32 {
    using Elem = float;
    [[gnu::always_inline]] static float widen(float x) { return x; }
    template <int N>
    [[gnu::always_inline]] static typename Lanes<N>::F widen_n(const float* p) {
        return load<typename Lanes<N>::F>(p);
    }
    static float narrow(float x) { return x; }
};

struct BF16 {
    using Elem = uint16_t;
    [[gnu::always_inline]] static float widen(uint16_t h) {
        return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
    }
    template <int N>
    [[gnu::always_inline]] static typename Lanes<N>::F widen_n(const uint16_t* p) {
        using L = Lanes<N>;
        return std::bit_cast<typename L::F>(__builtin_convertvector(load<typename L::H>(p), typename L::U) << 16);
    }
    static uint16_t narrow(float x) { return tfx::sdk::f32_to_bf16(x); }
};

struct F16 {
    using Elem = uint16_t;
    // Exact for every f16 value (normals, subnormals, zeros, infinities, NaNs), without branches:
    // U is uint32_t or Lanes<N>::U, and mask(condition) all ones where it holds.
    template <class U, class F, class Mask>
    [[gnu::always_inline]] static U widen_bits(U h, Mask mask) {
        const U bits = (h & 0x7fffu) << 13;  // exponent and mantissa
        const U exponent = bits & 0x0f800000u;
        const U special = mask(exponent == 0x0f800000u);                // infinity, NaN: exponent 255
        const U tiny = mask(exponent == 0u);                            // zero, subnormal: renormalised
        const U normal = bits + 0x38000000u + (special & 0x38000000u);  // rebias 15 -> 127
        const U subnormal = std::bit_cast<U>(std::bit_cast<F>(bits + 0x38800000u) - std::bit_cast<float>(0x38800000u));
        return ((tiny & subnormal) | (~tiny & normal)) | ((h & 0x8000u) << 16);
    }
    [[gnu::always_inline]] static float widen(uint16_t h) {
        return std::bit_cast<float>(
            widen_bits<uint32_t, float>(h, [](bool c) { return 0u - static_cast<uint32_t>(c); }));
    }
    template <int N>
    [[gnu::always_inline]] static typename Lanes<N>::F widen_n(const uint16_t* p) {
        using L = Lanes<N>;
        const typename L::U h = __builtin_convertvector(load<typename L::H>(p), typename L::U);
        return std::bit_cast<typename L::F>(
            widen_bits<typename L::U, typename L::F>(h, [](auto c) { return std::bit_cast<typename L::U>(c); }));
    }
    static uint16_t narrow(float x) { return tfx::sdk::f32_to_f16(x); }
};

enum class KvType { f32, bf16, f16 };

// Validated arguments, resolved to pointers.
struct Plan {
    const float* q;
    const float* k;
    const float* v;
    float* out;
    int64_t tokens, heads, kv_heads, dim, group;
    int32_t num_seqs;
    const int32_t* seq_start;
    const int32_t* context_len;
    bool causal;
    float scale, softcap;
    int32_t window;
    int32_t window_ahead;  // non-causal: keys before pos + window_ahead (0: all)
    int64_t max_keys;      // the longest sequence's positions
    double work;           // multiply-adds, to decide whether threads pay off
    // The cache (cache_k == nullptr without one).
    KvType kv = KvType::f32;
    void* cache_k = nullptr;
    void* cache_v = nullptr;
    int64_t block_size = 0;
    const int32_t* block_table = nullptr;
    int64_t table_columns = 0;
    const int32_t* slot_mapping = nullptr;
};

Plan make_plan(const tfx_attention_args* a) {
    if (a == nullptr) fail("arguments are missing");
    if (!TFX_HAS_FIELD(a, tfx_attention_args, sliding_window)) {
        fail("tfx_attention_args.struct_size (" + std::to_string(a->struct_size) + ") does not cover sliding_window");
    }
    using tfx::sdk::kF32;
    using tfx::sdk::kI32;
    require(a->q, "q", kF32, {-1, -1, -1}, "[num_tokens, heads, head_dim]");
    Plan p{};
    p.tokens = a->q->shape[0];
    p.heads = a->q->shape[1];
    p.dim = a->q->shape[2];
    if (p.heads <= 0 || p.dim <= 0) fail("q has no heads or a zero head_dim: " + shape_of(a->q));
    require(a->k, "k", kF32, {p.tokens, -1, p.dim}, "[num_tokens, kv_heads, head_dim]");
    p.kv_heads = a->k->shape[1];
    require(a->v, "v", kF32, {p.tokens, p.kv_heads, p.dim}, "[num_tokens, kv_heads, head_dim] (as k)");
    require(a->out, "out", kF32, {p.tokens, p.heads, p.dim}, "[num_tokens, heads, head_dim] (as q)");
    if (p.kv_heads <= 0 || p.heads % p.kv_heads != 0) {
        fail("heads (" + std::to_string(p.heads) + ") must be a multiple of kv_heads (" + std::to_string(p.kv_heads) +
             ")");
    }
    p.group = p.heads / p.kv_heads;
    const tfx_device device = a->q->device;
    for (const tfx_tensor* t : {a->k, a->v, static_cast<const tfx_tensor*>(a->out)}) {
        if (!same_device(t->device, device)) fail("q, k, v and out must be on the same device");
    }
    p.q = data_of<const float>(a->q);
    p.k = data_of<const float>(a->k);
    p.v = data_of<const float>(a->v);
    p.out = data_of<float>(a->out);
    p.causal = a->causal != 0;
    p.scale = a->scale;
    p.softcap = a->softcap;
    p.window = a->sliding_window;
    p.window_ahead = a->window_ahead;
    if (p.window_ahead < 0 || (p.window_ahead > 0 && p.causal)) {
        fail("window_ahead (" + std::to_string(p.window_ahead) + ") must be 0, or positive with causal 0");
    }

    // The batch (host metadata).
    const tfx_batch* b = a->batch;
    if (b == nullptr) fail("batch is missing");
    if (!TFX_HAS_FIELD(b, tfx_batch, context_len)) {
        fail("tfx_batch.struct_size (" + std::to_string(b->struct_size) + ") does not cover context_len");
    }
    if (b->num_tokens != p.tokens) {
        fail("batch.num_tokens (" + std::to_string(b->num_tokens) + ") must match q's first dim (" +
             std::to_string(p.tokens) + ")");
    }
    if (b->num_seqs < 0) fail("batch.num_seqs is negative (" + std::to_string(b->num_seqs) + ")");
    if (b->seq_start == nullptr || b->context_len == nullptr)
        fail("batch.seq_start and batch.context_len are required");
    p.num_seqs = b->num_seqs;
    p.seq_start = b->seq_start;
    p.context_len = b->context_len;
    if (b->seq_start[0] != 0) fail("batch.seq_start[0] must be 0, got " + std::to_string(b->seq_start[0]));
    for (int32_t s = 0; s < b->num_seqs; ++s) {
        const int64_t n = int64_t{b->seq_start[s + 1]} - b->seq_start[s];
        if (n < 0) {
            fail("batch.seq_start must not decrease (seq_start[" + std::to_string(s + 1) +
                 "] = " + std::to_string(b->seq_start[s + 1]) + " < seq_start[" + std::to_string(s) +
                 "] = " + std::to_string(b->seq_start[s]) + ")");
        }
        if (b->context_len[s] < 0) {
            fail("batch.context_len[" + std::to_string(s) + "] is negative (" + std::to_string(b->context_len[s]) +
                 ")");
        }
        if (a->cache == nullptr && b->context_len[s] != 0) {
            fail("batch.context_len[" + std::to_string(s) + "] is " + std::to_string(b->context_len[s]) +
                 " but there is no KV cache (cache is NULL): without a cache, context_len must be 0");
        }
        const int64_t keys = b->context_len[s] + n;
        p.max_keys = std::max(p.max_keys, keys);
        p.work += static_cast<double>(n) * static_cast<double>(keys);
    }
    if (b->seq_start[b->num_seqs] != b->num_tokens) {
        fail("batch.seq_start[num_seqs] (" + std::to_string(b->seq_start[b->num_seqs]) +
             ") must equal batch.num_tokens (" + std::to_string(b->num_tokens) + ")");
    }
    if (b->max_context_len < p.max_keys) {
        fail("batch.max_context_len (" + std::to_string(b->max_context_len) +
             ") is below a sequence's context plus new tokens (" + std::to_string(p.max_keys) + ")");
    }
    p.work *= static_cast<double>(p.heads * p.dim);
    if (a->cache == nullptr) return p;

    // The paged cache (device tensors, addressable inside run_kernel).
    if (!TFX_HAS_FIELD(b, tfx_batch, slot_mapping)) {
        fail("tfx_batch.struct_size (" + std::to_string(b->struct_size) + ") does not cover slot_mapping");
    }
    const tfx_tensor* ck = a->cache->k;
    const tfx_tensor* cv = a->cache->v;
    if (ck == nullptr || cv == nullptr) fail("cache.k and cache.v are required");
    const tfx_dtype kv_dtype = ck->dtype;
    if (kv_dtype == tfx::sdk::kF32) {
        p.kv = KvType::f32;
    } else if (kv_dtype == tfx::sdk::kBF16) {
        p.kv = KvType::bf16;
    } else if (kv_dtype == tfx::sdk::kF16) {
        p.kv = KvType::f16;
    } else {
        fail("cache.k dtype " + tfx::sdk::dtype_name(kv_dtype) + " is not supported (f32, bf16, f16)");
    }
    if (b->block_size <= 0)
        fail("batch.block_size must be positive with a cache, got " + std::to_string(b->block_size));
    p.block_size = b->block_size;
    const char* pool_shape = "[num_blocks, block_size, kv_heads, head_dim]";
    require(ck, "cache.k", kv_dtype, {-1, p.block_size, p.kv_heads, p.dim}, pool_shape);
    const int64_t num_blocks = ck->shape[0];
    require(cv, "cache.v", kv_dtype, {num_blocks, p.block_size, p.kv_heads, p.dim}, pool_shape);
    if (b->max_blocks_per_seq <= 0) {
        fail("batch.max_blocks_per_seq must be positive with a cache, got " + std::to_string(b->max_blocks_per_seq));
    }
    p.table_columns = b->max_blocks_per_seq;
    require(b->block_table, "batch.block_table", kI32, {p.num_seqs, p.table_columns}, "[num_seqs, max_blocks_per_seq]");
    require(b->slot_mapping, "batch.slot_mapping", kI32, {p.tokens}, "[num_tokens]");
    for (const tfx_tensor* t : {ck, cv, b->block_table, b->slot_mapping}) {
        if (!same_device(t->device, device)) fail("the cache, block_table and slot_mapping must be on q's device");
    }
    p.cache_k = data_of<void>(ck);
    p.cache_v = data_of<void>(cv);
    p.block_table = data_of<const int32_t>(b->block_table);
    p.slot_mapping = data_of<const int32_t>(b->slot_mapping);

    for (int32_t s = 0; s < p.num_seqs; ++s) {
        const int64_t keys = int64_t{p.context_len[s]} + p.seq_start[s + 1] - p.seq_start[s];
        const int64_t used = (keys + p.block_size - 1) / p.block_size;
        if (used > p.table_columns) {
            fail("sequence " + std::to_string(s) + " needs " + std::to_string(used) + " blocks for " +
                 std::to_string(keys) + " positions, more than batch.max_blocks_per_seq (" +
                 std::to_string(p.table_columns) + ")");
        }
        const int32_t* row = p.block_table + s * p.table_columns;
        for (int64_t c = 0; c < used; ++c) {
            if (row[c] < 0 || row[c] >= num_blocks) {
                fail("block_table[" + std::to_string(s) + ", " + std::to_string(c) + "] = " + std::to_string(row[c]) +
                     " is out of range (the pools hold " + std::to_string(num_blocks) + " blocks)");
            }
        }
        for (int32_t i = p.seq_start[s]; i < p.seq_start[s + 1]; ++i) {
            const int64_t slot = p.slot_mapping[i];
            if (slot < 0 || slot >= num_blocks * p.block_size) {
                fail("slot_mapping[" + std::to_string(i) + "] = " + std::to_string(slot) +
                     " is out of range (num_blocks * block_size = " + std::to_string(num_blocks * p.block_size) + ")");
            }
            const int64_t pos = int64_t{p.context_len[s]} + (i - p.seq_start[s]);
            const int64_t expected = int64_t{row[pos / p.block_size]} * p.block_size + pos % p.block_size;
            if (slot != expected) {
                fail("slot_mapping[" + std::to_string(i) + "] = " + std::to_string(slot) + " but block_table puts " +
                     "sequence " + std::to_string(s) + "'s position " + std::to_string(pos) + " at slot " +
                     std::to_string(expected));
            }
        }
    }
    return p;
}

// ---- the kernel ----

// Whether work that is `large_enough` should use the threads. Small work stays on the calling
// thread without entering OpenMP at all: `parallel if (false)` still starts a one-thread team,
// and libgomp then wakes the idle threads of its pool (a futex call per region, a few per
// layer of a decode step).
bool use_threads(bool large_enough) {
#ifdef _OPENMP
    return large_enough && omp_get_max_threads() > 1;
#else
    (void)large_enough;
    return false;
#endif
}

// Below this many multiply-adds a call runs on the calling thread.
constexpr double kParallelWork = 32768.0;

template <class Kv>
void write_cache(const Plan& p) {
    using Elem = typename Kv::Elem;
    Elem* ck = static_cast<Elem*>(p.cache_k);
    Elem* cv = static_cast<Elem*>(p.cache_v);
    const int64_t row = p.kv_heads * p.dim;
    auto write = [&](int64_t t) {
        const int64_t dst = int64_t{p.slot_mapping[t]} * row;
        const float* ks = p.k + t * row;
        const float* vs = p.v + t * row;
        for (int64_t i = 0; i < row; ++i) {
            ck[dst + i] = Kv::narrow(ks[i]);
            cv[dst + i] = Kv::narrow(vs[i]);
        }
    };
    if (!use_threads(p.tokens * row >= 16384)) {
        for (int64_t t = 0; t < p.tokens; ++t) write(t);
        return;
    }
    TFX_OMP(parallel for schedule(static))
    for (int64_t t = 0; t < p.tokens; ++t) write(t);
}

// Scratch of each thread, grown to the longest sequence seen; never shrinks.
float* thread_scores(int64_t n) {
    thread_local std::vector<float> scores;
    if (scores.size() < static_cast<size_t>(n)) scores.resize(static_cast<size_t>(n));
    return scores.data();
}

// The sum of v's N lanes, halving the vector each step: log2(N) shuffles and adds in
// registers. (Storing the vector and adding its lanes back from memory stalls on store
// forwarding, and measured the largest cost of a decode step's attention.)
template <int N>
[[gnu::always_inline]] inline float sum_lanes(typename Lanes<N>::F v) {
    if constexpr (N == 1) {
        return v[0];
    } else {
        return [&]<int... I>(std::integer_sequence<int, I...>) {
            const typename Lanes<N / 2>::F low = __builtin_shufflevector(v, v, I...);
            const typename Lanes<N / 2>::F high = __builtin_shufflevector(v, v, (I + N / 2)...);
            return sum_lanes<N / 2>(low + high);
        }
        (std::make_integer_sequence<int, N / 2>{});
    }
}

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

// e^x in N lanes, within 2 ulp of std::exp for x <= 0 (softmax's range after subtracting
// the maximum): x = n ln2 + r with |r| <= ln2 / 2, e^r by a degree-6 minimax polynomial
// (Cephes' expf coefficients), 2^n put into the exponent bits. Below -87.3 the result is 0
// (exactly so for -inf), where std::exp would give a subnormal or 0.
template <int N>
[[gnu::always_inline]] inline typename Lanes<N>::F exp_lanes(typename Lanes<N>::F x) {
    using F = typename Lanes<N>::F;
    using U = typename Lanes<N>::U;
    const F shifter = F{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    const F t = x * 1.44269504f + shifter;
    const F n = t - shifter;
    const F r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // ln 2 in two parts, exact n * hi
    F p = F{} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const F er = p * r * r + r + 1.0f;
    const U scale = (std::bit_cast<U>(t) - std::bit_cast<uint32_t>(12582912.0f) + 127u) << 23;
    const U keep = std::bit_cast<U>(x >= -87.3f);
    return std::bit_cast<F>(std::bit_cast<U>(er * std::bit_cast<F>(scale)) & keep);
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

// Heads of one kv group computed together, so that each key and value row is read once for
// all of them.
constexpr int64_t kMaxHeadsTogether = 8;

// The keys token t (of sequence s) sees: positions [lo, hi], empty when hi < lo.
struct KeyRange {
    int64_t lo, hi;
};

[[gnu::always_inline]] inline KeyRange visible_keys(const Plan& p, int32_t s, int64_t t) {
    const int64_t context = p.context_len[s];
    const int64_t n = context + p.seq_start[s + 1] - p.seq_start[s];
    const int64_t pos = context + (t - p.seq_start[s]);
    const int64_t hi = p.causal ? pos : p.window_ahead > 0 ? std::min(n - 1, pos + p.window_ahead - 1) : n - 1;
    const int64_t lo = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
    return {lo, hi};
}

// Where sequence s's key and value rows are for one kv head: in the paged cache through its
// block table, or without a cache in the call's own k and v (one block of the n new rows).
// Within a block, consecutive positions are rows `row_stride` apart.
template <class Elem>
struct SequenceRows {
    const Elem* keys;
    const Elem* values;
    int64_t block_size, row_stride, head_offset, first_row;
    const int32_t* table;

    SequenceRows(const Plan& p, int32_t s, int64_t kv_head) {
        const bool cached = p.cache_k != nullptr;
        keys = cached ? static_cast<const Elem*>(p.cache_k) : reinterpret_cast<const Elem*>(p.k);
        values = cached ? static_cast<const Elem*>(p.cache_v) : reinterpret_cast<const Elem*>(p.v);
        block_size = cached ? p.block_size : int64_t{p.context_len[s]} + p.seq_start[s + 1] - p.seq_start[s];
        row_stride = p.kv_heads * p.dim;
        head_offset = kv_head * p.dim;
        first_row = cached ? 0 : p.seq_start[s];
        table = cached ? p.block_table + s * p.table_columns : nullptr;
    }
    // The offset of position j's row, j in block column `column` (j / block_size).
    [[gnu::always_inline]] int64_t row_of(int64_t column, int64_t j) const {
        const int64_t block = table != nullptr ? int64_t{table[column]} * block_size : first_row;
        return (block + j % block_size) * row_stride + head_offset;
    }
    [[gnu::always_inline]] int64_t row_of(int64_t j) const { return row_of(j / block_size, j); }
};

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
    for (int64_t i = 0; i < count; ++i) max[i] = scale_row<N>(scores + i * width, hi - lo + 1, scale, softcap);
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

// ---- prompts: query rows in tiles against blocks of keys, with an online softmax ----
//
// A sequence with many new tokens attends in items of (kv head, run of its tokens). An item's
// query rows (its tokens x the heads of the group, token-major) go over the keys a block of
// 2N at a time. Each block's keys are widened into scratch transposed (keys along the lanes)
// and its values widened, once for all the item's rows; then each tile of up to kTileRows
// rows computes its block of scores with FMAs that each feed one row from a key vector loaded
// once for the tile, folds them into the row's running maximum and sum (flash attention's
// online softmax: earlier sums and outputs rescaled by e^(old max - new max)), and adds the
// block's weighted values to its output rows, kept in f32 scratch. The per-token path instead
// reads each key for one token's heads and reduces every dot product across lanes.

// New tokens from which a sequence attends tiled.
constexpr int64_t kTiledMinTokens = 16;
// Query rows a key or value vector loaded feeds (registers: 6 x 2 score vectors, 6 x 4 (AVX2:
// 6 x 2) output vectors, with the loads).
constexpr int64_t kTileRows = 6;
// Query rows of an item, sharing each block of keys and values widened into scratch.
constexpr int64_t kItemRows = 48;

template <int N>
[[gnu::always_inline]] inline float max_lanes(typename Lanes<N>::F v) {
    if constexpr (N == 1) {
        return v[0];
    } else {
        return [&]<int... I>(std::integer_sequence<int, I...>) {
            const typename Lanes<N / 2>::F low = __builtin_shufflevector(v, v, I...);
            const typename Lanes<N / 2>::F high = __builtin_shufflevector(v, v, (I + N / 2)...);
            return max_lanes<N / 2>(low > high ? low : high);
        }
        (std::make_integer_sequence<int, N / 2>{});
    }
}

// Scratch of a tiled item (f32): the block's keys transposed [dim][2N] and values [2N][dim],
// the rows' outputs [rows][dim], running maxima and sums, and a tile's weights [kTileRows][2N]
// with their rescaling factors.
template <int N>
struct TiledScratch {
    static constexpr int64_t kBlockKeys = 2 * N;
    float *keys, *values, *out, *max, *sum, *weights, *rescale;
    TiledScratch(int64_t dim, int64_t rows, float* base) {
        keys = base;
        values = keys + dim * kBlockKeys;
        out = values + kBlockKeys * dim;
        max = out + rows * dim;
        sum = max + rows;
        weights = sum + rows;
        rescale = weights + kTileRows * kBlockKeys;
    }
};

// The floats of a TiledScratch for blocks of `block_keys` keys (2N).
int64_t tiled_scratch_floats(int64_t block_keys, int64_t dim, int64_t rows) {
    return 2 * dim * block_keys + rows * dim + 2 * rows + kTileRows * (block_keys + 1);
}

// Keys [j0, j0 + count) of `rows` widened into scratch: keys transposed, values as rows; the
// rest of the 2N zero.
template <class Kv, int N>
[[gnu::always_inline]] inline void widen_block(const SequenceRows<typename Kv::Elem>& rows, int64_t dim, int64_t j0,
                                               int64_t count, const TiledScratch<N>& scratch) {
    using F = typename Lanes<N>::F;
    constexpr int64_t kBlock = TiledScratch<N>::kBlockKeys;
    for (int64_t u = 0; u < kBlock; ++u) {
        float* v_out = scratch.values + u * dim;
        if (u >= count) {
            for (int64_t d = 0; d < dim; ++d) scratch.keys[d * kBlock + u] = 0.0f;
            std::fill(v_out, v_out + dim, 0.0f);
            continue;
        }
        const int64_t row = rows.row_of(j0 + u);
        const typename Kv::Elem* k = rows.keys + row;
        const typename Kv::Elem* v = rows.values + row;
        for (int64_t d = 0; d < dim; ++d) scratch.keys[d * kBlock + u] = Kv::widen(k[d]);
        int64_t d = 0;
        for (; d + N <= dim; d += N) {
            const F value = Kv::template widen_n<N>(v + d);
            std::memcpy(v_out + d, &value, sizeof value);
        }
        for (; d < dim; ++d) v_out[d] = Kv::widen(v[d]);
    }
}

// One item's rows, as the tiles see them: row r is token t0 + r / group, head
// kv_head * group + r % group.
struct ItemRows {
    const Plan* p;
    int32_t s;
    int64_t t0, kv_head;
    [[gnu::always_inline]] int64_t token(int64_t r) const { return t0 + r / p->group; }
    [[gnu::always_inline]] const float* q(int64_t r) const {
        return p->q + (token(r) * p->heads + kv_head * p->group + r % p->group) * p->dim;
    }
    [[gnu::always_inline]] float* out(int64_t r) const {
        return p->out + (token(r) * p->heads + kv_head * p->group + r % p->group) * p->dim;
    }
};

// Output rows [r0, r0 + M) += the tile's weights times the block's values (after rescaling
// them), for output columns [c0, c0 + V * N).
template <int N, int M, int V>
[[gnu::always_inline]] inline void accumulate_values(const TiledScratch<N>& scratch, int64_t dim, int64_t r0,
                                                     int64_t count, int64_t c0) {
    using F = typename Lanes<N>::F;
    constexpr int64_t kBlock = TiledScratch<N>::kBlockKeys;
    F acc[M][V];
    for (int m = 0; m < M; ++m) {
        for (int v = 0; v < V; ++v) acc[m][v] = load<F>(scratch.out + (r0 + m) * dim + c0 + v * N) * scratch.rescale[m];
    }
    for (int64_t u = 0; u < count; ++u) {
        const float* value = scratch.values + u * dim + c0;
        F values[V];
        for (int v = 0; v < V; ++v) values[v] = load<F>(value + v * N);
        for (int m = 0; m < M; ++m) {
            const float weight = scratch.weights[m * kBlock + u];
            for (int v = 0; v < V; ++v) acc[m][v] += weight * values[v];
        }
    }
    for (int m = 0; m < M; ++m) {
        for (int v = 0; v < V; ++v) std::memcpy(scratch.out + (r0 + m) * dim + c0 + v * N, &acc[m][v], sizeof(F));
    }
}

// Rows [r0, r0 + M) of an item against the block's keys [j0, j0 + count): scores, the online
// softmax's update of each row's maximum and sum, and the weighted values.
template <int N, int M>
[[gnu::always_inline]] inline void attend_tile(const Plan& p, const ItemRows& item, int64_t r0, int64_t j0,
                                               int64_t count, const TiledScratch<N>& scratch) {
    using F = typename Lanes<N>::F;
    using U = typename Lanes<N>::U;
    constexpr int64_t kBlock = TiledScratch<N>::kBlockKeys;
    constexpr float kLowest = -std::numeric_limits<float>::infinity();
    const int64_t dim = p.dim;
    const float* q[M];
    for (int m = 0; m < M; ++m) q[m] = item.q(r0 + m);
    F score[M][2] = {};
    for (int64_t d = 0; d < dim; ++d) {
        const F k0 = load<F>(scratch.keys + d * kBlock), k1 = load<F>(scratch.keys + d * kBlock + N);
        for (int m = 0; m < M; ++m) {  // (a scalar times a vector: broadcast, not 0 + q as F{} + q is)
            score[m][0] += q[m][d] * k0;
            score[m][1] += q[m][d] * k1;
        }
    }
    U lane;
    for (int l = 0; l < N; ++l) lane[l] = static_cast<uint32_t>(l);
    for (int m = 0; m < M; ++m) {
        const int64_t r = r0 + m;
        const KeyRange visible = visible_keys(p, item.s, item.token(r));
        F half[2];
        for (int h = 0; h < 2; ++h) {
            F x = score[m][h] * p.scale;
            if (p.softcap > 0.0f) {
                for (int l = 0; l < N; ++l) x[l] = p.softcap * std::tanh(x[l] / p.softcap);
            }
            // Key j0 + h * N + lane is visible when lo <= it <= hi: one unsigned comparison.
            const U offset = lane + static_cast<uint32_t>(j0 + h * N - visible.lo);
            const U keep = std::bit_cast<U>(offset <= static_cast<uint32_t>(visible.hi - visible.lo));
            half[h] = std::bit_cast<F>((std::bit_cast<U>(x) & keep) | (~keep & std::bit_cast<uint32_t>(kLowest)));
        }
        const float old_max = scratch.max[r];
        const float new_max = std::max(old_max, max_lanes<N>(half[0] > half[1] ? half[0] : half[1]));
        float* weights = scratch.weights + m * kBlock;
        if (new_max == kLowest) {  // nothing visible yet: weights 0, the row unchanged
            std::fill(weights, weights + kBlock, 0.0f);
            scratch.rescale[m] = 1.0f;
            continue;
        }
        const float rescale = std::exp(old_max - new_max);  // 0 while old_max is -inf
        const F e0 = exp_lanes<N>(half[0] - new_max), e1 = exp_lanes<N>(half[1] - new_max);
        std::memcpy(weights, &e0, sizeof e0);
        std::memcpy(weights + N, &e1, sizeof e1);
        scratch.sum[r] = scratch.sum[r] * rescale + sum_lanes<N>(e0 + e1);
        scratch.max[r] = new_max;
        scratch.rescale[m] = rescale;
    }
    constexpr int kOutVectors = N >= 16 ? 4 : 2;
    int64_t c0 = 0;
    for (; c0 + kOutVectors * N <= dim; c0 += kOutVectors * N)
        accumulate_values<N, M, kOutVectors>(scratch, dim, r0, count, c0);
    for (; c0 + N <= dim; c0 += N) accumulate_values<N, M, 1>(scratch, dim, r0, count, c0);
    for (int m = 0; m < M; ++m) {  // the last columns of a head_dim that is not a multiple of N
        float* out = scratch.out + (r0 + m) * dim;
        for (int64_t c = c0; c < dim; ++c) {
            float total = out[c] * scratch.rescale[m];
            for (int64_t u = 0; u < count; ++u) total += scratch.weights[m * kBlock + u] * scratch.values[u * dim + c];
            out[c] = total;
        }
    }
}

// out for tokens [t0, t1) of sequence s (all of them new) and the heads of kv head `kv_head`.
// scratch: tiled_scratch_floats(2N, dim, (t1 - t0) * group) floats.
template <class Kv, int N>
[[gnu::always_inline]] inline void attend_tiled_impl(const Plan& p, int32_t s, int64_t kv_head, int64_t t0, int64_t t1,
                                                     float* scratch_base) {
    constexpr int64_t kBlock = TiledScratch<N>::kBlockKeys;
    const int64_t dim = p.dim, rows = (t1 - t0) * p.group;
    const TiledScratch<N> scratch(dim, rows, scratch_base);
    const ItemRows item{&p, s, t0, kv_head};
    const SequenceRows<typename Kv::Elem> sequence(p, s, kv_head);
    std::fill(scratch.out, scratch.out + rows * dim, 0.0f);
    std::fill(scratch.max, scratch.max + rows, -std::numeric_limits<float>::infinity());
    std::fill(scratch.sum, scratch.sum + rows, 0.0f);
    // lo and hi never decrease from one token to the next.
    const int64_t first = visible_keys(p, s, t0).lo, last = visible_keys(p, s, t1 - 1).hi;
    for (int64_t j0 = first; j0 <= last; j0 += kBlock) {
        const int64_t count = std::min(kBlock, last + 1 - j0);
        widen_block<Kv, N>(sequence, dim, j0, count, scratch);
        for (int64_t r0 = 0; r0 < rows; r0 += kTileRows) {
            const int64_t r1 = std::min(rows, r0 + kTileRows);
            // Skip a tile that sees none of the block: its last token's keys end before it, or
            // its first token's begin after it.
            if (visible_keys(p, s, item.token(r1 - 1)).hi < j0 || visible_keys(p, s, item.token(r0)).lo >= j0 + count)
                continue;
            switch (r1 - r0) {
                case 1:
                    attend_tile<N, 1>(p, item, r0, j0, count, scratch);
                    break;
                case 2:
                    attend_tile<N, 2>(p, item, r0, j0, count, scratch);
                    break;
                case 3:
                    attend_tile<N, 3>(p, item, r0, j0, count, scratch);
                    break;
                case 4:
                    attend_tile<N, 4>(p, item, r0, j0, count, scratch);
                    break;
                case 5:
                    attend_tile<N, 5>(p, item, r0, j0, count, scratch);
                    break;
                default:
                    attend_tile<N, 6>(p, item, r0, j0, count, scratch);
                    break;
            }
        }
    }
    for (int64_t r = 0; r < rows; ++r) {
        const float inverse = scratch.sum[r] > 0.0f ? 1.0f / scratch.sum[r] : 0.0f;
        const float* o = scratch.out + r * dim;
        float* out = item.out(r);
        for (int64_t d = 0; d < dim; ++d) out[d] = o[d] * inverse;
    }
}

// The same code compiled for three instruction sets, chosen once from the CPU's features:
// the per-token kernel, the tiled one, and the lanes N the tiled one's scratch is sized for.
struct Kernels {
    void (*attend_heads)(const Plan&, int32_t s, int64_t t, int64_t h0, int64_t h1, float* scores);
    void (*attend_tiled)(const Plan&, int32_t s, int64_t kv_head, int64_t t0, int64_t t1, float* scratch);
    int lanes;
};

template <class Kv>
void attend_heads_baseline(const Plan& p, int32_t s, int64_t t, int64_t h0, int64_t h1, float* scores) {
    attend_heads_impl<Kv, 4>(p, s, t, h0, h1, scores);
}
template <class Kv>
void attend_tiled_baseline(const Plan& p, int32_t s, int64_t kv_head, int64_t t0, int64_t t1, float* scratch) {
    attend_tiled_impl<Kv, 4>(p, s, kv_head, t0, t1, scratch);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define TFX_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TFX_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c,prefer-vector-width=512")))
template <class Kv>
TFX_AVX2 void attend_heads_avx2(const Plan& p, int32_t s, int64_t t, int64_t h0, int64_t h1, float* scores) {
    attend_heads_impl<Kv, 8>(p, s, t, h0, h1, scores);
}
template <class Kv>
TFX_AVX2 void attend_tiled_avx2(const Plan& p, int32_t s, int64_t kv_head, int64_t t0, int64_t t1, float* scratch) {
    attend_tiled_impl<Kv, 8>(p, s, kv_head, t0, t1, scratch);
}
template <class Kv>
TFX_AVX512 void attend_heads_avx512(const Plan& p, int32_t s, int64_t t, int64_t h0, int64_t h1, float* scores) {
    attend_heads_impl<Kv, 16>(p, s, t, h0, h1, scores);
}
template <class Kv>
TFX_AVX512 void attend_tiled_avx512(const Plan& p, int32_t s, int64_t kv_head, int64_t t0, int64_t t1, float* scratch) {
    attend_tiled_impl<Kv, 16>(p, s, kv_head, t0, t1, scratch);
}
#undef TFX_AVX2
#undef TFX_AVX512
#endif

// The best the CPU runs, capped by TFX_CPU_ISA as the cpu backend's kernels are (avx2 picks
// the AVX2 code, sse4, ssse3 or portable the baseline; the backend rejects other names), so
// every variant can be tested on one machine.
template <class Kv>
Kernels select_kernels() {
#if defined(__x86_64__) && defined(__GNUC__)
    const char* cap_env = std::getenv("TFX_CPU_ISA");
    std::string cap = cap_env != nullptr ? cap_env : "";
    for (char& c : cap) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool baseline_only = cap == "sse4" || cap == "ssse3" || cap == "portable";
    __builtin_cpu_init();
    if (cap.empty() || cap == "avx512" || cap == "avx3") {
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl"))
            return {&attend_heads_avx512<Kv>, &attend_tiled_avx512<Kv>, 16};
    }
    if (!baseline_only && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        return {&attend_heads_avx2<Kv>, &attend_tiled_avx2<Kv>, 8};
    }
#endif
    return {&attend_heads_baseline<Kv>, &attend_tiled_baseline<Kv>, 4};
}

// Whether sequence s has enough new tokens to attend tiled.
bool attends_tiled(const Plan& p, int32_t s) {
    return p.seq_start[s + 1] - p.seq_start[s] >= kTiledMinTokens;
}

// The tiled sequences, in items of (kv head, run of tokens) of about kItemRows query rows;
// returns whether any token is left for the per-token path.
bool run_tiled(const Plan& p, const Kernels& kernels) {
    struct Item {
        int32_t s;
        int64_t kv_head, t0, t1;
    };
    // Reused: a decode step allocates nothing. (The workers must see the calling thread's list,
    // through this reference: by its own name each thread would see its own.)
    thread_local std::vector<Item> item_list;
    std::vector<Item>& items = item_list;
    items.clear();
    const int64_t tokens_per_item = std::max<int64_t>(1, kItemRows / p.group);
    int64_t tiled_tokens = 0;
    for (int32_t s = 0; s < p.num_seqs; ++s) {
        if (!attends_tiled(p, s)) continue;
        tiled_tokens += p.seq_start[s + 1] - p.seq_start[s];
        for (int64_t t0 = p.seq_start[s]; t0 < p.seq_start[s + 1]; t0 += tokens_per_item) {
            const int64_t t1 = std::min<int64_t>(t0 + tokens_per_item, p.seq_start[s + 1]);
            for (int64_t kv_head = 0; kv_head < p.kv_heads; ++kv_head) items.push_back({s, kv_head, t0, t1});
        }
    }
    if (items.empty()) return true;
    const int64_t scratch_floats = tiled_scratch_floats(2 * kernels.lanes, p.dim, tokens_per_item * p.group);
    const auto count = static_cast<int64_t>(items.size());
    // Last items first: a causal sequence's later tokens see the most keys.
    auto attend_item = [&](int64_t i, float* scratch) {
        const Item& item = items[static_cast<size_t>(count - 1 - i)];
        kernels.attend_tiled(p, item.s, item.kv_head, item.t0, item.t1, scratch);
    };
    if (!use_threads(p.work >= kParallelWork && count > 1)) {
        float* scratch = thread_scores(scratch_floats);
        for (int64_t i = 0; i < count; ++i) attend_item(i, scratch);
    } else {
        TFX_OMP(parallel) {
            float* scratch = thread_scores(scratch_floats);
            TFX_OMP(for schedule(dynamic, 1))
            for (int64_t i = 0; i < count; ++i) attend_item(i, scratch);
        }
    }
    return tiled_tokens < p.tokens;
}

// Sequences with many new tokens go tiled (run_tiled); the other tokens in work items of
// (token, kv head, slice of its group's heads). Heads of a group go together (up to
// kMaxHeadsTogether) unless that leaves threads idle, as when decoding one sequence.
template <class Kv>
void run(const Plan& p) {
    static const Kernels kernels = select_kernels<Kv>();
    if (p.tokens == 0 || !run_tiled(p, kernels)) return;
    int64_t threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    int64_t together = std::min(p.group, kMaxHeadsTogether);
    auto slices = [&](int64_t size) { return (p.group + size - 1) / size; };
    while (together > 1 && p.tokens * p.kv_heads * slices(together) < 2 * threads) together = (together + 1) / 2;
    const int64_t per_group = slices(together);
    const int64_t items = p.tokens * p.kv_heads * per_group;
    const int64_t chunk = std::max<int64_t>(1, items / (16 * threads));
    auto attend_item = [&](int64_t item, int32_t& s, float* scores) {
        const int64_t t = item / (p.kv_heads * per_group), rest = item % (p.kv_heads * per_group);
        const int64_t kvh = rest / per_group, slice = rest % per_group;
        const int64_t h0 = kvh * p.group + slice * together;
        const int64_t h1 = std::min(h0 + together, (kvh + 1) * p.group);
        // The sequence owning token t (seq_start is non-decreasing; empty sequences own none).
        if (t < p.seq_start[s] || t >= p.seq_start[s + 1]) {
            s = static_cast<int32_t>(std::upper_bound(p.seq_start, p.seq_start + p.num_seqs + 1, t) - p.seq_start) - 1;
        }
        if (!attends_tiled(p, s)) kernels.attend_heads(p, s, t, h0, h1, scores);
    };
    if (!use_threads(p.work >= kParallelWork && items > 1)) {
        float* scores = thread_scores(together * p.max_keys);
        int32_t s = 0;
        for (int64_t item = 0; item < items; ++item) attend_item(item, s, scores);
        return;
    }
    TFX_OMP(parallel) {
        float* scores = thread_scores(together * p.max_keys);
        int32_t s = 0;
        TFX_OMP(for schedule(dynamic, chunk))
        for (int64_t item = 0; item < items; ++item) attend_item(item, s, scores);
    }
}

template <class Kv>
void execute(const Plan& p) {
    if (p.cache_k != nullptr) write_cache<Kv>(p);
    run<Kv>(p);
}

class EagerAttention {
  public:
    explicit EagerAttention(const tfx_host_services*) {}

    void attend(const tfx_attention_args* args) {
        const Plan p = make_plan(args);
        if (p.cache_k == nullptr) return execute<F32>(p);  // keys and values straight from k and v
        switch (p.kv) {
            case KvType::f32:
                return execute<F32>(p);
            case KvType::bf16:
                return execute<BF16>(p);
            case KvType::f16:
                return execute<F16>(p);
        }
    }
};

const tfx_attention_table kTable = {sizeof(tfx_attention_table), tfx::sdk::method<&EagerAttention::attend>};

}  // namespace

TFX_PLUGIN_EXPORT(EagerAttention, kTable)
