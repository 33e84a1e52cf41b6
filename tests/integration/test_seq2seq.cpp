// Encoder-decoder models (ABI 2.5) against transformers' goldens: BART's and T5's tiny models. Per prompt,
// the encoder's last hidden state, and the decoder's teacher-forced logits (the golden's
// decoder_input_ids; row i predicts greedy.new_tokens[i]) computed three ways: one cache-less
// forward over every position; step by step through the self and cross caches (the first call
// encodes, later calls read the encoder's keys from the cross cache); and all prompts at once,
// in one ragged batch of different encoder lengths. Then greedy generation from
// decoder_start_token_id against the golden's tokens: each prompt alone, all in one generate(),
// and requests joining a Generator's running batch (a step then runs the joining request's
// encoding call beside the running requests' call).
#include <algorithm>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/test_data.h"
#include "backend_options.h"
#include "core/forward_call.h"
#include "core/generation.h"
#include "golden_logits.h"
#include "registry/auto_model.h"

namespace {

using tfx::test::logits_of;
using tfx::test::max_abs_diff;

constexpr float kTolerance = 1e-4f;

struct Prompt {
    std::string name;
    std::vector<int32_t> encoder_ids, decoder_ids;
    std::vector<float> encoder_states, logits;  // [encoder tokens, hidden], [decoder tokens, vocab]
    std::vector<int32_t> greedy;                // generate()'s new tokens, eos ignored
};

std::vector<Prompt> prompts_of(const nlohmann::json& golden) {
    std::vector<Prompt> out;
    for (const auto& p : golden.at("prompts")) {
        out.push_back({p.at("name"), p.at("input_ids").get<std::vector<int32_t>>(),
                       p.at("decoder_input_ids").get<std::vector<int32_t>>(),
                       logits_of(p.at("encoder_last_hidden_state")), logits_of(p.at("decoder_logits")),
                       p.at("greedy").at("new_tokens").get<std::vector<int32_t>>()});
    }
    return out;
}

std::span<const float> golden_row(const Prompt& p, size_t row, size_t width) {
    return std::span<const float>(p.logits).subspan(row * width, width);
}

tfx::PagedKvCache self_cache(const tfx::ModelSession& s) {
    const tfx_model_info& info = s.info();
    return tfx::PagedKvCache(s.device(), info.num_layers, info.num_kv_heads, info.head_dim, {});
}
tfx::PagedKvCache cross_cache(const tfx::ModelSession& s) {
    const tfx_model_info& info = s.info();
    return tfx::PagedKvCache(s.device(), info.num_cross_layers, info.num_kv_heads, info.head_dim, {});
}

// A family's tiny model on a backend, with its golden and prompts (skipped, saying why, without
// the backend or the data).
class Seq2Seq : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {
  protected:
    void SetUp() override {
        const auto [family, backend] = GetParam();
        if (const std::string missing = tfx::test::backend_missing(backend); !missing.empty()) GTEST_SKIP() << missing;
        TFX_TEST_DATA_OR_SKIP(model, std::string("tiny/") + family);
        TFX_TEST_DATA_OR_SKIP(golden_path, std::string("golden/tiny/") + family + ".json");
        golden = tfx::test::read_json(golden_path);
        prompts = prompts_of(golden);
        session = tfx::AutoModel::from_pretrained(model, tfx::test::backend_options(backend));
    }

    nlohmann::json golden;
    std::vector<Prompt> prompts;
    std::unique_ptr<tfx::ModelSession> session;
};

}  // namespace

TEST_P(Seq2Seq, MatchesReference) {
    const tfx_model_info& info = session->info();
    ASSERT_GT(info.num_cross_layers, 0);
    const auto vocab = static_cast<size_t>(info.output_size), hidden = static_cast<size_t>(info.hidden_size);

    for (const Prompt& p : prompts) {
        SCOPED_TRACE(p.name);
        ASSERT_EQ(p.logits.size(), p.decoder_ids.size() * vocab);
        ASSERT_EQ(p.encoder_states.size(), p.encoder_ids.size() * hidden);
        // One cache-less forward: the encoder, then every decoder position at once.
        tfx::ForwardCall whole(*session);
        whole.run({.ids = p.decoder_ids, .output = tfx::SequenceInput::Output::all, .encoder_ids = p.encoder_ids});
        EXPECT_LE(max_abs_diff(whole.encoder_output(), p.encoder_states), kTolerance);
        ASSERT_EQ(whole.rows(), static_cast<int64_t>(p.decoder_ids.size()));
        for (size_t t = 0; t < p.decoder_ids.size(); ++t) {
            EXPECT_LE(max_abs_diff(whole.row(static_cast<int64_t>(t)), golden_row(p, t, vocab)), kTolerance)
                << "position " << t;
        }
        // Step by step: the first call encodes and writes the cross cache, later ones read it.
        tfx::PagedKvCache self = self_cache(*session), cross = cross_cache(*session);
        const auto seq = self.add(), cross_seq = cross.add();
        tfx::ForwardCall step(*session, &self, &cross);
        for (size_t t = 0; t < p.decoder_ids.size(); ++t) {
            tfx::SequenceInput in{
                .ids = std::span(p.decoder_ids).subspan(t, 1), .cache_seq = seq, .cross_seq = cross_seq};
            if (t == 0) in.encoder_ids = p.encoder_ids;
            step.run(in);
            EXPECT_LE(max_abs_diff(step.row(0), golden_row(p, t, vocab)), kTolerance) << "step " << t;
        }
        EXPECT_EQ(cross.length(cross_seq), static_cast<int64_t>(p.encoder_ids.size()));
    }

    // Every prompt in one ragged batch: encoders of different lengths, then steps together.
    tfx::PagedKvCache self = self_cache(*session), cross = cross_cache(*session);
    std::vector<tfx::SequenceInput> batch;
    for (const Prompt& p : prompts) {
        batch.push_back({.ids = std::span(p.decoder_ids).subspan(0, 1),
                         .cache_seq = self.add(),
                         .encoder_ids = p.encoder_ids,
                         .cross_seq = cross.add()});
    }
    tfx::ForwardCall call(*session, &self, &cross);
    for (size_t t = 0; t < prompts[0].decoder_ids.size(); ++t) {
        for (size_t s = 0; s < prompts.size(); ++s) {
            batch[s].ids = std::span(prompts[s].decoder_ids).subspan(t, 1);
            if (t == 1) batch[s].encoder_ids = {};
        }
        call.run(batch);
        for (size_t s = 0; s < prompts.size(); ++s) {
            EXPECT_LE(max_abs_diff(call.row(static_cast<int64_t>(s)), golden_row(prompts[s], t, vocab)), kTolerance)
                << prompts[s].name << " step " << t;
        }
    }
}

