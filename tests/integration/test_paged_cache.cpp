// The execution contract's serving half: continuous batching over the paged KV cache
// (sequences join and leave a running batch, each getting what it would get alone), block
// sharing with copy on write, KV dtypes, and the cache's memory against a dense one.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/test_data.h"
#include "core/forward_call.h"
#include "core/generation.h"
#include "core/safetensors.h"
#include "registry/auto_model.h"

namespace {

float max_abs_diff(std::span<const float> a, std::span<const float> b) {
    EXPECT_EQ(a.size(), b.size());
    float d = 0.0f;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::abs(a[i] - b[i]));
    return d;
}

// max |a - b| relative to the logits' scale (max |b|, at least 1): batching changes how many rows
// a matmul has, and the backend's kernels sum in a different order for more rows (a few ulp).
float max_rel_diff(std::span<const float> a, std::span<const float> b) {
    float scale = 1.0f;
    for (float v : b) scale = std::max(scale, std::abs(v));
    return max_abs_diff(a, b) / scale;
}
float g_worst_batched_abs = 0.0f;

// Each step's logits and token of one prompt generated alone.
struct Solo {
    std::vector<int32_t> tokens;
    std::vector<std::vector<float>> logits;
};
Solo run_alone(tfx::ModelSession& session, const std::vector<int32_t>& prompt, int64_t max_new) {
    tfx::Generator g(session);
    tfx::GenerationConfig greedy;
    greedy.ignore_eos = true;
    const auto id = g.add(prompt, greedy, max_new);
    Solo solo;
    while (!g.idle()) {
        for (const auto& e : g.step()) {
            solo.tokens.push_back(e.token);
            const auto row = g.last_logits(id);
            solo.logits.emplace_back(row.begin(), row.end());
        }
    }
    return solo;
}

int64_t blocks_for(int64_t positions, int64_t block_size) {
    return (positions + block_size - 1) / block_size;
}

}  // namespace

TEST(ContinuousBatching, SequencesJoinAndLeaveARunningBatch) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    struct Arrival {
        int64_t step;
        std::vector<int32_t> prompt;
        int64_t max_new;
    };
    const std::vector<Arrival> arrivals = {
        {0, {1, 80, 147, 201, 282, 57}, 12},
        {0, {1, 300}, 5},
        {3, {1, 80, 147, 201, 282, 57, 99, 12, 400, 3, 17, 250, 8, 60, 61, 62, 63, 9}, 20},
        {6, {1, 42, 43}, 9},
        {9, {1, 7, 7, 7, 7}, 6}};
    std::vector<Solo> expected;
    for (const auto& a : arrivals) expected.push_back(run_alone(*session, a.prompt, a.max_new));

    tfx::Generator g(*session);
    tfx::GenerationConfig greedy;
    greedy.ignore_eos = true;
    std::map<tfx::Generator::RequestId, size_t> which;
    std::vector<std::vector<int32_t>> got(arrivals.size());
    std::vector<int64_t> length(arrivals.size(), 0);  // positions each live sequence holds
    std::vector<bool> live(arrivals.size(), false);
    int64_t peak_needed = 0;
    for (int64_t step = 0; step < 64; ++step) {
        for (size_t i = 0; i < arrivals.size(); ++i) {
            if (arrivals[i].step != step) continue;
            which[g.add(arrivals[i].prompt, greedy, arrivals[i].max_new)] = i;
            live[i] = true;
        }
        if (g.idle()) break;
        for (const auto& e : g.step()) {
            const size_t i = which.at(e.request);
            const size_t t = got[i].size();
            got[i].push_back(e.token);
            ASSERT_LT(t, expected[i].logits.size());
            EXPECT_LE(max_rel_diff(g.last_logits(e.request), expected[i].logits[t]), 1e-5f)
                << "sequence " << i << " step " << t;
            g_worst_batched_abs =
                std::max(g_worst_batched_abs, max_abs_diff(g.last_logits(e.request), expected[i].logits[t]));
            length[i] = static_cast<int64_t>(arrivals[i].prompt.size() + t);
            if (e.finished) live[i] = false;
        }
        // The cache holds exactly the blocks of the live sequences: nothing leaks, retired
        // sequences' blocks are free again.
        int64_t needed = 0;
        for (size_t i = 0; i < arrivals.size(); ++i) {
            if (live[i]) needed += blocks_for(length[i], g.cache().block_size());
        }
        EXPECT_EQ(g.cache().blocks_in_use(), needed) << "after step " << step;
        peak_needed = std::max(peak_needed, needed);
    }
    for (size_t i = 0; i < arrivals.size(); ++i) EXPECT_EQ(got[i], expected[i].tokens) << "sequence " << i;
    std::cout << "continuous batching vs alone: max |dlogit| = " << g_worst_batched_abs << '\n';
    ::testing::Test::RecordProperty("max_abs_dlogit_batched", std::to_string(g_worst_batched_abs));
    EXPECT_EQ(g.cache().live_sequences(), 0);
    EXPECT_EQ(g.cache().blocks_in_use(), 0);
    // Freed blocks were reused: the pools never grew past the peak need (plus one growth step).
    EXPECT_LE(g.cache().blocks_allocated(), peak_needed + peak_needed / 2 + 1);
}

