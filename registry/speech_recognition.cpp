#include "registry/speech_recognition.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>

#include "core/forward_call.h"
#include "core/generation.h"
#include "core/json_file.h"
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

namespace {

// Whisper's fields of generation_config.json that shape the prompt, not the decoding.
constexpr const char* kWhisperPromptFields[] = {"lang_to_id", "task_to_id", "is_multilingual", "no_timestamps_token_id",
                                                "forced_decoder_ids"};

}  // namespace

AutomaticSpeechRecognitionPipeline::AutomaticSpeechRecognitionPipeline(const std::string& model,
                                                                       const LoadOptions& options)
    : TaskPipeline(model, options), whisper_fields_(nlohmann::json::object()) {
    if (session_->info().input_feature_tokens <= 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "automatic-speech-recognition needs a speech model (whisper); " +
                                                       model + " (" + session_->architecture() + ") is not one");
    }
    std::optional<sdk::Config> file = load_optional_json_file(session_->model_dir() / "generation_config.json");
    if (file) {
        // The prompt fields are the pipeline's to read; the rest is the generation config.
        nlohmann::json rest = file->json();
        for (const char* key : kWhisperPromptFields) {
            if (rest.contains(key)) whisper_fields_[key] = rest.at(key);
            rest.erase(key);
        }
        file = sdk::Config(rest, (session_->model_dir() / "generation_config.json").string());
    }
    config_ = GenerationConfig::from_model(session_->config(), file);
    config_.validate();
}

std::optional<int32_t> AutomaticSpeechRecognitionPipeline::special_id(const std::string& token) const {
    return tokenizer_->token_to_id(token);
}

bool AutomaticSpeechRecognitionPipeline::multilingual() const {
    if (whisper_fields_.contains("is_multilingual")) return whisper_fields_.at("is_multilingual").get<bool>();
    if (whisper_fields_.contains("lang_to_id")) return !whisper_fields_.at("lang_to_id").empty();
    return special_id("<|en|>").has_value();
}

std::string AutomaticSpeechRecognitionPipeline::language_token(const std::string& language) const {
    const std::string token = language.rfind("<|", 0) == 0 ? language : "<|" + language + "|>";
    const bool known = whisper_fields_.contains("lang_to_id") ? whisper_fields_.at("lang_to_id").contains(token)
                                                              : special_id(token).has_value();
    if (!known) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--language " + language + ": the model has no language token " +
                                                       token + " (give a language code such as en, de, fr)");
    }
    return token;
}

std::vector<int32_t> AutomaticSpeechRecognitionPipeline::decoder_prompt(const std::string& language,
                                                                        const std::string& task) const {
    if (task != "transcribe" && task != "translate")
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--task " + task + ": expected transcribe or translate");
    if (!config_.decoder_start_token_id)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "the model's config names no decoder_start_token_id (<|startoftranscript|>)");
    std::vector<int32_t> prompt{*config_.decoder_start_token_id};
    auto require = [&](std::optional<int32_t> id, const std::string& what) {
        if (!id) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "the model has no " + what + " token");
        prompt.push_back(*id);
    };
    const auto& w = whisper_fields_;
    if (!w.contains("lang_to_id") && w.contains("forced_decoder_ids") && w.at("forced_decoder_ids").is_array() &&
        language.empty() && task == "transcribe") {
        // An older folder: the forced ids after the start token, by position.
        std::map<int64_t, int32_t> forced;
        for (const auto& pair : w.at("forced_decoder_ids")) {
            if (pair.is_array() && pair.size() == 2 && pair[0].is_number_integer() && pair[1].is_number_integer())
                forced[pair[0].get<int64_t>()] = pair[1].get<int32_t>();
        }
        for (const auto& [position, id] : forced) prompt.push_back(id);
        return prompt;
    }
    if (multilingual()) {
        if (language.empty())
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                             "the model is multilingual but lists no languages to detect from "
                             "(generation_config.json's lang_to_id): give --language");
        const std::string token = language_token(language);
        require(w.contains("lang_to_id") ? std::optional<int32_t>(w.at("lang_to_id").at(token).get<int32_t>())
                                         : special_id(token),
                token);
        const std::string task_token = "<|" + task + "|>";
        require(w.contains("task_to_id") && w.at("task_to_id").contains(task)
                    ? std::optional<int32_t>(w.at("task_to_id").at(task).get<int32_t>())
                    : special_id(task_token),
                task_token);
    } else if (!language.empty() || task != "transcribe") {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "the model is English-only: it takes no --language and no --task translate");
    }
    const std::optional<int32_t> no_timestamps =
        w.contains("no_timestamps_token_id") ? std::optional<int32_t>(w.at("no_timestamps_token_id").get<int32_t>())
                                             : special_id("<|notimestamps|>");
    if (no_timestamps) prompt.push_back(*no_timestamps);
    return prompt;
}

