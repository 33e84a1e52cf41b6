// Generator::add_group: n requests on one prompt (OpenAI's `n`) prefill it once and fork its
// cache; each request gets exactly the tokens add() gives it alone, also when its leader is
// cancelled before the prompt is done or the group is preempted.
#include <map>

#include <gtest/gtest.h>

#include "../unit/test_data.h"
#include "core/generation.h"
#include "registry/auto_model.h"

namespace {

std::vector<tfx::GenerationConfig> sampled_configs(size_t n) {
    std::vector<tfx::GenerationConfig> configs(n);
    for (size_t i = 0; i < n; ++i) {
        configs[i].ignore_eos = true;
        configs[i].do_sample = i > 0;  // the first greedy, the others sampled with their own seeds
        configs[i].top_k = 30;
        configs[i].frequency_penalty = 0.5f;
        configs[i].seed = 40 + i;
    }
    return configs;
}

std::vector<int32_t> alone(tfx::ModelSession& session, const std::vector<int32_t>& prompt,
                           const tfx::GenerationConfig& config, int64_t max_new) {
    tfx::Generator g(session);
    g.add(prompt, config, max_new);
    std::vector<int32_t> tokens;
    while (!g.idle()) {
        for (const auto& e : g.step()) tokens.push_back(e.token);
    }
    return tokens;
}

const std::vector<int32_t> kPrompt = {1, 80, 147, 201, 282, 57, 99, 12, 400, 3, 17, 250, 8, 60, 61, 62, 63, 9, 44};

}  // namespace

TEST(RequestGroups, ChoicesShareThePromptsBlocksAndEachEqualsItsRunAlone) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    const auto configs = sampled_configs(4);
    tfx::Generator g(*session, {.block_size = 4, .max_step_tokens = 8});  // the prompt takes 3 steps
    const auto ids = g.add_group(kPrompt, configs, 12);
    ASSERT_EQ(ids.size(), 4u);
    std::map<tfx::Generator::RequestId, std::vector<int32_t>> got;
    int steps_since_all_joined = -1;
    while (!g.idle()) {
        for (const auto& e : g.step()) got[e.request].push_back(e.token);
        if (got.size() == 4) ++steps_since_all_joined;
        // One prefill: all four hold the prompt's 5 blocks (the last one 3/4 full)...
        if (steps_since_all_joined == 0) {
            EXPECT_EQ(g.cache().blocks_in_use(), 5);
        }
        // ... until each writes its first token into the last one, which is copied for all but one.
        if (steps_since_all_joined == 1) {
            EXPECT_EQ(g.cache().blocks_in_use(), 4 + 4);
        }
    }
    EXPECT_GT(steps_since_all_joined, 1);
    for (size_t i = 0; i < ids.size(); ++i)
        EXPECT_EQ(got[ids[i]], alone(*session, kPrompt, configs[i], 12)) << "choice " << i;
    EXPECT_NE(got[ids[1]], got[ids[2]]) << "different seeds were meant to sample differently";
    EXPECT_EQ(g.cache().blocks_in_use(), 0);
}

TEST(RequestGroups, CancellingTheLeaderHandsThePromptToTheOthers) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    const auto configs = sampled_configs(3);
    tfx::Generator g(*session, {.block_size = 4, .max_step_tokens = 8});
    const auto ids = g.add_group(kPrompt, configs, 10);
    EXPECT_TRUE(g.step().empty()) << "the prompt's first chunk gives no token";
    g.cancel(ids[0]);
    g.cancel(ids[0]);  // twice is harmless
    std::map<tfx::Generator::RequestId, std::vector<int32_t>> got;
    while (!g.idle()) {
        for (const auto& e : g.step()) got[e.request].push_back(e.token);
    }
    EXPECT_FALSE(got.contains(ids[0]));
    for (size_t i = 1; i < ids.size(); ++i)
        EXPECT_EQ(got[ids[i]], alone(*session, kPrompt, configs[i], 10)) << "choice " << i;
    EXPECT_EQ(g.cache().blocks_in_use(), 0);
}

TEST(RequestGroups, AGroupUnderATightBudgetIsPreemptedAndStillExact) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    const auto configs = sampled_configs(4);
    // 4 choices of 19 + 20 positions: 40 blocks of 4 unshared, 12 allowed.
    tfx::Generator g(*session, {.block_size = 4, .max_step_tokens = 8, .max_cache_blocks = 12});
    const auto ids = g.add_group(kPrompt, configs, 20);
    std::map<tfx::Generator::RequestId, std::vector<int32_t>> got;
    while (!g.idle()) {
        for (const auto& e : g.step()) got[e.request].push_back(e.token);
        EXPECT_LE(g.cache().blocks_in_use(), 12);
    }
    EXPECT_GT(g.preemptions(), 0);
    for (size_t i = 0; i < ids.size(); ++i)
        EXPECT_EQ(got[ids[i]], alone(*session, kPrompt, configs[i], 20)) << "choice " << i;
}