TEST(PagedKvCache, ForkSharesBlocksAndCopiesOnWrite) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    auto cache = session->make_cache(4);
    tfx::ForwardCall call(*session, cache.get());
    const std::vector<int32_t> prompt = {1, 80, 147, 201, 282, 57};  // 1.5 blocks of 4
    const auto a = cache->add();
    call.run({.ids = prompt, .cache_seq = a});
    const auto b = cache->fork(a);
    ASSERT_EQ(cache->blocks(b).size(), 2u);
    EXPECT_EQ(cache->blocks_in_use(), 2) << "a fork copies nothing";
    EXPECT_EQ(cache->refcount(cache->blocks(a)[1]), 2);

    // b writes position 6 into the shared half-full block: it gets its own copy first.
    const int32_t next = 99;
    const auto out_b = call.run({.ids = std::span(&next, 1), .cache_seq = b});
    const std::vector<float> from_b(out_b.begin(), out_b.end());
    EXPECT_EQ(cache->blocks(a)[0], cache->blocks(b)[0]) << "the full first block stays shared";
    EXPECT_NE(cache->blocks(a)[1], cache->blocks(b)[1]) << "the written block was copied";
    EXPECT_EQ(cache->blocks_in_use(), 3);
    // a continues unharmed by b's write, and both equal an unforked run.
    const auto out_a = call.run({.ids = std::span(&next, 1), .cache_seq = a});
    const std::vector<float> from_a(out_a.begin(), out_a.end());
    std::vector<int32_t> full = prompt;
    full.push_back(next);
    tfx::ForwardCall fresh(*session);
    const auto reference = fresh.run({.ids = full});  // the last position's logits
    EXPECT_LE(max_abs_diff(from_a, reference), 1e-5f);
    EXPECT_LE(max_abs_diff(from_b, reference), 1e-5f);
    cache->release(a);
    cache->release(b);
    EXPECT_EQ(cache->blocks_in_use(), 0);
}

TEST(PagedKvCache, TruncateForgetsRejectedPositionsAndTheirBlocks) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    auto cache = session->make_cache(4);
    tfx::ForwardCall call(*session, cache.get());
    const std::vector<int32_t> prompt = {1, 80, 147, 201, 282, 57};
    const std::vector<int32_t> rejected = {5, 6, 7, 8};  // positions 6..9: into a third block
    const auto seq = cache->add();
    call.run({.ids = prompt, .cache_seq = seq});
    call.run({.ids = rejected, .cache_seq = seq});
    EXPECT_EQ(cache->blocks_in_use(), 3);
    cache->truncate(seq, 6);
    EXPECT_EQ(cache->length(seq), 6);
    EXPECT_EQ(cache->blocks_in_use(), 2);
    // Writing after the cut gives what a run that never saw the rejected tokens gives.
    const int32_t next = 99;
    const auto out = call.run({.ids = std::span(&next, 1), .cache_seq = seq});
    const std::vector<float> got(out.begin(), out.end());
    std::vector<int32_t> full = prompt;
    full.push_back(next);
    tfx::ForwardCall fresh(*session);
    EXPECT_LE(max_abs_diff(got, fresh.run({.ids = full})), 1e-5f);
    EXPECT_THROW(cache->truncate(seq, 8), tfx::sdk::Error) << "past the cached length";
}

