// generation_config.json as transformers reads it (fields, defaults, the forms it saves), the
// errors and warnings for what tfx cannot honour, stop strings at token boundaries, and
// processor edge cases the generation goldens do not reach.
#include <cmath>
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "core/generation.h"
#include "core/generation_config.h"
#include "core/logits_processing.h"
#include "core/stop_strings.h"
#include "error_of.h"
#include "tfx/sdk/error.hpp"

namespace {

using tfx::test::error_of;

tfx::sdk::Config file(const char* json) {
    return tfx::sdk::Config(nlohmann::json::parse(json), "generation_config.json");
}

constexpr float kInf = INFINITY;

}  // namespace

TEST(GenerationConfig, AFileStartsFromTransformersDefaultsAndTheModelsSpecialTokens) {
    tfx::GenerationConfig model;
    model.eos_token_ids = {2};
    model.bos_token_id = 1;
    model.top_k = 7;  // the model's sampling settings do not carry over; its special tokens do
    const auto g = tfx::GenerationConfig::from_file(file(R"J({"do_sample": true, "pad_token_id": 0})J"), model);
    EXPECT_EQ(g.top_k, 50);
    EXPECT_EQ(g.eos_token_ids, std::vector<int32_t>{2});
    EXPECT_EQ(g.bos_token_id, 1);
    EXPECT_EQ(g.pad_token_id, 0);
    EXPECT_TRUE(g.do_sample);
}

TEST(GenerationConfig, ReadsEveryProcessorFieldInTheFormsTransformersWrites) {
    const auto g = tfx::GenerationConfig::from_file(file(R"J({
        "sequence_bias": {"(313,)": -3.0, "(94, 1030)": -6.0}, "bad_words_ids": [[598], [94, 1030]],
        "early_stopping": "never", "forced_eos_token_id": [2, 3], "exponential_decay_length_penalty": [8, 1.2],
        "stop_strings": "The end", "max_length": 30, "typical_p": 0.8, "min_new_tokens": 4})J"),
                                                    {});
    ASSERT_EQ(g.sequence_bias.size(), 2u);
    EXPECT_EQ(g.sequence_bias[1].first, (std::vector<int32_t>{94, 1030}));
    EXPECT_FLOAT_EQ(g.sequence_bias[1].second, -6.0f);
    EXPECT_EQ(g.bad_words_ids.size(), 2u);
    EXPECT_EQ(g.early_stopping, tfx::GenerationConfig::EarlyStopping::never);
    EXPECT_EQ(g.forced_eos_token_ids, (std::vector<int32_t>{2, 3}));
    EXPECT_EQ(g.exponential_decay_length_penalty->first, 8);
    EXPECT_EQ(g.stop_strings, std::vector<std::string>{"The end"});
    EXPECT_EQ(g.max_length, 30);
    EXPECT_EQ(g.min_new_tokens, 4);
    // And the list form GenerationConfig(sequence_bias=[[[ids], bias], ...]) takes.
    const auto listed = tfx::GenerationConfig::from_file(file(R"J({"sequence_bias": [[[1855, 325], -2.5]]})J"), {});
    EXPECT_EQ(listed.sequence_bias[0].first, (std::vector<int32_t>{1855, 325}));
}

TEST(GenerationConfig, FieldsTfxDoesNotActOnAreNamedUnlessAtTheirOffValue) {
    const auto fields = tfx::GenerationConfig::unsupported_fields(file(R"J({
        "transformers_version": "4.44.2", "output_scores": true, "num_beam_groups": 1, "penalty_alpha": null,
        "diversity_penalty": 0.5, "top_a": 0.2, "top_k": 10})J"));
    EXPECT_EQ(fields, (std::vector<std::string>{"diversity_penalty (not supported)", "top_a (unknown)"}));
}

