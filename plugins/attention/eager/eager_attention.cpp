// Eager attention, the reference (ABI 2.0): over a ragged batch of sequences and a paged KV
// cache. Each new token's key and value are first written to its cache slot (narrowed to the
// cache's dtype), then every token attends over its sequence's positions 0..p, read through
// the block table: scores = scale · q·k in f32 (optionally soft-capped), masked (causal,
// sliding window), softmax in f32 with the maximum subtracted, times v. Grouped-query heads
// share kv head h / (heads / kv_heads).
//
// The kernel runs inside the backend's run_kernel, so the tensors' device memory (the block
// table and slot mapping included) is addressable here. Two kernels: a sequence with 16 new
// tokens or more (a prompt) goes to tiled.h's, in items of (kv head, run of tokens) whose
// query rows share every key and value block; other tokens (decode steps) to per_token.h's,
// in items of (token, heads of one kv head, or of several where rows are narrow), the heads
// sharing a kv head reading each cache row once. Both run on f32 vectors (AVX-512, AVX2 or
// SSE, chosen once from the CPU), widening bf16/f16 rows as they are read, with OpenMP over
// the items. Scratch is per thread and reused, so a warm call allocates nothing. A token's
// result is computed the same way however the work is split between threads.
//
// This file holds the plugin, the cache writes, the threads and the choice of kernels.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "attention_plan.h"
#include "lanes.h"
#include "per_token.h"
#include "tfx/sdk/plugin.hpp"
#include "tiled.h"

#define TFX_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define TFX_OMP(x) TFX_PRAGMA(omp x)
#else
#define TFX_OMP(x)
#endif

namespace {

using namespace tfx::eager_attention;

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
    // The rows of k and v: the queries' tokens, or with cross-attention the keys' batch's.
    if (!use_threads(p.key_tokens * row >= 16384)) {
        for (int64_t t = 0; t < p.key_tokens; ++t) write(t);
        return;
    }
    TFX_OMP(parallel for schedule(static))
    for (int64_t t = 0; t < p.key_tokens; ++t) write(t);
}

// Scratch of each thread, grown to the longest sequence seen; never shrinks.
float* thread_scores(int64_t n) {
    thread_local std::vector<float> scores;
    if (scores.size() < static_cast<size_t>(n)) scores.resize(static_cast<size_t>(n));
    return scores.data();
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
    // The tiled kernel has no relative position terms (ABI 2.6, 2.7) yet.
    return p.seq_start[s + 1] - p.seq_start[s] >= kTiledMinTokens && p.relative_bias == nullptr &&
           p.relative_columns == nullptr;
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
    const int64_t tile_depth = kernels.lanes >= 16 ? kTileDepth<16> : kTileDepth<8>;
    const int64_t scratch_floats = TiledLayout(p.dim, tokens_per_item * p.group, kernels.lanes, tile_depth).floats;
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

// The heads of a per-token item: [h0, h1).
struct HeadRange {
    int64_t h0, h1;
};

// How the per-token path splits a token's heads into items. Heads of a group go together (up
// to kMaxHeadsTogether) unless that leaves threads idle, as when decoding one sequence; with
// narrow cache rows (per_token.h's kNarrowHeadBytes) whole groups of consecutive kv heads go
// together, so that an item reads whole rows.
void split_heads(const Plan& p, int64_t elem_bytes, int64_t threads, std::vector<HeadRange>& ranges) {
    ranges.clear();
    const bool narrow = p.dim * elem_bytes < kNarrowHeadBytes;
    int64_t kv_together = narrow ? std::min(p.kv_heads, kMaxHeadsTogether / p.group) : 1;
    while (kv_together > 1 && p.tokens * ((p.kv_heads + kv_together - 1) / kv_together) < threads)
        kv_together = (kv_together + 1) / 2;
    if (kv_together > 1) {
        for (int64_t kv = 0; kv < p.kv_heads; kv += kv_together)
            ranges.push_back({kv * p.group, std::min(kv + kv_together, p.kv_heads) * p.group});
        return;
    }
    int64_t together = std::min(p.group, kMaxHeadsTogether);
    auto slices = [&](int64_t size) { return (p.group + size - 1) / size; };
    while (together > 1 && p.tokens * p.kv_heads * slices(together) < 2 * threads) together = (together + 1) / 2;
    for (int64_t kv = 0; kv < p.kv_heads; ++kv) {
        for (int64_t h0 = kv * p.group; h0 < (kv + 1) * p.group; h0 += together)
            ranges.push_back({h0, std::min(h0 + together, (kv + 1) * p.group)});
    }
}

// Sequences with many new tokens go tiled (run_tiled); the other tokens in work items of
// (token, heads of split_heads).
template <class Kv>
void run(const Plan& p) {
    static const Kernels kernels = select_kernels<Kv>();
    if (p.tokens == 0 || !run_tiled(p, kernels)) return;
    int64_t threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    // Reused: a decode step allocates nothing (and the workers read the caller's list).
    thread_local std::vector<HeadRange> range_list;
    std::vector<HeadRange>& ranges = range_list;
    split_heads(p, static_cast<int64_t>(sizeof(typename Kv::Elem)), threads, ranges);
    const auto per_token = static_cast<int64_t>(ranges.size());
    int64_t together = 0;
    for (const HeadRange& r : ranges) together = std::max(together, r.h1 - r.h0);
    const int64_t items = p.tokens * per_token;
    const int64_t chunk = std::max<int64_t>(1, items / (16 * threads));
    auto attend_item = [&](int64_t item, int32_t& s, float* scores) {
        const int64_t t = item / per_token;
        const HeadRange& heads = ranges[static_cast<size_t>(item % per_token)];
        // The sequence owning token t (seq_start is non-decreasing; empty sequences own none).
        if (t < p.seq_start[s] || t >= p.seq_start[s + 1]) {
            s = static_cast<int32_t>(std::upper_bound(p.seq_start, p.seq_start + p.num_seqs + 1, t) - p.seq_start) - 1;
        }
        if (!attends_tiled(p, s)) kernels.attend_heads(p, s, t, heads.h0, heads.h1, scores);
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
