// Speech models' input (Whisper): a sound file through the model folder's feature extractor,
// checked against what the model's encoder takes.
#pragma once

#include "core/model_session.h"
#include "registry/audio_features.h"

namespace tfx {

// The model folder's feature extractor (preprocessor_config.json) over `audio`; throws unless
// the model is a speech model whose encoder takes features of that shape.
MelFeatures speech_features(const ModelSession& session, const Audio& audio);

}  // namespace tfx
