// automatic-speech-recognition, as transformers' pipeline runs Whisper
// (WhisperForConditionalGeneration.generate): a sound file through the model folder's feature
// extractor into the encoder, the decoder started from Whisper's prompt
// <|startoftranscript|> <|language|> <|task|> <|notimestamps|>, generated with the folder's
// generation config (suppress_tokens, begin_suppress_tokens, max_length), and decoded without
// special tokens. The prompt comes from generation_config.json's lang_to_id, task_to_id and
// no_timestamps_token_id as Whisper's generate() builds it (an English-only model has no
// language or task token); a multilingual model given no language detects it first, as
// Whisper does: one decoder step from <|startoftranscript|>, the most likely language token.
// Older folders without those fields use forced_decoder_ids, else the tokenizer's tokens of
// those names.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/generation_config.h"
#include "core/model_session.h"
#include "registry/audio_features.h"
#include "registry/pipelines.h"

namespace tfx {

// The model folder's feature extractor (preprocessor_config.json) over `audio`; throws unless
// the model is a speech model whose encoder takes features of that shape.
MelFeatures speech_features(const ModelSession& session, const Audio& audio);

struct Transcription {
    std::string text;
    std::vector<int32_t> tokens;  // the generated tokens (after the prompt), eos included when hit
    std::string language;         // the language token used ("<|en|>"), empty when the prompt has none
};

class AutomaticSpeechRecognitionPipeline : public TaskPipeline {
  public:
    struct Options {
        // "en", "english" or "<|en|>"; empty: detected (multilingual models).
        std::string language;
        std::string task = "transcribe";  // or "translate" (to English)
    };

    // Throws unless the model is a speech encoder-decoder (whisper).
    AutomaticSpeechRecognitionPipeline(const std::string& model, const LoadOptions& options);

    // The generation config the pipeline uses (generation_config.json; the caller may change it).
    const GenerationConfig& config() const { return config_; }

    // Each audio's transcription, generated with `config`. Audio longer than the feature
    // extractor's window (Whisper's 30 s) is refused: long-form transcription is not built yet.
    std::vector<Transcription> operator()(const std::vector<Audio>& audios, const Options& options,
                                          const GenerationConfig& config);

    // The decoder prompt for a language token (empty: none) and task.
    std::vector<int32_t> decoder_prompt(const std::string& language_token, const std::string& task) const;
    // The language token Whisper would detect for these input features (multilingual models).
    std::string detect_language(const std::vector<float>& features);
    // Whether the model's prompt carries a language (multilingual models).
    bool multilingual() const;

  private:
    std::optional<int32_t> special_id(const std::string& token) const;
    std::string language_token(const std::string& language) const;

    GenerationConfig config_;
    nlohmann::json whisper_fields_;  // generation_config.json's lang_to_id, task_to_id, ...
};

}  // namespace tfx