TEST(GenerationConfig, BadValuesNameTheirField) {
    EXPECT_NE(error_of([] {
                  tfx::GenerationConfig::from_file(file(R"J({"early_stopping": "soon"})J"), {});
              }).find("early_stopping"),
              std::string::npos);
    EXPECT_NE(error_of([] {
                  tfx::GenerationConfig::from_file(file(R"J({"bad_words_ids": [5]})J"), {});
              }).find("bad_words_ids"),
              std::string::npos);
    EXPECT_NE(error_of([] {
                  tfx::GenerationConfig::from_file(file(R"J({"sequence_bias": {"(a,)": 1}})J"), {});
              }).find("sequence_bias"),
              std::string::npos);
    tfx::GenerationConfig g;
    g.num_beams = 2;
    g.num_return_sequences = 3;
    EXPECT_EQ(error_of([&] { g.validate(); }).rfind("num_return_sequences", 0), 0u);
    g = {};
    g.do_sample = true;
    g.typical_p = 0.0f;
    EXPECT_EQ(error_of([&] { g.validate(); }).rfind("typical_p", 0), 0u);
    g = {};
    g.bad_words_ids = {{5, 4000}};
    EXPECT_EQ(error_of([&] { g.validate(100); }).rfind("bad_words_ids: token id 4000", 0), 0u);
}

TEST(StopStrings, MatchOnlyWhenTheStringEndsInsideTheLastToken) {
    const std::map<int32_t, std::string> pieces = {{1, "The"}, {2, " dog"}, {3, ","}, {4, " Spot"}, {5, " ran"}};
    tfx::StopStrings stops({"dog, Sp"}, [&](int32_t t) { return pieces.at(t); });
    EXPECT_FALSE(stops.matches(std::vector<int32_t>{1, 2, 3}));
    EXPECT_TRUE(stops.matches(std::vector<int32_t>{1, 2, 3, 4}));      // " Spot" runs past the string's end
    EXPECT_FALSE(stops.matches(std::vector<int32_t>{1, 2, 3, 4, 5}));  // complete before the last token
    tfx::StopStrings whole({"Spot ran"}, [&](int32_t t) { return pieces.at(t); });
    EXPECT_TRUE(whole.matches(std::vector<int32_t>{4, 5}));
}

TEST(LogitsProcessing, BadWordsEqualToEosAreDroppedAndMultiTokenBansNeedTheirPrefix) {
    tfx::GenerationConfig g;
    g.eos_token_ids = {2};
    g.bad_words_ids = {{2}, {3}, {4, 5}};
    const tfx::LogitsProcessing p(g, 8);
    std::vector<float> scores(8, 1.0f);
    const std::vector<int32_t> ids = {1, 4};
    p.process(scores, {ids, 0, 2, 10});
    EXPECT_EQ(scores, (std::vector<float>{1, 1, 1, -kInf, 1, -kInf, 1, 1}));
    std::vector<float> later(8, 1.0f);
    const std::vector<int32_t> other = {4, 1};
    p.process(later, {other, 0, 2, 10});
    EXPECT_EQ(later[5], 1.0f);
}

TEST(LogitsProcessing, TopKKeepsTiesAndMinPKeepsTheBestToken) {
    tfx::GenerationConfig g;
    g.do_sample = true;
    g.top_k = 2;
    const tfx::LogitsProcessing top_k(g, 5);
    std::vector<float> scores = {3.0f, 1.0f, 2.0f, 2.0f, 0.0f};
    top_k.warp(scores);
    EXPECT_EQ(scores, (std::vector<float>{3, -kInf, 2, 2, -kInf}));
    g.top_k = 0;
    g.min_p = 1.0f;
    const tfx::LogitsProcessing min_p(g, 3);
    std::vector<float> near = {1.0f, 1.0f - 1e-3f, -5.0f};
    min_p.warp(near);
    EXPECT_EQ(near, (std::vector<float>{1.0f, -kInf, -kInf}));
}

TEST(LogitsProcessing, ForcedEosAndMinNewTokensFollowTheLengthsTransformersCounts) {
    tfx::GenerationConfig g;
    g.eos_token_ids = {0};
    g.forced_eos_token_ids = {0};
    g.min_new_tokens = 2;
    const tfx::LogitsProcessing p(g, 4);
    const std::vector<int32_t> ids = {3, 3, 1};  // a 2-token prompt with 1 left pad, then 1 new token
    std::vector<float> scores = {5.0f, 1.0f, 2.0f, 3.0f};
    p.process(scores, {ids, 1, 3, 6});  // 1 new token < min_new_tokens: EOS banned
    EXPECT_EQ(scores[0], -kInf);
    std::vector<float> last = {5.0f, 1.0f, 2.0f, 3.0f};
    const std::vector<int32_t> longer = {3, 3, 1, 1};
    p.process(last, {longer, 1, 3, 6});  // length 5 == max_length - 1: only EOS
    EXPECT_EQ(last, (std::vector<float>{0, -kInf, -kInf, -kInf}));
}

