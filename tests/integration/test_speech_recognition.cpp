// The automatic-speech-recognition pipeline on the tiny Whisper with a fixture tokenizer
// (whisper_fixture.h): Whisper's decoder prompt from generation_config.json (language, task,
// no timestamps; none of them for an English-only model; forced_decoder_ids or the tokenizer's
// tokens in an older folder), language detection, the golden's greedy tokens and their text,
// and what it refuses.
#include <filesystem>

#include <gtest/gtest.h>

#include "../unit/test_data.h"
#include "core/forward_call.h"
#include "golden_logits.h"
#include "registry/speech_recognition.h"
#include "whisper_fixture.h"

namespace {

std::string error_of(const std::function<void()>& run) {
    try {
        run();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no error)";
}

class SpeechRecognition : public ::testing::Test {
  protected:
    void SetUp() override {
        TFX_TEST_DATA_OR_SKIP(tiny, "tiny/whisper");
        TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tiny/whisper.json");
        tiny_ = tiny;
        const nlohmann::json golden = tfx::test::read_json(golden_path);
        const auto& prompt = golden.at("prompts").at(0);
        audio_ = tfx::read_audio(tiny_ / prompt.at("audio").at("file").get<std::string>());
        golden_prompt_ = prompt.at("decoder_prompt_ids").get<std::vector<int32_t>>();
        golden_tokens_ = prompt.at("greedy").at("new_tokens").get<std::vector<int32_t>>();
    }

    std::filesystem::path fixture(const std::string& name, bool whisper_fields, bool multilingual = true,
                                  const nlohmann::json& more = nlohmann::json::object()) {
        return tfx::test::write_whisper_fixture(tiny_, std::filesystem::temp_directory_path() / ("tfx_asr_" + name),
                                                whisper_fields, multilingual, more);
    }

    std::filesystem::path tiny_;
    tfx::Audio audio_;
    std::vector<int32_t> golden_prompt_, golden_tokens_;
};

}  // namespace

TEST_F(SpeechRecognition, TranscribesWithWhispersPromptAsTheGoldenDid) {
    tfx::AutomaticSpeechRecognitionPipeline asr(fixture("multi", true).string(), {});
    // A language alone brings the transcribe task, as Whisper's generate() does.
    EXPECT_EQ(asr.decoder_prompt({.language = "en"}), golden_prompt_);
    EXPECT_EQ(asr.decoder_prompt({.language = "<|EN|>", .task = "transcribe"}), golden_prompt_);
    EXPECT_EQ(asr.decoder_prompt({.language = "de", .task = "translate"}), (std::vector<int32_t>{379, 378, 377, 382}));
    // Or by name, any case, aliases included.
    EXPECT_EQ(asr.decoder_prompt({.language = "English"}), golden_prompt_);
    EXPECT_EQ(asr.decoder_prompt({.language = "german", .task = "translate"}),
              (std::vector<int32_t>{379, 378, 377, 382}));
    tfx::GenerationConfig config = asr.config();
    config.max_new_tokens = static_cast<int64_t>(golden_tokens_.size());
    config.max_length.reset();
    for (const std::string language : {"en", "<|en|>"}) {
        const tfx::Transcription t = asr({audio_}, {.language = language}, config).at(0);
        EXPECT_EQ(t.language, "<|en|>");
        EXPECT_EQ(t.tokens, golden_tokens_);
        std::string expected;
        for (int32_t id : golden_tokens_) expected += tfx::test::whisper_fixture_text(id);
        EXPECT_EQ(t.text, expected);
    }
    EXPECT_NE(error_of([&] { (void)asr({audio_}, {.language = "xx"}, config); }).find("no language token <|xx|>"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  (void)asr({audio_}, {.language = "en", .task = "summarize"}, config);
              }).find("expected transcribe or translate"),
              std::string::npos);
}

TEST_F(SpeechRecognition, DetectsTheLanguageAsWhisperDoes) {
    tfx::AutomaticSpeechRecognitionPipeline asr(fixture("detect", true).string(), {});
    const tfx::MelFeatures features = tfx::speech_features(asr.session(), audio_);
    // One decoder step from <|startoftranscript|>: the better of the two language tokens.
    tfx::ForwardCall call(asr.session());
    const std::vector<int32_t> start{379};
    const auto logits = call.run({.ids = start, .input_features = features.values});
    const int32_t expected_id = logits[380] > logits[378] ? 380 : 378;
    const std::string expected = expected_id == 380 ? "<|en|>" : "<|de|>";
    EXPECT_EQ(asr.detect_language(features.values), expected);
    // Neither language nor task: the detected language and no task token.
    EXPECT_EQ(asr.decoder_prompt({}, &features.values), (std::vector<int32_t>{379, expected_id, 382}));
    EXPECT_EQ(asr.decoder_prompt({.task = "translate"}, &features.values),
              (std::vector<int32_t>{379, expected_id, 377, 382}));
    tfx::GenerationConfig config = asr.config();
    config.max_new_tokens = 4;
    config.max_length.reset();
    EXPECT_EQ(asr({audio_}, {}, config).at(0).language, expected);
}

