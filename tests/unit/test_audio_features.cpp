// Audio as transformers' speech models see it: sound files decoded to mono samples (malformed
// ones refused with the file's name) and WhisperFeatureExtractor's log-mel input_features for
// the golden's WAV, equal to transformers' within 1e-4.
#include <cstdio>
#include <filesystem>
#include <vector>

#include <gtest/gtest.h>
#include <sndfile.h>

#include "../integration/golden_logits.h"
#include "error_of.h"
#include "registry/audio_features.h"
#include "test_data.h"

using tfx::test::error_of;

TEST(AudioFeatures, WhisperInputFeaturesEqualTransformers) {
    TFX_TEST_DATA_OR_SKIP(model, "tiny/whisper");
    TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tiny/whisper.json");
    const nlohmann::json golden = tfx::test::read_json(golden_path);
    const tfx::WhisperFeatureExtractor extractor(model);
    for (const auto& prompt : golden.at("prompts")) {
        const tfx::Audio audio = tfx::read_audio(model / prompt.at("audio").at("file").get<std::string>());
        EXPECT_EQ(audio.sampling_rate, prompt["audio"]["sampling_rate"].get<int64_t>());
        EXPECT_EQ(static_cast<int64_t>(audio.samples.size()), prompt["audio"]["n_samples"].get<int64_t>());
        const tfx::MelFeatures got = extractor(audio);
        const std::vector<float> want = tfx::test::logits_of(prompt.at("input_features"));
        EXPECT_EQ(got.mel_bins, 80);
        EXPECT_EQ(got.frames, 3000);
        ASSERT_EQ(got.values.size(), want.size());
        EXPECT_LE(tfx::test::max_abs_diff(got.values, want), 1e-4f);
    }
}

TEST(AudioFeatures, StereoIsAveragedAndBadInputIsRefused) {
    // A stereo 16-bit WAV written by libsndfile: left 0.5, right -0.25 -> mono 0.125.
    const auto path = std::filesystem::temp_directory_path() / "tfx_stereo_test.wav";
    SF_INFO info{};
    info.samplerate = 8000;
    info.channels = 2;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    SNDFILE* file = sf_open(path.c_str(), SFM_WRITE, &info);
    ASSERT_NE(file, nullptr) << sf_strerror(nullptr);
    const std::vector<short> frames = {16384, -8192, 16384, -8192, 16384, -8192};
    sf_writef_short(file, frames.data(), 3);
    sf_close(file);
    const tfx::Audio audio = tfx::read_audio(path);
    std::filesystem::remove(path);
    EXPECT_EQ(audio.sampling_rate, 8000);
    EXPECT_EQ(audio.samples, (std::vector<float>{0.125f, 0.125f, 0.125f}));
    // Whisper's extractor does not resample.
    const tfx::WhisperFeatureExtractor extractor(80, 16000, 480000, 400, 160);
    EXPECT_NE(error_of([&] { (void)extractor(audio); }).find("8000 Hz"), std::string::npos);
    const std::vector<uint8_t> text = {'n', 'o', 't', ' ', 'a', 'u', 'd', 'i', 'o'};
    EXPECT_NE(
        error_of([&] { (void)tfx::decode_audio(text, "notes.wav"); }).find("notes.wav: not a readable audio file"),
        std::string::npos);
}
