// Speech encoder-decoder models (ABI 2.9 input features) against transformers' golden: Whisper's
// tiny model. The golden WAV goes through our feature extractor (registry/audio_features) into
// the encoder; the encoder's last hidden state and the decoder's teacher-forced logits (row i
// predicts greedy.new_tokens[i]) are compared one cache-less forward at a time, step by step
// through the self and cross caches, and as two sequences of one batch. Then greedy generation
// from the golden's decoder prompt (<|startoftranscript|><|en|><|transcribe|><|notimestamps|>)
// against its tokens: generate(), a request joining a running Generator, and beam search with
// one beam (which must equal greedy). Last, the host's checks of what a speech encoder takes.
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/test_data.h"
#include "backend_options.h"
#include "core/beam_search.h"
#include "core/forward_call.h"
#include "core/generation.h"
#include "golden_logits.h"
#include "registry/auto_model.h"
#include "registry/speech_recognition.h"

namespace {

using tfx::test::logits_of;
using tfx::test::max_abs_diff;

constexpr float kTolerance = 1e-4f;

struct SpeechPrompt {
    std::string name;
    std::vector<float> features;  // our extractor's, from the WAV
    std::vector<int32_t> decoder_prompt, decoder_ids, greedy;
    std::vector<float> golden_features, encoder_states, logits;
};

class SpeechSeq2Seq : public ::testing::TestWithParam<const char*> {
  protected:
    void SetUp() override {
        const char* backend = GetParam();
        if (const std::string missing = tfx::test::backend_missing(backend); !missing.empty()) GTEST_SKIP() << missing;
        TFX_TEST_DATA_OR_SKIP(model, "tiny/whisper");
        TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tiny/whisper.json");
        golden = tfx::test::read_json(golden_path);
        session = tfx::AutoModel::from_pretrained(model, tfx::test::backend_options(backend));
        for (const auto& p : golden.at("prompts")) {
            const tfx::Audio audio =
                tfx::read_audio(std::filesystem::path(model) / p.at("audio").at("file").get<std::string>());
            prompts.push_back({p.at("name"), tfx::speech_features(*session, audio).values,
                               p.at("decoder_prompt_ids").get<std::vector<int32_t>>(),
                               p.at("decoder_input_ids").get<std::vector<int32_t>>(),
                               p.at("greedy").at("new_tokens").get<std::vector<int32_t>>(),
                               logits_of(p.at("input_features")), logits_of(p.at("encoder_last_hidden_state")),
                               logits_of(p.at("decoder_logits"))});
        }
    }

    // Row `row` of the golden's decoder logits: the decoder output at position
    // len(decoder_prompt) - 1 + row.
    static std::span<const float> golden_row(const SpeechPrompt& p, size_t row, size_t vocab) {
        return std::span<const float>(p.logits).subspan(row * vocab, vocab);
    }

    nlohmann::json golden;
    std::vector<SpeechPrompt> prompts;
    std::unique_ptr<tfx::ModelSession> session;
};

}  // namespace

TEST_P(SpeechSeq2Seq, MatchesReference) {
    const tfx_model_info& info = session->info();
    ASSERT_GT(info.input_feature_tokens, 0);
    const auto vocab = static_cast<size_t>(info.output_size), hidden = static_cast<size_t>(info.hidden_size);
    const auto encoder_tokens = static_cast<size_t>(info.input_feature_tokens);
    for (const SpeechPrompt& p : prompts) {
        SCOPED_TRACE(p.name);
        EXPECT_LE(max_abs_diff(p.features, p.golden_features), kTolerance);
        ASSERT_EQ(p.encoder_states.size(), encoder_tokens * hidden);
        const size_t first_row = p.decoder_prompt.size() - 1, rows = p.decoder_ids.size() - first_row;
        ASSERT_EQ(p.logits.size(), rows * vocab);
        // One cache-less forward: the encoder, then every decoder position at once.
        tfx::ForwardCall whole(*session);
        whole.run({.ids = p.decoder_ids, .output = tfx::SequenceInput::Output::all, .input_features = p.features});
        EXPECT_LE(max_abs_diff(whole.encoder_output(), p.encoder_states), kTolerance);
        for (size_t r = 0; r < rows; ++r) {
            EXPECT_LE(max_abs_diff(whole.row(static_cast<int64_t>(first_row + r)), golden_row(p, r, vocab)), kTolerance)
                << "row " << r;
        }
        // Through the caches: the prompt with the encoding call, then one token per call; and
        // the same audio twice in one batch (two encoder sequences).
        tfx::PagedKvCache self(session->device(), info.num_layers, info.num_kv_heads, info.head_dim, {});
        tfx::PagedKvCache cross(session->device(), info.num_cross_layers, info.num_kv_heads, info.head_dim, {});
        tfx::ForwardCall step(*session, &self, &cross);
        std::vector<tfx::SequenceInput> batch;
        for (int copy = 0; copy < 2; ++copy) {
            batch.push_back({.ids = p.decoder_prompt,
                             .cache_seq = self.add(),
                             .cross_seq = cross.add(),
                             .input_features = p.features});
        }
        for (size_t r = 0; r < rows; ++r) {
            step.run(batch);
            for (int64_t s = 0; s < 2; ++s) {
                EXPECT_LE(max_abs_diff(step.row(s), golden_row(p, r, vocab)), kTolerance) << "step " << r;
            }
            if (first_row + r + 1 == p.decoder_ids.size()) break;
            for (auto& in : batch) {
                in.ids = std::span(p.decoder_ids).subspan(first_row + r + 1, 1);
                in.input_features = {};
            }
        }
        EXPECT_EQ(cross.length(batch[0].cross_seq), static_cast<int64_t>(encoder_tokens));
    }
}