TEST_F(SpeechRecognition, EnglishOnlyForcedIdsAndOlderFoldersBuildTheirPrompts) {
    tfx::AutomaticSpeechRecognitionPipeline english(fixture("english", true, false).string(), {});
    EXPECT_EQ(english.decoder_prompt({}), (std::vector<int32_t>{379, 382}));
    EXPECT_NE(error_of([&] { (void)english.decoder_prompt({.language = "de"}); }).find("English-only"),
              std::string::npos);
    // forced_decoder_ids with an open language: detected into it; a language asked for drops them.
    const nlohmann::json forced = {{"forced_decoder_ids", {{1, nullptr}, {2, 381}}}};
    tfx::AutomaticSpeechRecognitionPipeline open(fixture("forced", true, true, forced).string(), {});
    const tfx::MelFeatures features = tfx::speech_features(open.session(), audio_);
    const int32_t detected = open.prompt_fields().lang_to_id.at(open.detect_language(features.values));
    EXPECT_EQ(open.decoder_prompt({}, &features.values), (std::vector<int32_t>{379, detected, 381, 382}));
    EXPECT_EQ(open.decoder_prompt({.language = "de"}), (std::vector<int32_t>{379, 378, 381, 382}));
    const nlohmann::json gap = {{"forced_decoder_ids", {{1, 380}, {3, 381}}}};
    tfx::AutomaticSpeechRecognitionPipeline gapped(fixture("gap", true, true, gap).string(), {});
    EXPECT_NE(error_of([&] { (void)gapped.decoder_prompt({}); }).find("positions must run 1, 2, 3"), std::string::npos);
    // No prompt fields at all: the start token alone; a language needs lang_to_id.
    tfx::AutomaticSpeechRecognitionPipeline older(fixture("older", false).string(), {});
    EXPECT_EQ(older.decoder_prompt({}), (std::vector<int32_t>{379}));
    EXPECT_NE(error_of([&] { (void)older.decoder_prompt({.language = "en"}); }).find("lists no languages"),
              std::string::npos);
    // Fields that are not what Whisper's generation config holds are refused naming them.
    for (const auto& [field, value] :
         std::vector<std::pair<std::string, nlohmann::json>>{{"lang_to_id", {{"<|en|>", "380"}}},
                                                             {"no_timestamps_token_id", 9999},
                                                             {"is_multilingual", "yes"},
                                                             {"forced_decoder_ids", {{1}}}}) {
        const std::string message = error_of([&] {
            tfx::AutomaticSpeechRecognitionPipeline(fixture("bad", true, true, {{field, value}}).string(), {});
        });
        EXPECT_NE(message.find("generation_config.json: field '" + field + "'"), std::string::npos) << message;
    }
}

TEST_F(SpeechRecognition, RefusesLongAudioAndOtherModels) {
    tfx::AutomaticSpeechRecognitionPipeline asr(fixture("long", true).string(), {});
    tfx::Audio long_audio{.sampling_rate = 16000, .samples = std::vector<float>(16000 * 31, 0.0f)};
    EXPECT_NE(error_of([&] { (void)asr({long_audio}, {.language = "en"}, asr.config()); }).find("long-form"),
              std::string::npos);
    // 40 s at 8 kHz: the rate is what is wrong, and the error says so.
    tfx::Audio other_rate{.sampling_rate = 8000, .samples = std::vector<float>(8000 * 40, 0.0f)};
    EXPECT_NE(error_of([&] { (void)asr({other_rate}, {.language = "en"}, asr.config()); }).find("8000 Hz"),
              std::string::npos);
    TFX_TEST_DATA_OR_SKIP(tinystories, "models/tinystories-656k");
    EXPECT_NE(error_of([&] {
                  tfx::AutomaticSpeechRecognitionPipeline(tinystories.string(), {});
              }).find("needs a speech model"),
              std::string::npos);
}
