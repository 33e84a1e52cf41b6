#include "registry/audio_features.h"

#include <fftw3.h>
#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <numbers>

#include "core/json_file.h"
#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

[[noreturn]] void bad_audio(const std::string& name, const std::string& why) {
    throw sdk::Error(TFX_ERR_FORMAT, name + ": not a readable audio file: " + why);
}

// libsndfile reads from memory through these callbacks.
struct Memory {
    std::span<const uint8_t> bytes;
    sf_count_t at = 0;
};

sf_count_t memory_length(void* user) {
    return static_cast<sf_count_t>(static_cast<Memory*>(user)->bytes.size());
}

sf_count_t memory_seek(sf_count_t offset, int whence, void* user) {
    auto* m = static_cast<Memory*>(user);
    const auto size = static_cast<sf_count_t>(m->bytes.size());
    const sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->at : size;
    m->at = std::clamp<sf_count_t>(base + offset, 0, size);
    return m->at;
}

sf_count_t memory_read(void* out, sf_count_t count, void* user) {
    auto* m = static_cast<Memory*>(user);
    const sf_count_t n = std::clamp<sf_count_t>(count, 0, static_cast<sf_count_t>(m->bytes.size()) - m->at);
    std::memcpy(out, m->bytes.data() + m->at, static_cast<size_t>(n));
    m->at += n;
    return n;
}

sf_count_t memory_write(const void*, sf_count_t, void*) {
    return 0;
}

sf_count_t memory_tell(void* user) {
    return static_cast<Memory*>(user)->at;
}

// transformers' hertz_to_mel / mel_to_hertz, mel_scale "slaney": linear below 1 kHz, log above.
// Each direction's step computed as transformers computes it (27 / ln 6.4, and ln 6.4 / 27).
constexpr double kMinLogHertz = 1000.0, kMinLogMel = 15.0;

double hertz_to_mel(double hertz) {
    const double log_step = 27.0 / std::log(6.4);
    return hertz >= kMinLogHertz ? kMinLogMel + std::log(hertz / kMinLogHertz) * log_step : 3.0 * hertz / 200.0;
}

double mel_to_hertz(double mel) {
    const double log_step = std::log(6.4) / 27.0;
    return mel >= kMinLogMel ? kMinLogHertz * std::exp(log_step * (mel - kMinLogMel)) : 200.0 * mel / 3.0;
}

// numpy's linspace: start + i * step, the last value exactly `stop`.
std::vector<double> linspace(double start, double stop, int64_t count) {
    std::vector<double> v(static_cast<size_t>(count));
    const double step = count > 1 ? (stop - start) / static_cast<double>(count - 1) : 0.0;
    for (int64_t i = 0; i < count; ++i) v[static_cast<size_t>(i)] = start + static_cast<double>(i) * step;
    if (count > 1) v.back() = stop;
    return v;
}

// FFTW's planner is not thread-safe; execution is.
std::mutex& fftw_planner() {
    static std::mutex m;
    return m;
}

}  // namespace

Audio decode_audio(std::span<const uint8_t> bytes, const std::string& name) {
    Memory memory{bytes};
    SF_VIRTUAL_IO io{memory_length, memory_seek, memory_read, memory_write, memory_tell};
    SF_INFO info{};
    SNDFILE* file = sf_open_virtual(&io, SFM_READ, &info, &memory);
    if (file == nullptr) bad_audio(name, sf_strerror(nullptr));
    struct Closer {
        SNDFILE* f;
        ~Closer() { sf_close(f); }
    } closer{file};
    if (info.channels <= 0 || info.channels > 64) bad_audio(name, std::to_string(info.channels) + " channels");
    if (info.samplerate <= 0) bad_audio(name, "no sampling rate");
    // Read in chunks, not by the header's frame count: a small file may claim any length.
    Audio audio{info.samplerate, {}};
    const auto channels = static_cast<size_t>(info.channels);
    constexpr sf_count_t kChunk = 1 << 16;
    std::vector<float> interleaved(static_cast<size_t>(kChunk) * channels);
    for (;;) {
        const sf_count_t read = sf_readf_float(file, interleaved.data(), kChunk);
        if (read <= 0) break;
        if (static_cast<int64_t>(audio.samples.size()) + read > kMaxAudioSamples) {
            bad_audio(name, "more than " + std::to_string(kMaxAudioSamples) + " samples per channel");
        }
        for (sf_count_t i = 0; i < read; ++i) {
            float sum = 0.0f;
            for (size_t c = 0; c < channels; ++c) sum += interleaved[static_cast<size_t>(i) * channels + c];
            audio.samples.push_back(sum / static_cast<float>(channels));
        }
    }
    if (sf_error(file) != SF_ERR_NO_ERROR) bad_audio(name, sf_strerror(file));
    return audio;
}

Audio read_audio(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw sdk::Error(TFX_ERR_NOT_FOUND, path.string() + ": cannot open");
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return decode_audio(bytes, path.string());
}

