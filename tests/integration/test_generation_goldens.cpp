// transformers' generate() under its generation configs (golden/generation; its README states
// the semantics), through the C++ API: greedy, beam and batched cases give the same tokens (beam
// search the same sequences_scores), and sampling cases the same processed distributions when
// their sampled tokens are forced: the same set of allowed tokens at every step and the same
// log-probabilities over the whole vocabulary.
#include <cmath>
#include <filesystem>
#include <optional>

#include <gtest/gtest.h>

#include "../unit/test_data.h"
#include "core/generation.h"
#include "core/json_file.h"
#include "core/stop_strings.h"
#include "golden_logits.h"
#include "registry/auto_model.h"
#include "registry/auto_tokenizer.h"

namespace {

constexpr float kLogprobTolerance = 1e-4f;

struct Replay {
    std::unique_ptr<tfx::ModelSession> session;
    std::unique_ptr<tfx::Tokenizer> tokenizer;  // null when the model has no tokenizer.json
    nlohmann::json golden;
    tfx::GenerationConfig model_defaults;

    // The case's generation_config as generate(generation_config=...) takes it.
    tfx::GenerationConfig config(const nlohmann::json& c) const {
        return tfx::GenerationConfig::from_file(tfx::sdk::Config(c.at("generation_config"), c.at("name")),
                                                model_defaults);
    }
};

std::optional<Replay> open_replay(const std::string& model_dir = "models/tinystories-656k",
                                  const std::string& golden_file = "golden/generation/tinystories-656k.json") {
    const auto model = tfx::test::data_path(model_dir);
    const auto golden = tfx::test::data_path(golden_file);
    if (!model || !golden) return std::nullopt;
    Replay r;
    r.session = tfx::AutoModel::from_pretrained(*model, {});
    // Only stop strings need it; tiny/t5 ships none.
    if (std::filesystem::exists(*model / "tokenizer.json")) r.tokenizer = tfx::Tokenizer::for_model(*r.session, {});
    r.golden = tfx::test::read_json(*golden);
    r.model_defaults = tfx::GenerationConfig::from_model(
        r.session->config(), tfx::load_optional_json_file(*model / "generation_config.json"));
    return r;
}

#define REPLAY_OR_SKIP(var, ...)                                                                 \
    auto var##_opt = open_replay(__VA_ARGS__);                                                   \
    if (!var##_opt) GTEST_SKIP() << "test data missing: set TFX_TEST_DATA to the shared folder"; \
    Replay& var = *var##_opt

std::vector<int32_t> until_eos(const std::vector<int32_t>& row, const std::vector<int32_t>& eos) {
    std::vector<int32_t> out;
    for (int32_t t : row) {
        if (std::find(eos.begin(), eos.end(), t) != eos.end()) break;
        out.push_back(t);
    }
    return out;
}

// The result's prompts: one (an encoder-decoder model's: the encoder's input), or a batched
// case's unpadded rows.
std::vector<std::vector<int32_t>> prompts_of(const nlohmann::json& result) {
    if (result.contains("encoder_input_ids")) return {result.at("encoder_input_ids").get<std::vector<int32_t>>()};
    if (!result.contains("attention_mask")) return {result.at("input_ids").get<std::vector<int32_t>>()};
    std::vector<std::vector<int32_t>> rows;
    for (size_t i = 0; i < result.at("input_ids").size(); ++i) {
        rows.emplace_back();
        for (size_t k = 0; k < result["input_ids"][i].size(); ++k) {
            if (result["attention_mask"][i][k] == 1) rows.back().push_back(result["input_ids"][i][k]);
        }
    }
    return rows;
}

// Runs every greedy and beam case of the golden, counting the results compared in `cases`.
void replay_greedy_and_beam_cases(Replay& r, int& cases) {
    for (const auto& c : r.golden.at("cases")) {
        if (c.at("mode") == "sample") continue;
        const tfx::GenerationConfig config = r.config(c);
        for (const auto& result : c.at("results")) {
            SCOPED_TRACE(c.at("name").get<std::string>() + " / " + result.at("prompt").dump());
            const auto prompts = prompts_of(result);
            tfx::GenerateOptions options;
            std::optional<tfx::StopStrings> stops;
            if (!config.stop_strings.empty()) {
                ASSERT_NE(r.tokenizer, nullptr) << "stop strings need the model's tokenizer";
                stops.emplace(config.stop_strings, [&](int32_t t) { return r.tokenizer->piece_after_text(t); });
                options.should_stop = [&](size_t row, const std::vector<int32_t>& tokens) {
                    std::vector<int32_t> context = prompts[row];
                    context.insert(context.end(), tokens.begin(), tokens.end());
                    return stops->matches(context);
                };
            }
            options.output_scores = c.at("mode") == "greedy" ? 0 : -1;
            const tfx::GenerationResult got = tfx::generate(*r.session, prompts, config, options);
            const auto want = result.at("new_tokens").get<std::vector<std::vector<int32_t>>>();
            ASSERT_EQ(got.new_tokens.size(), want.size());
            for (size_t row = 0; row < want.size(); ++row) {
                EXPECT_EQ(until_eos(got.new_tokens[row], config.eos_token_ids),
                          until_eos(want[row], config.eos_token_ids))
                    << "row " << row;
            }
            if (c.at("mode") == "beam") {
                const auto scores = result.at("beam").at("sequences_scores").get<std::vector<float>>();
                ASSERT_EQ(got.sequences_scores.size(), scores.size());
                for (size_t i = 0; i < scores.size(); ++i)
                    EXPECT_NEAR(got.sequences_scores[i], scores[i], 1e-5 * std::max(1.0f, std::fabs(scores[i])));
            }
            if (c.at("mode") == "greedy" && !c.at("batched").get<bool>()) {
                // How many tokens the processors left allowed, step by step (bans, forced tokens).
                const auto& steps = result.at("steps")[0];
                ASSERT_EQ(got.scores[0].size(), steps.at("n_finite").size());
                for (size_t t = 0; t < got.scores[0].size(); ++t)
                    EXPECT_EQ(got.scores[0][t].n_finite, steps["n_finite"][t].get<int32_t>()) << "step " << t;
            }
            ++cases;
        }
    }
}

}  // namespace

TEST(GenerationGoldens, GreedyAndBeamCasesGiveTransformersTokensAndScores) {
    REPLAY_OR_SKIP(r);
    int cases = 0;
    replay_greedy_and_beam_cases(r, cases);
    EXPECT_GT(cases, 40);
}

TEST(GenerationGoldens, EncoderDecoderGreedyAndBeamCasesGiveTransformersTokensAndScores) {
    REPLAY_OR_SKIP(r, "tiny/t5", "golden/generation/t5.json");
    int cases = 0;
    replay_greedy_and_beam_cases(r, cases);
    EXPECT_EQ(cases, 10);  // 5 prompts, greedy and num_beams 4
}

TEST(GenerationGoldens, SamplingCasesGiveTransformersDistributionsUnderTeacherForcing) {
    REPLAY_OR_SKIP(r);
    const auto vocab = static_cast<int32_t>(r.session->info().vocab_size);
    int cases = 0;
    for (const auto& c : r.golden.at("cases")) {
        if (c.at("mode") != "sample") continue;
        const tfx::GenerationConfig config = r.config(c);
        for (const auto& result : c.at("results")) {
            SCOPED_TRACE(c.at("name").get<std::string>() + " / " + result.at("prompt").dump());
            const auto forced = result.at("new_tokens")[0].get<std::vector<int32_t>>();
            const tfx::GenerationResult got = tfx::generate(*r.session, prompts_of(result), config,
                                                            {.output_scores = vocab, .teacher_force = forced});
            // The golden's full processed scores, -inf where a processor or warper removed a token.
            const std::vector<float> want = tfx::test::logits_of(result.at("processed_scores")[0]);
            ASSERT_EQ(got.scores[0].size(), forced.size());
            ASSERT_EQ(want.size(), forced.size() * static_cast<size_t>(vocab));
            for (size_t t = 0; t < forced.size(); ++t) {
                const std::span<const float> step(want.data() + t * static_cast<size_t>(vocab),
                                                  static_cast<size_t>(vocab));
                double sum = 0.0;
                const float best = *std::max_element(step.begin(), step.end());
                for (float v : step) sum += std::isfinite(v) ? std::exp(static_cast<double>(v) - best) : 0.0;
                const tfx::StepScores& s = got.scores[0][t];
                std::vector<float> logprob(static_cast<size_t>(vocab), -INFINITY);
                for (size_t i = 0; i < s.top_ids.size(); ++i)
                    logprob[static_cast<size_t>(s.top_ids[i])] = s.top_logprobs[i];
                int mismatched = 0;
                float worst = 0.0f;
                for (int32_t v = 0; v < vocab; ++v) {
                    const bool allowed = std::isfinite(step[static_cast<size_t>(v)]);
                    if (allowed != std::isfinite(logprob[static_cast<size_t>(v)])) {
                        ++mismatched;
                        continue;
                    }
                    if (!allowed) continue;
                    const auto expected = static_cast<float>(step[static_cast<size_t>(v)] - best - std::log(sum));
                    worst = std::max(worst, std::fabs(expected - logprob[static_cast<size_t>(v)]));
                }
                EXPECT_EQ(mismatched, 0) << "step " << t << ": tokens allowed by one side only";
                EXPECT_LT(worst, kLogprobTolerance) << "step " << t;
                EXPECT_TRUE(std::isfinite(logprob[static_cast<size_t>(forced[t])])) << "step " << t;
            }
            ++cases;
        }
    }
    EXPECT_GT(cases, 15);
}

TEST(GenerationGoldens, SamplingIsReproducibleWithASeed) {
    REPLAY_OR_SKIP(r);
    tfx::GenerationConfig config = r.model_defaults;
    config.do_sample = true;
    config.top_k = 0;
    config.max_new_tokens = 24;
    config.ignore_eos = true;
    const std::vector<std::vector<int32_t>> prompt = {{1, 80, 147, 201, 282, 57}};
    config.seed = 7;
    const auto first = tfx::generate(*r.session, prompt, config).new_tokens;
    EXPECT_EQ(tfx::generate(*r.session, prompt, config).new_tokens, first);
    config.seed = 8;
    EXPECT_NE(tfx::generate(*r.session, prompt, config).new_tokens, first);
}