std::string AutomaticSpeechRecognitionPipeline::detect_language(const std::vector<float>& features) {
    // Whisper's detect_language: one decoder step from <|startoftranscript|>, the best of the
    // language tokens.
    std::vector<std::pair<std::string, int32_t>> languages;
    if (whisper_fields_.contains("lang_to_id")) {
        for (const auto& [token, id] : whisper_fields_.at("lang_to_id").items())
            languages.emplace_back(token, id.get<int32_t>());
    }
    if (languages.empty())
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "language detection needs generation_config.json's lang_to_id; give --language");
    if (!config_.decoder_start_token_id)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "the model's config names no decoder_start_token_id (<|startoftranscript|>)");
    const std::vector<int32_t> start{*config_.decoder_start_token_id};
    ForwardCall call(*session_);
    const std::span<const float> logits = call.run({.ids = start, .input_features = features});
    std::string best;
    float best_logit = 0.0f;
    for (const auto& [token, id] : languages) {
        if (id < 0 || static_cast<size_t>(id) >= logits.size())
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "generation_config.json: lang_to_id[" + token +
                                                           "] = " + std::to_string(id) + " is outside the vocabulary");
        if (best.empty() || logits[static_cast<size_t>(id)] > best_logit) {
            best = token;
            best_logit = logits[static_cast<size_t>(id)];
        }
    }
    return best;
}

std::vector<Transcription> AutomaticSpeechRecognitionPipeline::operator()(const std::vector<Audio>& audios,
                                                                          const Options& options,
                                                                          const GenerationConfig& config) {
    const WhisperFeatureExtractor extractor(session_->model_dir());
    std::vector<Transcription> out(audios.size());
    // Rows with the same prompt (language) generate together.
    std::map<std::vector<int32_t>, std::vector<size_t>> rows_of_prompt;
    std::vector<std::shared_ptr<const std::vector<float>>> features(audios.size());
    for (size_t i = 0; i < audios.size(); ++i) {
        const Audio& audio = audios[i];
        if (static_cast<int64_t>(audio.samples.size()) > extractor.n_samples() && audio.sampling_rate > 0) {
            throw sdk::Error(TFX_ERR_UNSUPPORTED,
                             "audio " + std::to_string(i) + " lasts more than " +
                                 std::to_string(static_cast<int64_t>(audio.samples.size()) / audio.sampling_rate) +
                                 " s; the model transcribes " +
                                 std::to_string(extractor.n_samples() / extractor.sampling_rate()) +
                                 " s at a time and tfx does not do long-form transcription yet (split the audio)");
        }
        features[i] = std::make_shared<const std::vector<float>>(speech_features(*session_, audio).values);
        // A multilingual model's language: the caller's, else detected where the folder lists
        // its languages (an older folder's forced_decoder_ids carry one).
        // (An English-only model's prompt refuses any language.)
        std::string language;
        if (!options.language.empty()) {
            language = multilingual() ? language_token(options.language) : options.language;
        } else if (multilingual() && whisper_fields_.contains("lang_to_id")) {
            language = detect_language(*features[i]);
        }
        out[i].language = language;
        rows_of_prompt[decoder_prompt(language, options.task)].push_back(i);
    }
    for (const auto& [prompt, rows] : rows_of_prompt) {
        GenerateOptions generate_options;
        generate_options.encoder_decoder.decoder_prompt = prompt;
        std::vector<std::vector<int32_t>> empty_prompts(rows.size());
        for (size_t row : rows) generate_options.encoder_decoder.input_features.push_back(features[row]);
        const GenerationResult result = generate(*session_, empty_prompts, config, generate_options);
        const size_t per_row = result.new_tokens.size() / rows.size();
        for (size_t r = 0; r < rows.size(); ++r) {
            Transcription& t = out[rows[r]];
            t.tokens = result.new_tokens[r * per_row];  // the best sequence
            t.text = tokenizer_->decode(t.tokens, /*skip_special_tokens=*/true);
        }
    }
    return out;
}

}  // namespace tfx