TEST(LogitsProcessing, EncoderNoRepeatNgramBansWhatFollowsTheDecodersTailInTheEncodersInput) {
    tfx::GenerationConfig g;
    g.encoder_no_repeat_ngram_size = 2;
    const tfx::LogitsProcessing bigrams(g, 10);
    const std::vector<int32_t> encoder = {5, 6, 7, 5, 8};
    std::vector<float> scores(10, 1.0f);
    const std::vector<int32_t> decoder = {0, 5};
    bigrams.process(scores, {decoder, 0, 1, 20, encoder});
    EXPECT_EQ(scores, (std::vector<float>{1, 1, 1, 1, 1, 1, -kInf, 1, -kInf, 1}));
    g.encoder_no_repeat_ngram_size = 3;
    const tfx::LogitsProcessing trigrams(g, 10);
    std::vector<float> first(10, 1.0f);
    const std::vector<int32_t> start = {5};  // too short for a trigram: nothing banned yet
    trigrams.process(first, {start, 0, 1, 20, encoder});
    EXPECT_EQ(first, std::vector<float>(10, 1.0f));
    std::vector<float> later(10, 1.0f);
    const std::vector<int32_t> longer = {0, 6, 7, 5};
    trigrams.process(later, {longer, 0, 1, 20, encoder});
    EXPECT_EQ(later, (std::vector<float>{1, 1, 1, 1, 1, 1, 1, 1, -kInf, 1}));
}

TEST(LogitsProcessing, EncoderRepetitionPenaltyFavoursTheEncodersTokensOrADecoderOnlyPrompts) {
    tfx::GenerationConfig g;
    g.encoder_repetition_penalty = 2.0f;
    const tfx::LogitsProcessing p(g, 4);
    const std::vector<int32_t> encoder = {1, 3, 3};
    std::vector<float> scores = {1.0f, -2.0f, 2.0f, 4.0f};
    const std::vector<int32_t> decoder = {0, 2};  // the decoder's own tokens are not the encoder's
    p.process(scores, {decoder, 0, 1, 10, encoder});
    EXPECT_EQ(scores, (std::vector<float>{1.0f, -1.0f, 2.0f, 8.0f}));
    // A decoder-only model: transformers' encoder_input_ids are the prompt (not what follows it).
    std::vector<float> prompt_scores = {1.0f, -2.0f, 2.0f, 4.0f};
    const std::vector<int32_t> ids = {1, 3, 2};  // a 2-token prompt, then token 2
    p.process(prompt_scores, {ids, 0, 2, 10});
    EXPECT_EQ(prompt_scores, (std::vector<float>{1.0f, -1.0f, 2.0f, 8.0f}));
}

TEST(GenerationConfig, EncoderProcessorsAreReadAndCheckedAgainstTheModel) {
    const auto g = tfx::GenerationConfig::from_file(
        file(R"J({"encoder_no_repeat_ngram_size": 3, "encoder_repetition_penalty": 1.5})J"), {});
    EXPECT_EQ(g.encoder_no_repeat_ngram_size, 3);
    EXPECT_FLOAT_EQ(g.encoder_repetition_penalty, 1.5f);
    EXPECT_TRUE(tfx::GenerationConfig::unsupported_fields(file(R"J({"encoder_no_repeat_ngram_size": 3})J")).empty());
    tfx::GenerationConfig bad;
    bad.encoder_repetition_penalty = 0.0f;
    EXPECT_EQ(error_of([&] { bad.validate(); }).rfind("encoder_repetition_penalty", 0), 0u);
    tfx_model_info decoder_only{};
    EXPECT_NE(error_of([&] { tfx::check_config_for_model(decoder_only, g); }).find("encoder-decoder"),
              std::string::npos);
    tfx_model_info encoder_decoder{};
    encoder_decoder.num_cross_layers = 2;
    EXPECT_NO_THROW(tfx::check_config_for_model(encoder_decoder, g));
}