WhisperFeatureExtractor::WhisperFeatureExtractor(int64_t feature_size, int64_t sampling_rate, int64_t n_samples,
                                                 int64_t n_fft, int64_t hop_length)
    : feature_size_(feature_size),
      sampling_rate_(sampling_rate),
      n_samples_(n_samples),
      n_fft_(n_fft),
      hop_(hop_length) {
    if (feature_size <= 0 || sampling_rate <= 0 || n_samples <= 0 || n_fft < 2 || hop_length <= 0 ||
        n_samples < n_fft / 2 + 1 || n_fft > (1 << 16) || feature_size > 1024) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "WhisperFeatureExtractor: implausible settings");
    }
    window_.resize(static_cast<size_t>(n_fft));
    for (int64_t i = 0; i < n_fft; ++i) {  // torch.hann_window(n_fft), periodic
        window_[static_cast<size_t>(i)] =
            0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * static_cast<double>(i) / static_cast<double>(n_fft));
    }
    // mel_filter_bank(n_fft / 2 + 1 bins, feature_size filters, 0 to 8000 Hz, slaney scale and norm).
    const int64_t bins = n_fft / 2 + 1;
    const std::vector<double> fft_freqs = linspace(0.0, static_cast<double>(sampling_rate / 2), bins);
    const std::vector<double> mels = linspace(hertz_to_mel(0.0), hertz_to_mel(8000.0), feature_size + 2);
    std::vector<double> freqs(mels.size());
    std::transform(mels.begin(), mels.end(), freqs.begin(), mel_to_hertz);
    mel_filters_.assign(static_cast<size_t>(feature_size * bins), 0.0);
    for (int64_t m = 0; m < feature_size; ++m) {
        const auto mi = static_cast<size_t>(m);
        const double norm = 2.0 / (freqs[mi + 2] - freqs[mi]);
        for (int64_t f = 0; f < bins; ++f) {
            const double hz = fft_freqs[static_cast<size_t>(f)];
            const double down = (hz - freqs[mi]) / (freqs[mi + 1] - freqs[mi]);
            const double up = (freqs[mi + 2] - hz) / (freqs[mi + 2] - freqs[mi + 1]);
            mel_filters_[static_cast<size_t>(m * bins + f)] = std::max(0.0, std::min(down, up)) * norm;
        }
    }
}

WhisperFeatureExtractor::WhisperFeatureExtractor(const std::filesystem::path& model_dir)
    : WhisperFeatureExtractor([&] {
          const sdk::Config c = load_json_file(model_dir / "preprocessor_config.json");
          const std::string type = c.get_or<std::string>("feature_extractor_type", "");
          if (type != "WhisperFeatureExtractor") {
              c.fail("feature_extractor_type", "'" + type + "' is not supported (supported: WhisperFeatureExtractor)");
          }
          return WhisperFeatureExtractor(c.get_or<int64_t>("feature_size", 80),
                                         c.get_or<int64_t>("sampling_rate", 16000),
                                         c.get_or<int64_t>("n_samples", 480000), c.get_or<int64_t>("n_fft", 400),
                                         c.get_or<int64_t>("hop_length", 160));
      }()) {}

MelFeatures WhisperFeatureExtractor::operator()(const Audio& audio) const {
    if (audio.sampling_rate != sampling_rate_) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "the audio is sampled at " + std::to_string(audio.sampling_rate) +
                                                       " Hz; the model's feature extractor takes " +
                                                       std::to_string(sampling_rate_) + " Hz (resample it first)");
    }
    // Padded with zeros or cut to n_samples, then reflected by n_fft / 2 at both ends (torch.stft's centring).
    const int64_t n = n_samples_, half = n_fft_ / 2, bins = n_fft_ / 2 + 1, frames = n / hop_;
    std::vector<double> x(static_cast<size_t>(n), 0.0);
    std::copy_n(audio.samples.begin(), std::min<int64_t>(n, static_cast<int64_t>(audio.samples.size())), x.begin());
    auto sample = [&](int64_t i) {  // the reflected signal at padded index i
        int64_t j = i - half;
        if (j < 0) j = -j;
        if (j >= n) j = 2 * (n - 1) - j;
        return x[static_cast<size_t>(j)];
    };
    double* in = fftw_alloc_real(static_cast<size_t>(n_fft_));
    fftw_complex* out = fftw_alloc_complex(static_cast<size_t>(bins));
    fftw_plan plan;
    {
        std::lock_guard lock(fftw_planner());
        plan = fftw_plan_dft_r2c_1d(static_cast<int>(n_fft_), in, out, FFTW_ESTIMATE);
    }
    // The power of every bin of every frame but the last (transformers drops it), mel-filtered.
    std::vector<double> mel(static_cast<size_t>(feature_size_ * frames));
    std::vector<double> power(static_cast<size_t>(bins));
    for (int64_t t = 0; t < frames; ++t) {
        for (int64_t k = 0; k < n_fft_; ++k) in[k] = window_[static_cast<size_t>(k)] * sample(t * hop_ + k);
        fftw_execute(plan);
        for (int64_t f = 0; f < bins; ++f)
            power[static_cast<size_t>(f)] = out[f][0] * out[f][0] + out[f][1] * out[f][1];
        for (int64_t m = 0; m < feature_size_; ++m) {
            const double* filter = &mel_filters_[static_cast<size_t>(m * bins)];
            double sum = 0.0;
            for (int64_t f = 0; f < bins; ++f) sum += filter[f] * power[static_cast<size_t>(f)];
            mel[static_cast<size_t>(m * frames + t)] = sum;
        }
    }
    {
        std::lock_guard lock(fftw_planner());
        fftw_destroy_plan(plan);
    }
    fftw_free(in);
    fftw_free(out);
    // log10 floored at 1e-10, then at the maximum less 8, then (x + 4) / 4.
    double top = -INFINITY;
    for (double& v : mel) top = std::max(top, v = std::log10(std::max(v, 1e-10)));
    MelFeatures result{feature_size_, frames, std::vector<float>(mel.size())};
    for (size_t i = 0; i < mel.size(); ++i)
        result.values[i] = static_cast<float>((std::max(mel[i], top - 8.0) + 4.0) / 4.0);
    return result;
}

}  // namespace tfx
