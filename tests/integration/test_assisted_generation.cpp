// Assisted (speculative) decoding gives exactly plain decoding's tokens, whatever the draft
// proposes: the model itself as its own draft (every proposal accepted), a different model
// (bf16 weights: some rejected), prompt lookup; with processors acting on the context, an EOS
// inside an accepted run, a batch, and sampling with the same seed.
#include <gtest/gtest.h>

#include "../unit/test_data.h"
#include "core/generation.h"
#include "registry/auto_model.h"

namespace {

const std::vector<std::vector<int32_t>> kPrompts = {
    {1, 80, 147, 201, 282, 57},
    // Repetitive: prompt lookup finds its continuations.
    {1, 80, 147, 201, 282, 57, 313, 598, 303, 80, 147, 201, 282, 57, 313, 598, 303, 80, 147}};

tfx::GenerationConfig greedy(int64_t max_new) {
    tfx::GenerationConfig g;
    g.eos_token_ids = {2};
    g.max_new_tokens = max_new;
    return g;
}

}  // namespace

TEST(AssistedGeneration, EveryDraftGivesPlainGreedyTokens) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    TFX_TEST_DATA_OR_SKIP(bf16, "models/tinystories-656k-bf16");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    auto other = tfx::AutoModel::from_pretrained(bf16, {});
    for (const bool with_processors : {false, true}) {
        tfx::GenerationConfig config = greedy(48);
        if (with_processors) {  // processors that read the context, which grows by several tokens a round
            config.no_repeat_ngram_size = 3;
            config.repetition_penalty = 1.2f;
            config.min_new_tokens = 10;
        }
        const auto plain = tfx::generate(*session, kPrompts, config);
        struct Draft {
            const char* name;
            tfx::ModelSession* model;
            int64_t lookup;
        };
        for (const Draft& d : {Draft{"itself", session.get(), 0}, Draft{"bf16 model", other.get(), 0},
                               Draft{"prompt lookup", nullptr, 8}}) {
            SCOPED_TRACE(std::string(d.name) + (with_processors ? " with processors" : ""));
            tfx::GenerationConfig assisted = config;
            assisted.prompt_lookup_num_tokens = d.lookup;
            const auto got = tfx::generate(*session, kPrompts, assisted, {.assistant_model = d.model});
            EXPECT_EQ(got.new_tokens, plain.new_tokens);
            // (no_repeat_ngram_size bans what prompt lookup copies: nothing to accept there.)
            if (!(with_processors && d.lookup > 0)) {
                EXPECT_GT(got.draft_accepted, 0);
                EXPECT_LT(got.forwards, static_cast<int64_t>(plain.new_tokens[0].size() + plain.new_tokens[1].size()));
            }
            if (d.model == session.get()) {
                EXPECT_EQ(got.draft_accepted, got.draft_proposed);
            }
        }
    }
}

TEST(AssistedGeneration, StopsAtEosInsideAnAcceptedRun) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    // "The dog found his ball. He was happy again.": greedy ends it with EOS at step 5.
    const std::vector<std::vector<int32_t>> prompt = {{1, 80, 247, 401, 371, 231, 416, 1040, 181, 1716, 10}};
    tfx::GenerationConfig config = greedy(40);
    const auto plain = tfx::generate(*session, prompt, config);
    ASSERT_EQ(plain.new_tokens[0].back(), 2) << "the prompt no longer ends in EOS";
    const auto got = tfx::generate(*session, prompt, config, {.assistant_model = session.get()});
    EXPECT_EQ(got.new_tokens, plain.new_tokens);
}

TEST(AssistedGeneration, SampledTokensAreThoseOfPlainSamplingWithTheSameSeed) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    TFX_TEST_DATA_OR_SKIP(bf16, "models/tinystories-656k-bf16");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    auto other = tfx::AutoModel::from_pretrained(bf16, {});
    tfx::GenerationConfig config = greedy(48);
    config.do_sample = true;
    config.top_k = 0;
    config.top_p = 0.95;
    config.temperature = 0.8f;
    for (uint64_t seed : {1u, 2u, 3u}) {
        config.seed = seed;
        const auto plain = tfx::generate(*session, {kPrompts[1]}, config);
        const auto drafted = tfx::generate(*session, {kPrompts[1]}, config, {.assistant_model = other.get()});
        EXPECT_EQ(drafted.new_tokens, plain.new_tokens) << "seed " << seed;
        EXPECT_GT(drafted.draft_accepted, 0);
        tfx::GenerationConfig lookup = config;
        lookup.prompt_lookup_num_tokens = 6;
        EXPECT_EQ(tfx::generate(*session, {kPrompts[1]}, lookup).new_tokens, plain.new_tokens) << "seed " << seed;
    }
}

TEST(AssistedGeneration, BeamsAreRefused) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    tfx::GenerationConfig config = greedy(8);
    config.num_beams = 2;
    config.prompt_lookup_num_tokens = 4;
    EXPECT_THROW(tfx::generate(*session, {kPrompts[0]}, config), tfx::sdk::Error);
}
