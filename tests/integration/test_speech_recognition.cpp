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

    std::filesystem::path fixture(const std::string& name, bool whisper_fields, bool multilingual = true) {
        return tfx::test::write_whisper_fixture(tiny_, std::filesystem::temp_directory_path() / ("tfx_asr_" + name),
                                                whisper_fields, multilingual);
    }

    std::filesystem::path tiny_;
    tfx::Audio audio_;
    std::vector<int32_t> golden_prompt_, golden_tokens_;
};

}  // namespace

TEST_F(SpeechRecognition, TranscribesWithWhispersPromptAsTheGoldenDid) {
    tfx::AutomaticSpeechRecognitionPipeline asr(fixture("multi", true).string(), {});
    EXPECT_EQ(asr.decoder_prompt("<|en|>", "transcribe"), golden_prompt_);
    EXPECT_EQ(asr.decoder_prompt("<|de|>", "translate"), (std::vector<int32_t>{379, 378, 377, 382}));
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
    const std::string expected = logits[380] > logits[378] ? "<|en|>" : "<|de|>";
    EXPECT_EQ(asr.detect_language(features.values), expected);
    tfx::GenerationConfig config = asr.config();
    config.max_new_tokens = 4;
    config.max_length.reset();
    const tfx::Transcription detected = asr({audio_}, {}, config).at(0);
    EXPECT_EQ(detected.language, expected);
    EXPECT_EQ(detected.tokens, asr({audio_}, {.language = expected}, config).at(0).tokens);
}

TEST_F(SpeechRecognition, EnglishOnlyAndOlderFoldersBuildTheirPrompts) {
    tfx::AutomaticSpeechRecognitionPipeline english(fixture("english", true, false).string(), {});
    EXPECT_FALSE(english.multilingual());
    EXPECT_EQ(english.decoder_prompt("", "transcribe"), (std::vector<int32_t>{379, 382}));
    tfx::GenerationConfig config = english.config();
    config.max_new_tokens = 2;
    config.max_length.reset();
    EXPECT_NE(error_of([&] { (void)english({audio_}, {.language = "de"}, config); }).find("English-only"),
              std::string::npos);
    // No lang_to_id: the tokenizer's tokens of Whisper's names; detection needs the list.
    tfx::AutomaticSpeechRecognitionPipeline older(fixture("older", false).string(), {});
    EXPECT_TRUE(older.multilingual());
    EXPECT_EQ(older.decoder_prompt("<|en|>", "transcribe"), golden_prompt_);
    EXPECT_NE(error_of([&] { (void)older({audio_}, {}, config); }).find("give --language"), std::string::npos);
}

TEST_F(SpeechRecognition, RefusesLongAudioAndOtherModels) {
    tfx::AutomaticSpeechRecognitionPipeline asr(fixture("long", true).string(), {});
    tfx::Audio long_audio{.sampling_rate = 16000, .samples = std::vector<float>(16000 * 31, 0.0f)};
    EXPECT_NE(error_of([&] { (void)asr({long_audio}, {.language = "en"}, asr.config()); }).find("long-form"),
              std::string::npos);
    tfx::Audio other_rate{.sampling_rate = 8000, .samples = std::vector<float>(8000, 0.0f)};
    EXPECT_NE(error_of([&] { (void)asr({other_rate}, {.language = "en"}, asr.config()); }).find("8000 Hz"),
              std::string::npos);
    TFX_TEST_DATA_OR_SKIP(tinystories, "models/tinystories-656k");
    EXPECT_NE(error_of([&] {
                  tfx::AutomaticSpeechRecognitionPipeline(tinystories.string(), {});
              }).find("needs a speech model"),
              std::string::npos);
}