TEST_P(Seq2Seq, GreedyGenerationMatchesReference) {
    // As the golden ran: eos ignored, forced BOS / EOS off (greedy.disabled_generation_config_fields).
    tfx::GenerationConfig greedy;
    greedy.ignore_eos = true;
    greedy.max_new_tokens = static_cast<int64_t>(prompts[0].greedy.size());
    greedy.decoder_start_token_id = golden.at("decoder_start_token_id").get<int32_t>();
    std::vector<std::vector<int32_t>> all;
    for (const Prompt& p : prompts) {
        SCOPED_TRACE(p.name);
        EXPECT_EQ(tfx::generate(*session, {p.encoder_ids}, greedy).new_tokens[0], p.greedy);
        all.push_back(p.encoder_ids);
    }
    const auto together = tfx::generate(*session, all, greedy).new_tokens;
    for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(together[i], prompts[i].greedy) << prompts[i].name;

    // Requests joining a running batch, one every other step.
    tfx::Generator generator(*session);
    std::map<tfx::Generator::RequestId, size_t> prompt_of;
    std::vector<std::vector<int32_t>> tokens(prompts.size());
    for (size_t step = 0; !generator.idle() || prompt_of.size() < prompts.size(); ++step) {
        if (step % 2 == 0 && prompt_of.size() < prompts.size()) {
            const size_t next = prompt_of.size();
            prompt_of[generator.add(prompts[next].encoder_ids, greedy, greedy.max_new_tokens)] = next;
        }
        for (const auto& e : generator.step()) tokens[prompt_of.at(e.request)].push_back(e.token);
    }
    for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(tokens[i], prompts[i].greedy) << prompts[i].name;

    // Without decoder_start_token_id there is nothing to start the decoder from.
    tfx::GenerationConfig no_start = greedy;
    no_start.decoder_start_token_id.reset();
    EXPECT_THROW(tfx::generate(*session, {prompts[0].encoder_ids}, no_start), std::exception);
}

// The host's checks of an encoder-decoder call.
TEST(Seq2SeqCalls, MisuseIsRefusedWithAReason) {
    TFX_TEST_DATA_OR_SKIP(model, "tiny/bart");
    auto session = tfx::AutoModel::from_pretrained(model);
    const std::vector<int32_t> encoder_ids{1, 17, 42}, decoder_ids{2};
    auto refused = [&](tfx::ForwardCall& call, std::span<const tfx::SequenceInput> in, const std::string& reason) {
        try {
            call.run(in);
            ADD_FAILURE() << "accepted; expected: " << reason;
        } catch (const std::exception& e) {
            EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
        }
    };
    tfx::ForwardCall plain(*session);
    const tfx::SequenceInput no_encoder{.ids = decoder_ids};
    refused(plain, std::span(&no_encoder, 1), "needs encoder tokens");
    const std::vector<int32_t> outside{1, 9999};
    const tfx::SequenceInput bad_id{.ids = decoder_ids, .encoder_ids = outside};
    refused(plain, std::span(&bad_id, 1), "outside the vocabulary");

    tfx::PagedKvCache self = self_cache(*session), cross = cross_cache(*session);
    tfx::ForwardCall cached(*session, &self, &cross);
    const auto a = self.add(), b = self.add(), ca = cross.add(), cb = cross.add();
    const std::vector<tfx::SequenceInput> first{
        {.ids = decoder_ids, .cache_seq = a, .encoder_ids = encoder_ids, .cross_seq = ca}};
    cached.run(first);
    // Encoding a sequence again, and mixing an encoding sequence with a decoding one.
    refused(cached, first, "was encoded already");
    const std::vector<tfx::SequenceInput> mixed{
        {.ids = decoder_ids, .cache_seq = a, .cross_seq = ca},
        {.ids = decoder_ids, .cache_seq = b, .encoder_ids = encoder_ids, .cross_seq = cb}};
    refused(cached, mixed, "encodes every sequence or none");
    const std::vector<tfx::SequenceInput> no_cross{{.ids = decoder_ids, .cache_seq = b, .encoder_ids = encoder_ids}};
    refused(cached, no_cross, "names no cross-cache sequence");
}

INSTANTIATE_TEST_SUITE_P(Tiny, Seq2Seq,
                         ::testing::Combine(::testing::Values("bart", "t5"),
                                            ::testing::Values("cpu", "guarded", "torch")),
                         [](const auto& case_info) {
                             return std::string(std::get<0>(case_info.param)) + "_" + std::get<1>(case_info.param);
                         });
