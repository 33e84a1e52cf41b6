// Prefix caching in the paged KV cache: prompts that begin alike share the blocks of their
// common full blocks, the result equals computing the whole prompt, the last prompt token is
// always computed, and indexed blocks nobody holds give their memory back before the pools grow.
#include <algorithm>
#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "../unit/test_data.h"
#include "core/forward_call.h"
#include "core/generation.h"
#include "registry/auto_model.h"

namespace {

float max_abs_diff(std::span<const float> a, std::span<const float> b) {
    EXPECT_EQ(a.size(), b.size());
    float d = 0.0f;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::abs(a[i] - b[i]));
    return d;
}

std::vector<int32_t> ids(int32_t first, size_t count) {
    std::vector<int32_t> out(count);
    for (size_t i = 0; i < count; ++i) out[i] = 1 + (first + static_cast<int32_t>(i) * 37) % 500;
    return out;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// Runs `prompt` through `call` from what the cache already holds, then publishes it.
std::vector<float> prefill(tfx::PagedKvCache& cache, tfx::ForwardCall& call, tfx::PagedKvCache::SeqId seq,
                           const std::vector<int32_t>& prompt) {
    const auto cached = static_cast<size_t>(cache.length(seq));
    const auto out = call.run({.ids = std::span(prompt).subspan(cached), .cache_seq = seq});
    std::vector<float> logits(out.begin(), out.end());
    cache.publish(seq, prompt);
    return logits;
}

}  // namespace

TEST(PrefixCache, SharesFullBlocksAndMatchesAFullPrefill) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    auto cache = session->make_cache(4, /*prefix_caching=*/true);
    tfx::ForwardCall call(*session, cache.get());
    tfx::ForwardCall fresh(*session);

    const std::vector<int32_t> system = ids(3, 10);  // 2.5 blocks of 4
    const auto first_prompt = concat(system, ids(50, 4));
    const auto a = cache->add(first_prompt);
    EXPECT_EQ(cache->length(a), 0) << "an empty index has nothing to share";
    prefill(*cache, call, a, first_prompt);
    EXPECT_EQ(cache->prefix_stats().cached_blocks, 3) << "3 full blocks of 14 tokens";

    // Same 10 tokens, then others: the 2 full blocks inside the common part are shared, the
    // third (tokens 8..11) differs in its last two tokens and is computed.
    const auto second_prompt = concat(system, ids(90, 7));
    const auto b = cache->add(second_prompt);
    ASSERT_EQ(cache->length(b), 8);
    EXPECT_EQ(cache->blocks(b)[0], cache->blocks(a)[0]);
    EXPECT_EQ(cache->blocks(b)[1], cache->blocks(a)[1]);
    EXPECT_EQ(cache->refcount(cache->blocks(a)[0]), 2);
    const auto shared = prefill(*cache, call, b, second_prompt);
    EXPECT_LE(max_abs_diff(shared, fresh.run({.ids = second_prompt})), 1e-5f);
    const auto stats = cache->prefix_stats();
    EXPECT_EQ(stats.queried_tokens, static_cast<int64_t>(first_prompt.size() + second_prompt.size()));
    EXPECT_EQ(stats.hit_tokens, 8);

    // Decoding on from a shared prefix stays equal to a fresh run of the whole context.
    const int32_t next = 77;
    const auto step = call.run({.ids = std::span(&next, 1), .cache_seq = b});
    const std::vector<float> decoded(step.begin(), step.end());
    EXPECT_LE(max_abs_diff(decoded, fresh.run({.ids = concat(second_prompt, {next})})), 1e-5f);
    cache->release(a);
    cache->release(b);
    EXPECT_EQ(cache->blocks_in_use(), 0);
}

TEST(PrefixCache, AlwaysComputesThePromptsLastToken) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    auto cache = session->make_cache(4, true);
    tfx::ForwardCall call(*session, cache.get());
    const auto prompt = ids(7, 12);  // exactly 3 blocks
    const auto a = cache->add(prompt);
    const auto first = prefill(*cache, call, a, prompt);
    cache->release(a);
    // The same prompt again: its last block holds the token whose logits are asked for, so
    // only the first two blocks come from the cache, and the logits are those of a full run.
    const auto b = cache->add(prompt);
    ASSERT_EQ(cache->length(b), 8);
    EXPECT_LE(max_abs_diff(prefill(*cache, call, b, prompt), first), 1e-5f);
    // A one-token prompt has nothing to share.
    const auto c = cache->add(std::vector<int32_t>{prompt[0]});
    EXPECT_EQ(cache->length(c), 0);
}