// bf16 and f16 KV caches: on every causal-LM golden (the tiny families and TinyStories), greedy
// tokens agree with the f32 cache, unless the f32 run's top two logits are within the caches'
// logit difference of each other at the step where they part (a near-tie); the largest logit
// difference over prefill and decode is reported (property max_abs_dlogit_<dtype>).
TEST(PagedKvCache, HalfPrecisionCachesAgreeWithF32) {
    TFX_TEST_DATA_OR_SKIP(data, "golden");
    const std::vector<std::pair<std::string, std::string>> goldens = {
        {"models/tinystories-656k", "golden/tinystories-656k.json"},
        {"tiny/llama", "golden/tiny/llama.json"},
        {"tiny/llama3_tied", "golden/tiny/llama3_tied.json"},
        {"tiny/qwen2", "golden/tiny/qwen2.json"},
        {"tiny/qwen3", "golden/tiny/qwen3.json"},
        {"tiny/qwen3_moe", "golden/tiny/qwen3_moe.json"},
        {"tiny/mistral", "golden/tiny/mistral.json"},
        {"tiny/gemma", "golden/tiny/gemma.json"},
        {"tiny/gemma2", "golden/tiny/gemma2.json"},
        {"tiny/gemma3", "golden/tiny/gemma3.json"},
        {"tiny/phi3", "golden/tiny/phi3.json"},
        {"tiny/gpt2", "golden/tiny/gpt2.json"},
        {"tiny/gpt_neox", "golden/tiny/gpt_neox.json"}};
    const std::filesystem::path root = data.parent_path();
    for (const char* dtype : {"bf16", "f16"}) {
        float worst = 0.0f;
        for (const auto& [model, golden_file] : goldens) {
            SCOPED_TRACE(model + " " + dtype);
            std::ifstream in(root / golden_file);
            const nlohmann::json golden = nlohmann::json::parse(in);
            auto f32 = tfx::AutoModel::from_pretrained(root / model, {});
            tfx::LoadOptions options;
            options.kv_dtype = dtype;
            auto half = tfx::AutoModel::from_pretrained(root / model, options);
            float model_worst = 0.0f;
            int parted = 0;
            for (const auto& p : golden["prompts"]) {
                const auto prompt = p["input_ids"].get<std::vector<int32_t>>();
                const int64_t steps = p["greedy"]["max_new_tokens"].get<int64_t>();
                const Solo a = run_alone(*f32, prompt, steps), b = run_alone(*half, prompt, steps);
                float prompt_worst = 0.0f;
                for (size_t t = 0; t < std::min(a.tokens.size(), b.tokens.size()); ++t) {
                    prompt_worst = std::max(prompt_worst, max_abs_diff(a.logits[t], b.logits[t]));
                    if (a.tokens[t] == b.tokens[t]) continue;
                    std::vector<float> sorted = a.logits[t];
                    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
                    EXPECT_LE(sorted[0] - sorted[1], 2 * prompt_worst) << "tokens part at step " << t;
                    ++parted;
                    break;
                }
                model_worst = std::max(model_worst, prompt_worst);
            }
            std::cout << "KV " << dtype << " vs f32, " << model << ": max |dlogit| " << model_worst << ", " << parted
                      << " of " << golden["prompts"].size() << " prompts part at a near-tie\n";
            worst = std::max(worst, model_worst);
        }
        std::cout << "KV " << dtype << " vs f32 over " << goldens.size() << " goldens: max |dlogit| = " << worst
                  << '\n';
        ::testing::Test::RecordProperty(std::string("max_abs_dlogit_") + dtype, std::to_string(worst));
        EXPECT_GT(worst, 0.0f) << "the cache really is " << dtype;
    }
    tfx::LoadOptions bad;
    bad.kv_dtype = "f8";
    try {
        tfx::AutoModel::from_pretrained(root / "models/tinystories-656k", bad);
        ADD_FAILURE() << "an unknown KV dtype was accepted";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("unknown KV cache dtype 'f8' (f32, bf16, f16)"), std::string::npos)
            << e.what();
    }
}

