// A Generator under a KV cache budget (GeneratorOptions::max_cache_blocks): sequences grow into
// the cache as they generate; when it runs out the newest is preempted and recomputed later.
// The budget is never exceeded, and every request gets the tokens it gets with no budget, also
// when sampling (its random state and penalties' context survive the preemption).
#include <map>

#include <gtest/gtest.h>

#include "../unit/test_data.h"
#include "core/generation.h"
#include "registry/auto_model.h"

namespace {

struct Request {
    std::vector<int32_t> prompt;
    int64_t max_new;
    tfx::GenerationConfig config;
};

std::vector<Request> mixed_requests() {
    tfx::GenerationConfig greedy;
    greedy.ignore_eos = true;
    tfx::GenerationConfig sampled = greedy;
    sampled.do_sample = true;
    sampled.top_k = 20;
    sampled.temperature = 0.9f;
    sampled.repetition_penalty = 1.3f;
    std::vector<Request> requests;
    for (int i = 0; i < 6; ++i) {
        std::vector<int32_t> prompt(static_cast<size_t>(3 + 5 * i));
        for (size_t t = 0; t < prompt.size(); ++t) prompt[t] = static_cast<int32_t>(1 + (i * 91 + t * 37) % 500);
        tfx::GenerationConfig config = i % 2 ? sampled : greedy;
        config.seed = 100 + static_cast<uint64_t>(i);
        requests.push_back({prompt, 18 + 3 * i, config});
    }
    return requests;
}

struct Outcome {
    std::vector<std::vector<int32_t>> tokens;
    int64_t preemptions = 0;
    int64_t most_blocks_in_use = 0;
};

// Admits two requests per step until all are in, then steps to the end.
Outcome run(tfx::ModelSession& session, const std::vector<Request>& requests, tfx::GeneratorOptions options) {
    tfx::Generator g(session, options);
    Outcome out;
    out.tokens.resize(requests.size());
    std::map<tfx::Generator::RequestId, size_t> which;
    size_t admitted = 0;
    while (admitted < requests.size() || !g.idle()) {
        for (int k = 0; k < 2 && admitted < requests.size(); ++k, ++admitted) {
            const Request& r = requests[admitted];
            which[g.add(r.prompt, r.config, r.max_new)] = admitted;
        }
        for (const auto& e : g.step()) out.tokens[which.at(e.request)].push_back(e.token);
        out.most_blocks_in_use = std::max(out.most_blocks_in_use, g.cache().blocks_in_use());
    }
    out.preemptions = g.preemptions();
    EXPECT_EQ(g.cache().blocks_in_use(), 0);
    return out;
}

}  // namespace

TEST(Preemption, ATightCacheBudgetGivesTheTokensOfAnUnboundedOne) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    const auto requests = mixed_requests();
    const Outcome unbounded = run(*session, requests, {.block_size = 4, .max_step_tokens = 16});
    EXPECT_EQ(unbounded.preemptions, 0);
    // The longest request needs 26 + 33 positions = 15 blocks on its own.
    for (const bool prefix_caching : {false, true}) {
        const Outcome tight =
            run(*session, requests,
                {.block_size = 4, .max_step_tokens = 16, .prefix_caching = prefix_caching, .max_cache_blocks = 16});
        EXPECT_EQ(tight.tokens, unbounded.tokens) << "prefix caching " << prefix_caching;
        EXPECT_GT(tight.preemptions, 0) << "the budget was meant to run out";
        EXPECT_LE(tight.most_blocks_in_use, 16);
        std::cout << "budget 16 blocks, prefix caching " << prefix_caching << ": " << tight.preemptions
                  << " preemptions, at most " << tight.most_blocks_in_use
                  << " blocks in use (unbounded: " << unbounded.most_blocks_in_use << ")\n";
    }
}

TEST(Preemption, APreemptedRequestCanBeCancelled) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    tfx::Generator g(*session, {.block_size = 4, .max_cache_blocks = 8});
    tfx::GenerationConfig greedy;
    greedy.ignore_eos = true;
    const std::vector<int32_t> prompt = {1, 80, 147, 201, 282, 57};
    const auto first = g.add(prompt, greedy, 20);
    const auto second = g.add(prompt, greedy, 20);
    while (g.paused() == 0 && !g.idle()) g.step();
    ASSERT_EQ(g.paused(), 1u) << "two sequences of 26 positions cannot share 8 blocks of 4";
    g.cancel(second);
    EXPECT_EQ(g.paused(), 0u);
    size_t tokens = 0;
    while (!g.idle()) {
        for (const auto& e : g.step()) {
            EXPECT_EQ(e.request, first);
            ++tokens;
        }
    }
    EXPECT_GT(tokens, 0u);
    EXPECT_EQ(g.cache().blocks_in_use(), 0);
}

TEST(Preemption, ASequenceLargerThanTheWholeBudgetIsAnError) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    tfx::Generator g(*session, {.block_size = 4, .max_cache_blocks = 2});
    tfx::GenerationConfig greedy;
    greedy.ignore_eos = true;
    g.add({1, 80, 147, 201, 282, 57}, greedy, 10);
    try {
        while (!g.idle()) g.step();
        ADD_FAILURE() << "16 positions ran in 2 blocks of 4";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("max_cache_blocks (2)"), std::string::npos) << e.what();
    }
}
