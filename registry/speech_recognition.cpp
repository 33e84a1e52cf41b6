#include "registry/speech_recognition.h"

#include <string>

#include "tfx/sdk/error.hpp"

namespace tfx {

MelFeatures speech_features(const ModelSession& session, const Audio& audio) {
    const tfx_model_info& info = session.info();
    if (info.input_feature_tokens <= 0)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         session.architecture() + " is not a speech model (it takes no audio)");
    MelFeatures features = WhisperFeatureExtractor(session.model_dir())(audio);
    if (features.mel_bins != info.input_feature_bins || features.frames != info.input_feature_frames) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         (session.model_dir() / "preprocessor_config.json").string() + " makes input features [" +
                             std::to_string(features.mel_bins) + ", " + std::to_string(features.frames) + "]; " +
                             session.architecture() + " takes [" + std::to_string(info.input_feature_bins) + ", " +
                             std::to_string(info.input_feature_frames) +
                             "] (num_mel_bins and 2 x max_source_positions in config.json)");
    }
    return features;
}

}  // namespace tfx