TEST(PrefixCache, ReleasedBlocksStayIndexedUntilTheirMemoryIsNeeded) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    auto cache = session->make_cache(4, true);
    tfx::ForwardCall call(*session, cache.get());
    const auto prompt = ids(11, 17);  // 4 full blocks + 1 token
    const auto a = cache->add(prompt);
    prefill(*cache, call, a, prompt);
    const int64_t allocated = cache->blocks_allocated();
    cache->release(a);
    EXPECT_EQ(cache->blocks_in_use(), 0) << "indexed blocks nobody holds are not in use";
    EXPECT_EQ(cache->prefix_stats().cached_blocks, 4);

    // An unrelated prompt takes the blocks that were never published first (the partial last
    // block, and one the pools' growth left unused), then evicts indexed ones from the tail of
    // the prefix (the head is what more prompts share), instead of growing the pools.
    const auto other = ids(400, 12);
    const auto b = cache->add(other);
    prefill(*cache, call, b, other);
    EXPECT_EQ(cache->blocks_allocated(), allocated) << "the pools grew while evictable blocks were free";
    EXPECT_EQ(cache->prefix_stats().cached_blocks, 3 + 3) << "the last of the 4 evicted, the 3 new indexed";
    const auto c = cache->add(prompt);
    EXPECT_EQ(cache->length(c), 12) << "the first 3 blocks of the prefix survived";
    EXPECT_LE(max_abs_diff(prefill(*cache, call, c, prompt), tfx::ForwardCall(*session).run({.ids = prompt})), 1e-5f);
}

// Prompts from a few shared beginnings come and go while the pools stay small, so indexed
// blocks are shared, evicted and rewritten with other tokens all the time: every prompt's
// logits stay those of a full run (a reused block gets a new identity, so no stale chain of
// blocks indexed after it can be found through it).
TEST(PrefixCache, StaysExactWhileBlocksAreEvictedAndReused) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    auto cache = session->make_cache(4, true);
    tfx::ForwardCall call(*session, cache.get());
    tfx::ForwardCall fresh(*session);
    std::vector<tfx::PagedKvCache::SeqId> live;
    for (int round = 0; round < 12; ++round) {
        const auto prompt = concat(concat(ids(round % 2, 4), ids(100 + round % 3, 4)), ids(round, 5));
        const auto seq = cache->add(prompt);
        const auto logits = prefill(*cache, call, seq, prompt);
        EXPECT_LE(max_abs_diff(logits, fresh.run({.ids = prompt})), 1e-5f) << "round " << round;
        live.push_back(seq);
        if (live.size() > 2) {
            cache->release(live.front());
            live.erase(live.begin());
        }
    }
    EXPECT_GE(cache->prefix_stats().hit_tokens, 4 * 10)
        << "each prompt shares at least the first block of the one two rounds before";
    EXPECT_LE(cache->blocks_allocated(), 16) << "evictable blocks were reused instead of growing the pools";
}

// The Generator with prefix caching gives the tokens it gives without, for requests that share
// a system prompt and arrive while others run.
TEST(PrefixCache, GenerationIsUnchanged) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    const std::vector<int32_t> system = ids(5, 37);
    const std::vector<std::vector<int32_t>> prompts = {concat(system, ids(1, 3)), concat(system, ids(2, 20)),
                                                       concat(system, ids(3, 1)), system};
    tfx::GenerationConfig greedy;
    greedy.ignore_eos = true;
    auto run = [&](bool prefix_caching, tfx::PagedKvCache::PrefixStats* stats) {
        tfx::Generator g(*session, {.block_size = 16, .max_step_tokens = 32, .prefix_caching = prefix_caching});
        std::map<tfx::Generator::RequestId, size_t> which;
        std::vector<std::vector<int32_t>> out(prompts.size());
        size_t admitted = 0;
        while (admitted < prompts.size() || !g.idle()) {
            if (admitted < prompts.size()) {
                which[g.add(prompts[admitted], greedy, 24)] = admitted;
                ++admitted;
            }
            for (const auto& e : g.step()) out[which.at(e.request)].push_back(e.token);
        }
        if (stats) *stats = g.cache().prefix_stats();
        return out;
    };
    tfx::PagedKvCache::PrefixStats stats;
    const auto with = run(true, &stats);
    EXPECT_EQ(with, run(false, nullptr));
    EXPECT_GE(stats.hit_tokens, 32) << "the later prompts found the system prompt's first blocks";
}

// What tfx serve's admission counts (Generator::blocks_committed): requests that share a system
// prompt hold its blocks once, and an admitted prompt not prefilled yet counts what it still
// needs. Counting each request's whole context instead would refuse requests that fit.
TEST(PrefixCache, CommittedBlocksCountSharedPrefixBlocksOnce) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    const std::vector<int32_t> system = ids(5, 64);  // four full blocks of 16
    tfx::GenerationConfig greedy;
    greedy.ignore_eos = true;
    for (const bool prefix_caching : {true, false}) {
        SCOPED_TRACE(prefix_caching ? "prefix caching" : "no prefix caching");
        tfx::Generator g(*session, {.block_size = 16, .max_step_tokens = 256, .prefix_caching = prefix_caching});
        g.add(concat(system, ids(1, 8)), greedy, 4);
        EXPECT_EQ(g.blocks_committed(), 5) << "admitted, not prefilled: its 72 positions are pending";
        g.step();  // prefilled and published
        EXPECT_EQ(g.blocks_committed(), 5);
        EXPECT_EQ(g.cache().blocks_in_use(), 5);
        for (int32_t i = 2; i <= 4; ++i) g.add(concat(system, ids(i, 8)), greedy, 4);
        // Shared: each newcomer holds the system prompt's four blocks already and needs one of
        // its own. Not shared: each needs five.
        EXPECT_EQ(g.blocks_committed(), prefix_caching ? 5 + 3 : 5 + 3 * 5);
        g.step();
        EXPECT_EQ(g.blocks_committed(), g.cache().blocks_in_use()) << "every context held after a step";
    }
}
