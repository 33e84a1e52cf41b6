// automatic-speech-recognition, as transformers' pipeline runs Whisper
// (WhisperForConditionalGeneration.generate): a sound file through the model folder's feature
// extractor into the encoder, the decoder started from Whisper's prompt, generated with the
// folder's generation config (suppress_tokens, begin_suppress_tokens, max_length), and decoded
// without special tokens. The prompt is built as WhisperGenerationMixin._retrieve_init_tokens
// builds it: <|startoftranscript|>, then the forced_decoder_ids of generation_config.json (or
// config.json's) when neither a language nor a task is asked for, then the language (asked
// for, or detected when the prompt has none and the folder lists languages: one decoder step
// from <|startoftranscript|>, the most likely language token), then the task token (asked for;
// transcribe when only a language is), then <|notimestamps|>. An English-only model
// (is_multilingual false) takes neither a language nor a task.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/generation_config.h"
#include "core/model_session.h"
#include "registry/audio_features.h"
#include "registry/pipelines.h"

namespace tfx {

// The model folder's feature extractor (preprocessor_config.json) over `audio`; throws unless
// the model is a speech model whose encoder takes features of that shape.
MelFeatures speech_features(const ModelSession& session, const WhisperFeatureExtractor& extractor, const Audio& audio);
MelFeatures speech_features(const ModelSession& session, const Audio& audio);

struct Transcription {
    std::string text;
    std::vector<int32_t> tokens;  // the generated tokens (after the prompt), eos included when hit
    std::string language;         // the prompt's language token ("<|en|>"), empty when it has none
};

// generation_config.json's fields that shape Whisper's prompt, checked (ids inside the vocabulary).
struct WhisperPromptFields {
    std::map<std::string, int32_t> lang_to_id, task_to_id;
    bool has_lang_to_id = false, has_task_to_id = false;
    std::optional<bool> is_multilingual;
    std::optional<int32_t> no_timestamps_token_id;
    // (position, id or none) pairs; config.json's are used when generation_config.json's do not
    // start with a null language.
    std::optional<std::vector<std::pair<int64_t, std::optional<int32_t>>>> forced_decoder_ids,
        config_forced_decoder_ids;
};

class AutomaticSpeechRecognitionPipeline : public TaskPipeline {
  public:
    struct Options {
        // A language code ("en") or token ("<|en|>"), any case; none: the forced ids', else detected.
        std::optional<std::string> language;
        std::optional<std::string> task;  // "transcribe" or "translate" (to English)
    };

    // Throws unless the model is a speech encoder-decoder (whisper).
    AutomaticSpeechRecognitionPipeline(const std::string& model, const LoadOptions& options);

    // The generation config the pipeline uses (generation_config.json; the caller may change it).
    const GenerationConfig& config() const { return config_; }
    const WhisperPromptFields& prompt_fields() const { return fields_; }

    // Each audio's transcription, generated with `config`. Audio longer than the feature
    // extractor's window (Whisper's 30 s) is refused: long-form transcription is not built yet.
    std::vector<Transcription> operator()(const std::vector<Audio>& audios, const Options& options,
                                          const GenerationConfig& config);

    // The decoder prompt for `options`; `features` (the audio's) are needed only to detect a language.
    std::vector<int32_t> decoder_prompt(const Options& options, const std::vector<float>* features = nullptr);
    // The language token Whisper would detect for these input features (needs lang_to_id).
    std::string detect_language(const std::vector<float>& features);

  private:
    int32_t language_id(const std::string& language) const;

    GenerationConfig config_;
    WhisperPromptFields fields_;
};

}  // namespace tfx
