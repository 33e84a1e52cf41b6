// The eager attention plugin's kernels alone, loaded from its library as the attention tests
// load it, on a paged f32 cache already holding the context: a prompt (the tiled kernel) and a
// decode step at long contexts (the per-token kernel), for the SmolLM-135M shape (9 heads, 3
// kv heads, head_dim 64) and tinystories-656k's (8, 4, 16), one layer. Reports the
// multiply-adds of q·k and of the weights times v, as GFLOP/s, beside the FMA peak measured
// in the same run (BM_FmaPeak), and for decode the cache bytes read a second.
//   bench_attention --benchmark_filter=... ; OMP_NUM_THREADS picks the threads.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "apps/tfx/roofline.h"
#include "tests/attention/attention_plugin.h"
#include "tfx/sdk/tensor.hpp"
#include "tfx/tfx.h"

namespace {

using tfx::sdk::kF32;
using tfx::sdk::kI32;
using tfx::sdk::View;

constexpr int32_t kBlockSize = 16;

// One sequence whose first `context` positions are in the cache, and `fresh` new tokens.
struct Call {
    int64_t heads, kv_heads, dim;
    std::vector<float> q, k, v, out, k_pool, v_pool;
    std::vector<int32_t> seq_start, context_len, positions, block_table, slots;
    View q_view, k_view, v_view, out_view, k_pool_view, v_pool_view, table_view, slots_view;
    tfx_kv_layer cache{};
    tfx_batch batch{};
    tfx_attention_args args{};

    Call(int64_t heads_, int64_t kv_heads_, int64_t dim_, int64_t context, int64_t fresh)
        : heads(heads_), kv_heads(kv_heads_), dim(dim_) {
        std::mt19937 rng(1);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        auto fill = [&](std::vector<float>& values, int64_t n) {
            values.resize(static_cast<size_t>(n));
            for (float& x : values) x = u(rng);
        };
        const int64_t total = context + fresh, blocks = (total + kBlockSize - 1) / kBlockSize;
        fill(q, fresh * heads * dim);
        fill(k, fresh * kv_heads * dim);
        fill(v, fresh * kv_heads * dim);
        fill(k_pool, blocks * kBlockSize * kv_heads * dim);
        fill(v_pool, blocks * kBlockSize * kv_heads * dim);
        out.assign(q.size(), 0.0f);
        seq_start = {0, static_cast<int32_t>(fresh)};
        context_len = {static_cast<int32_t>(context)};
        for (int64_t b = 0; b < blocks; ++b) block_table.push_back(static_cast<int32_t>(b));
        for (int64_t i = 0; i < fresh; ++i) {
            positions.push_back(static_cast<int32_t>(context + i));
            slots.push_back(static_cast<int32_t>(context + i));  // block b holds positions 16b..: slot = position
        }
        q_view = View(q.data(), kF32, {fresh, heads, dim});
        k_view = View(k.data(), kF32, {fresh, kv_heads, dim});
        v_view = View(v.data(), kF32, {fresh, kv_heads, dim});
        out_view = View(out.data(), kF32, {fresh, heads, dim});
        k_pool_view = View(k_pool.data(), kF32, {blocks, kBlockSize, kv_heads, dim});
        v_pool_view = View(v_pool.data(), kF32, {blocks, kBlockSize, kv_heads, dim});
        table_view = View(block_table.data(), kI32, {1, blocks});
        slots_view = View(slots.data(), kI32, {fresh});
        cache = {k_pool_view.get(), v_pool_view.get()};
        batch.struct_size = sizeof(tfx_batch);
        batch.num_tokens = static_cast<int32_t>(fresh);
        batch.num_seqs = 1;
        batch.block_size = kBlockSize;
        batch.max_blocks_per_seq = static_cast<int32_t>(blocks);
        batch.max_context_len = static_cast<int32_t>(total);
        batch.seq_start = seq_start.data();
        batch.context_len = context_len.data();
        batch.positions = positions.data();
        batch.block_table = table_view.get();
        batch.slot_mapping = slots_view.get();
        args.struct_size = sizeof(tfx_attention_args);
        args.causal = 1;
        args.q = q_view.get();
        args.k = k_view.get();
        args.v = v_view.get();
        args.out = out_view.get();
        args.batch = &batch;
        args.cache = &cache;
        args.scale = 1.0f / std::sqrt(static_cast<float>(dim));
    }
};

// args: heads, kv_heads, head_dim, context, new tokens.
void BM_Attention(benchmark::State& state) {
    const int64_t heads = state.range(0), kv_heads = state.range(1), dim = state.range(2);
    const int64_t context = state.range(3), fresh = state.range(4);
    Call call(heads, kv_heads, dim, context, fresh);
    const auto& plugin = attention_test::plugin("EagerAttention");
    std::string message;
    for (auto _ : state) {
        if (plugin.attend(call.args, &message) != TFX_OK) {
            state.SkipWithError(message.c_str());
            break;
        }
        benchmark::DoNotOptimize(call.out.data());
    }
    // Keys each new token sees (causal), times heads x head_dim, twice (scores and values).
    double keys = 0.0;
    for (int64_t i = 0; i < fresh; ++i) keys += static_cast<double>(context + i + 1);
    const double flops = 2.0 * 2.0 * keys * static_cast<double>(heads * dim);
    state.counters["GFLOP/s"] =
        benchmark::Counter(flops * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
    // The cache rows a step reads once (keys and values, f32): a decode step's memory traffic.
    const double bytes = 2.0 * static_cast<double>((context + fresh) * kv_heads * dim) * 4.0;
    state.counters["cache GB/s"] =
        benchmark::Counter(bytes * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
    state.counters["threads"] = omp_get_max_threads();
}

void BM_FmaPeak(benchmark::State& state) {
    for (auto _ : state) {
        state.counters["fma_GFLOPs"] = tfx::cli::measure_roofline(omp_get_max_threads()).fma_gflop_per_s;
    }
}

// Prompts (the tiled kernel): SmolLM-135M at 128, 512 and 2048 tokens; tinystories at 512.
BENCHMARK(BM_Attention)
    ->ArgNames({"heads", "kv", "dim", "context", "new"})
    ->Args({9, 3, 64, 0, 128})
    ->Args({9, 3, 64, 0, 512})
    ->Args({9, 3, 64, 0, 2048})
    ->Args({8, 4, 16, 0, 512})
    ->UseRealTime();
// Decode steps (the per-token kernel) at 2000 and 4000 positions.
BENCHMARK(BM_Attention)
    ->ArgNames({"heads", "kv", "dim", "context", "new"})
    ->Args({9, 3, 64, 2000, 1})
    ->Args({9, 3, 64, 4000, 1})
    ->Args({8, 4, 16, 2000, 1})
    ->Args({8, 4, 16, 4000, 1})
    ->UseRealTime();
BENCHMARK(BM_FmaPeak)->Iterations(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
