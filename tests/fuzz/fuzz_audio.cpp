// libFuzzer target: sound files (libsndfile: WAV, FLAC, Ogg, ...) decoded for the speech
// feature extractors, and the decoded samples through a small log-mel extractor.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>

#include "registry/audio_features.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const tfx::WhisperFeatureExtractor extractor(8, 16000, 1600, 64, 32);
    try {
        tfx::Audio audio = tfx::decode_audio(std::span(data, size), "fuzz");
        audio.sampling_rate = 16000;  // reach the features whatever the header says
        (void)extractor(audio);
    } catch (const std::exception&) {
    }
    return 0;
}