// Weight formats: a format the backend lists packs and runs (bf16 weights from an f32
// checkpoint agree with f32 to bf16 precision); others are refused, naming the part that is
// missing (the backend's kernels, or any quantizer producing the format) and what it offers. A model with random f32
// weights: tinystories' weights are bf16-exact, so packing them changes nothing a kernel that sums in the same order
// could show.
TEST(WeightFormat, TheBackendsFormatsRunAndOthersAreRefused) {
    TFX_TEST_DATA_OR_SKIP(model, "tiny/llama");
    auto f32 = tfx::AutoModel::from_pretrained(model, {});
    tfx::LoadOptions as_bf16;
    as_bf16.weight_format = "bf16";
    auto bf16 = tfx::AutoModel::from_pretrained(model, as_bf16);
    const std::vector<int32_t> prompt = {1, 80, 147, 201, 282, 57};
    tfx::ForwardCall a(*f32), b(*bf16);
    const auto la = a.run({.ids = prompt});
    const std::vector<float> reference(la.begin(), la.end());
    const float d = max_rel_diff(b.run({.ids = prompt}), reference);
    EXPECT_GT(d, 0.0f) << "the weights really were packed as bf16";
    EXPECT_LT(d, 0.05f);
    // The bytes held (and read a token, tfx bench's figure) are the linear weights' at 2 bytes.
    uint64_t linear_bytes = 0;
    const auto checkpoint = tfx::safetensors::Checkpoint::open(model);
    for (const std::string& name : checkpoint.names()) {
        const auto& info = *checkpoint.find(name)->info;
        if (info.shape.size() == 2 && name != "model.embed_tokens.weight") linear_bytes += info.end - info.begin;
    }
    EXPECT_EQ(f32->weight_usage().bytes - bf16->weight_usage().bytes, linear_bytes / 2);
    // A format the installed quantizer decodes (GGUF K-quants) but the backend has no kernel for,
    // and one nothing provides.
    for (const auto& [format, expected] :
         {std::pair{"q5_k",
                    "backend 'cpu' does not compute on weight format 'q5_k' (its weight_formats: f32, bf16, "
                    "f16, q8_0, q4_0, q4_1, q4_k)"},
          std::pair{"iq2_xxs",
                    "weight format 'iq2_xxs' is not known to any installed quantizer plugin (they encode or decode: "
                    "q2_k, q3_k, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0)"}}) {
        tfx::LoadOptions options;
        options.weight_format = format;
        try {
            tfx::AutoModel::from_pretrained(model, options);
            ADD_FAILURE() << "weight format " << format << " was accepted";
        } catch (const std::exception& e) {
            EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
        }
    }
}

// 8 sequences of mixed lengths: the paged cache holds their blocks only; a dense cache (today's
// ABI 1 layout: every sequence reserved at the longest length) is reported beside it.
TEST(PagedKvCache, HoldsOnlyTheBlocksInUse) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    auto cache = session->make_cache(16);
    tfx::ForwardCall call(*session, cache.get());
    const std::vector<int64_t> lengths = {5, 17, 40, 3, 100, 64, 9, 200};
    std::vector<tfx::SequenceInput> inputs;
    std::vector<std::vector<int32_t>> prompts;
    for (int64_t n : lengths) {
        std::vector<int32_t> ids(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>(1 + (i * 37) % 500);
        prompts.push_back(std::move(ids));
    }
    for (const auto& p : prompts) inputs.push_back({.ids = p, .cache_seq = cache->add()});
    call.run(inputs);
    int64_t blocks = 0, longest = 0;
    for (int64_t n : lengths) blocks += blocks_for(n, 16), longest = std::max(longest, n);
    EXPECT_EQ(cache->blocks_in_use(), blocks);
    const tfx_model_info& info = session->info();
    const int64_t per_position = int64_t{2} * info.num_layers * info.num_kv_heads * info.head_dim * 4;
    const int64_t paged = cache->blocks_in_use() * cache->block_bytes();
    const int64_t dense = static_cast<int64_t>(lengths.size()) * longest * per_position;
    std::cout << "KV bytes for 8 sequences (lengths 3..200): paged " << paged << " (allocated "
              << cache->blocks_allocated() * cache->block_bytes() << "), dense " << dense << '\n';
    ::testing::Test::RecordProperty("kv_bytes_paged", std::to_string(paged));
    ::testing::Test::RecordProperty("kv_bytes_dense", std::to_string(dense));
    EXPECT_LT(paged, dense / 2);
}