TEST_P(SpeechSeq2Seq, GreedyGenerationFromTheDecoderPromptMatchesReference) {
    // As the golden ran: eos ignored, begin_suppress_tokens off.
    tfx::GenerationConfig greedy;
    greedy.ignore_eos = true;
    greedy.decoder_start_token_id = golden.at("decoder_start_token_id").get<int32_t>();
    for (const SpeechPrompt& p : prompts) {
        SCOPED_TRACE(p.name);
        greedy.max_new_tokens = static_cast<int64_t>(p.greedy.size());
        tfx::EncoderDecoderInputs inputs{.decoder_prompt = p.decoder_prompt,
                                         .input_features = {std::make_shared<const std::vector<float>>(p.features)}};
        tfx::GenerateOptions options;
        options.encoder_decoder = inputs;
        EXPECT_EQ(tfx::generate(*session, {{}}, greedy, options).new_tokens.at(0), p.greedy);

        // One beam is greedy search.
        tfx::GenerationConfig one_beam = greedy;
        one_beam.num_beams = 1;
        EXPECT_EQ(tfx::beam_search(*session, {{}}, one_beam, inputs).new_tokens.at(0), p.greedy);

        // A request joining a Generator that is already decoding another.
        tfx::Generator generator(*session);
        const tfx::Generator::RequestOptions request{.decoder_prompt = p.decoder_prompt,
                                                     .input_features = inputs.input_features[0]};
        const auto first = generator.add({}, greedy, greedy.max_new_tokens, request);
        std::vector<int32_t> first_tokens, second_tokens;
        tfx::Generator::RequestId second = first;
        for (int step = 0; !generator.idle() || second == first; ++step) {
            if (step == 3) second = generator.add({}, greedy, greedy.max_new_tokens, request);
            for (const auto& e : generator.step())
                (e.request == first ? first_tokens : second_tokens).push_back(e.token);
        }
        EXPECT_EQ(first_tokens, p.greedy);
        EXPECT_EQ(second_tokens, p.greedy);
    }
}

INSTANTIATE_TEST_SUITE_P(Tiny, SpeechSeq2Seq, ::testing::Values("cpu", "guarded", "torch"),
                         [](const auto& case_info) { return std::string("whisper_") + case_info.param; });

// What the host refuses a speech encoder, and what it refuses other models.
TEST(SpeechSeq2SeqCalls, MisuseIsRefusedWithAReason) {
    TFX_TEST_DATA_OR_SKIP(model, "tiny/whisper");
    auto session = tfx::AutoModel::from_pretrained(model);
    const tfx_model_info& info = session->info();
    auto refused = [&](const std::function<void()>& run, const std::string& reason) {
        try {
            run();
            ADD_FAILURE() << "accepted; expected: " << reason;
        } catch (const std::exception& e) {
            EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
        }
    };
    const std::vector<int32_t> decoder_ids{379};
    std::vector<float> features(static_cast<size_t>(info.input_feature_bins) * info.input_feature_frames, 0.5f);
    tfx::ForwardCall call(*session);
    refused([&] { call.run({.ids = decoder_ids, .encoder_ids = decoder_ids}); }, "takes input features, not token ids");
    refused([&] { call.run({.ids = decoder_ids, .input_features = std::span(features).first(10)}); },
            "the input features must be f32 [80, 3000]");
    features[7] = std::numeric_limits<float>::quiet_NaN();
    refused([&] { call.run({.ids = decoder_ids, .input_features = features}); }, "not finite");
    refused([&] { call.run({.ids = decoder_ids}); }, "needs input features");
    tfx::GenerationConfig config;
    config.max_new_tokens = 2;
    config.decoder_start_token_id = 379;
    refused([&] { (void)tfx::generate(*session, {{379}}, config); }, "a speech model generates from input features");

    TFX_TEST_DATA_OR_SKIP(bart, "tiny/bart");
    auto text = tfx::AutoModel::from_pretrained(bart);
    tfx::ForwardCall text_call(*text);
    refused([&] { text_call.run({.ids = decoder_ids, .encoder_ids = decoder_ids, .input_features = features}); },
            "takes token ids, not input features");
    tfx::GenerateOptions options;
    options.encoder_decoder.input_features = {std::make_shared<const std::vector<float>>(features)};
    config.decoder_start_token_id = 2;
    refused([&] { (void)tfx::generate(*text, {{1, 2}}, config, options); }, "input features need a speech model");
}
