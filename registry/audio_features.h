// Audio as transformers' speech models receive it: a sound file decoded to mono float samples
// (libsndfile: WAV, FLAC, Ogg; 16-bit PCM as int16 / 32768), and WhisperFeatureExtractor's
// log-mel input_features: the samples padded or cut to n_samples, a periodic-Hann STFT
// (n_fft, hop_length, centred with reflection, through FFTW), the power of each bin with the
// last frame dropped, Slaney-scale mel filters with Slaney normalisation, log10 floored at 1e-10
// and at the maximum less 8, then (x + 4) / 4. Files are untrusted: a malformed one gives an
// error naming it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace tfx {

struct Audio {
    int64_t sampling_rate = 0;
    std::vector<float> samples;  // mono (channels averaged)
};

// The longest audio read (an hour at 48 kHz).
constexpr int64_t kMaxAudioSamples = int64_t{48000} * 3600;

Audio read_audio(const std::filesystem::path& path);
Audio decode_audio(std::span<const uint8_t> bytes, const std::string& name);

// One input's features: [mel_bins, frames], row-major.
struct MelFeatures {
    int64_t mel_bins = 0, frames = 0;
    std::vector<float> values;
};

class WhisperFeatureExtractor {
  public:
    // Reads `model_dir`/preprocessor_config.json (feature_extractor_type WhisperFeatureExtractor).
    explicit WhisperFeatureExtractor(const std::filesystem::path& model_dir);
    // The settings of a config (the defaults: 80 bins, 16 kHz, 30 s chunks, n_fft 400, hop 160).
    WhisperFeatureExtractor(int64_t feature_size, int64_t sampling_rate, int64_t n_samples, int64_t n_fft,
                            int64_t hop_length);

    // Throws unless the audio has the extractor's sampling rate (transformers does not resample).
    MelFeatures operator()(const Audio& audio) const;
    int64_t sampling_rate() const { return sampling_rate_; }
    int64_t n_samples() const { return n_samples_; }  // the window: longer audio is cut, shorter padded

  private:
    int64_t feature_size_, sampling_rate_, n_samples_, n_fft_, hop_;
    std::vector<double> window_;       // periodic Hann, n_fft
    std::vector<double> mel_filters_;  // [feature_size][n_fft / 2 + 1]
};

}  // namespace tfx
