#include "registry/speech_recognition.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <string>

#include "core/forward_call.h"
#include "core/generation.h"
#include "core/json_file.h"
#include "registry/whisper_languages.h"
#include "tfx/sdk/error.hpp"

namespace tfx {

MelFeatures speech_features(const ModelSession& session, const WhisperFeatureExtractor& extractor, const Audio& audio) {
    const tfx_model_info& info = session.info();
    if (info.input_feature_tokens <= 0)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         session.architecture() + " is not a speech model (it takes no audio)");
    MelFeatures features = extractor(audio);
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

MelFeatures speech_features(const ModelSession& session, const Audio& audio) {
    if (session.info().input_feature_tokens <= 0)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         session.architecture() + " is not a speech model (it takes no audio)");
    return speech_features(session, WhisperFeatureExtractor(session.model_dir()), audio);
}

namespace {

// The fields read here, taken out of the generation config (they shape the prompt, not the decoding).
constexpr const char* kPromptFields[] = {"lang_to_id", "task_to_id", "is_multilingual", "no_timestamps_token_id",
                                         "forced_decoder_ids"};

int32_t token_id(const sdk::Config& c, std::string_view field, const nlohmann::json& value, int32_t vocab_size) {
    if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() >= vocab_size) {
        c.fail(field, "expected a token id in [0, " + std::to_string(vocab_size) + "), got " + value.dump());
    }
    return value.get<int32_t>();
}

std::map<std::string, int32_t> id_table(const sdk::Config& c, std::string_view field, int32_t vocab_size) {
    const nlohmann::json& table = c.json().at(std::string(field));
    if (!table.is_object()) c.fail(field, "expected an object of token ids");
    std::map<std::string, int32_t> out;
    for (const auto& [key, value] : table.items()) out[key] = token_id(c, field, value, vocab_size);
    return out;
}

std::vector<std::pair<int64_t, std::optional<int32_t>>> forced_ids(const sdk::Config& c, int32_t vocab_size) {
    const nlohmann::json& list = c.json().at("forced_decoder_ids");
    const char* expected = "expected a list of [position, token id or null] pairs";
    if (!list.is_array()) c.fail("forced_decoder_ids", expected);
    std::vector<std::pair<int64_t, std::optional<int32_t>>> out;
    for (const auto& pair : list) {
        if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_integer())
            c.fail("forced_decoder_ids", expected);
        out.emplace_back(pair[0].get<int64_t>(),
                         pair[1].is_null()
                             ? std::nullopt
                             : std::optional<int32_t>(token_id(c, "forced_decoder_ids", pair[1], vocab_size)));
    }
    return out;
}

WhisperPromptFields read_prompt_fields(const sdk::Config& c, int32_t vocab_size) {
    WhisperPromptFields f;
    if (c.has("lang_to_id")) {
        f.lang_to_id = id_table(c, "lang_to_id", vocab_size);
        f.has_lang_to_id = true;
    }
    if (c.has("task_to_id")) {
        f.task_to_id = id_table(c, "task_to_id", vocab_size);
        f.has_task_to_id = true;
    }
    if (c.has("is_multilingual")) f.is_multilingual = c.get<bool>("is_multilingual");
    if (c.has("no_timestamps_token_id"))
        f.no_timestamps_token_id =
            token_id(c, "no_timestamps_token_id", c.json().at("no_timestamps_token_id"), vocab_size);
    if (c.has("forced_decoder_ids")) f.forced_decoder_ids = forced_ids(c, vocab_size);
    return f;
}

std::string lowercase(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    return s;
}

}  // namespace

AutomaticSpeechRecognitionPipeline::AutomaticSpeechRecognitionPipeline(const std::string& model,
                                                                       const LoadOptions& options)
    : TaskPipeline(model, options) {
    if (session_->info().input_feature_tokens <= 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "automatic-speech-recognition needs a speech model (whisper); " +
                                                       model + " (" + session_->architecture() + ") is not one");
    }
    const int32_t vocab = session_->info().vocab_size;
    const sdk::Config& model_config = session_->config();
    std::optional<sdk::Config> file = load_optional_json_file(session_->model_dir() / "generation_config.json");
    // Without generation_config.json, transformers makes the generation config from config.json.
    fields_ = read_prompt_fields(file ? *file : model_config, vocab);
    if (model_config.has("forced_decoder_ids")) fields_.config_forced_decoder_ids = forced_ids(model_config, vocab);
    if (file) {
        nlohmann::json rest = file->json();
        for (const char* key : kPromptFields) rest.erase(key);
        file = sdk::Config(rest, file->file());
    }
    config_ = GenerationConfig::from_model(model_config, file);
    config_.validate();
}

int32_t AutomaticSpeechRecognitionPipeline::language_id(const std::string& language) const {
    const std::string lower = lowercase(language);
    // A token, a name ("german") or a code ("de"), as transformers' Whisper generate() takes it.
    const std::string token =
        lower.rfind("<|", 0) == 0 ? lower : "<|" + whisper_language_code(lower).value_or(lower) + "|>";
    if (!fields_.has_lang_to_id) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "language '" + language +
                                                       "': the model's generation config lists no languages "
                                                       "(lang_to_id)");
    }
    const auto it = fields_.lang_to_id.find(token);
    if (it == fields_.lang_to_id.end()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "language '" + language + "': the model has no language token " +
                                                       token +
                                                       " (give a language code such as en, de, fr, or a name such as "
                                                       "english)");
    }
    return it->second;
}

std::vector<int32_t> AutomaticSpeechRecognitionPipeline::decoder_prompt(const Options& options,
                                                                        const std::vector<float>* features) {
    if (!config_.decoder_start_token_id)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "the model's config names no decoder_start_token_id (<|startoftranscript|>)");
    if (fields_.is_multilingual == false && (options.language || options.task))
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "the model is English-only: it takes no language and no task");
    if (options.task && *options.task != "transcribe" && *options.task != "translate")
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "task '" + *options.task + "': expected transcribe or translate");
    std::vector<std::optional<int32_t>> prompt{*config_.decoder_start_token_id};
    // The forced ids: generation_config.json's when they leave the language open, else
    // config.json's; none once a language or task is asked for.
    auto forced = fields_.forced_decoder_ids;
    if (forced && !forced->empty() && !(forced->front().second == std::nullopt && !options.language && !options.task) &&
        fields_.config_forced_decoder_ids) {
        forced = fields_.config_forced_decoder_ids;
    }
    if (options.language || options.task) forced.reset();
    if (forced && !forced->empty() && forced->front().first == 1) {
        for (size_t i = 0; i < forced->size(); ++i) {
            if ((*forced)[i].first != static_cast<int64_t>(i) + 1) {
                throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                                 "forced_decoder_ids: positions must run 1, 2, 3, ... (Whisper's prompt), got " +
                                     std::to_string((*forced)[i].first) + " at entry " + std::to_string(i));
            }
            prompt.push_back((*forced)[i].second);
        }
    }
    // The language: asked for, or detected when the prompt leaves it open.
    const bool language_open = prompt.size() <= 1 || !prompt[1];
    std::optional<int32_t> language;
    if (options.language) {
        language = language_id(*options.language);
    } else if (fields_.has_lang_to_id && language_open && fields_.is_multilingual != false) {
        if (features == nullptr)
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "the prompt needs a language: give one, or audio to detect it");
        language = fields_.lang_to_id.at(detect_language(*features));
    }
    if (language) {
        if (prompt.size() > 1) {
            prompt[1] = language;
        } else {
            prompt.push_back(language);
        }
    }
    // The task: asked for (replacing a task token already there), or transcribe when only a language is.
    auto is_task = [&](const std::optional<int32_t>& t) {
        return t && std::any_of(fields_.task_to_id.begin(), fields_.task_to_id.end(),
                                [&](const auto& entry) { return entry.second == *t; });
    };
    if (options.task) {
        const auto it = fields_.task_to_id.find(*options.task);
        if (it == fields_.task_to_id.end())
            throw sdk::Error(
                TFX_ERR_INVALID_ARGUMENT,
                "task '" + *options.task + "': the model's generation config has no task_to_id entry for it");
        const auto existing = std::find_if(prompt.begin(), prompt.end(), is_task);
        if (existing != prompt.end()) {
            *existing = it->second;
        } else {
            prompt.push_back(it->second);
        }
    } else if (options.language && std::none_of(prompt.begin(), prompt.end(), is_task)) {
        if (const auto it = fields_.task_to_id.find("transcribe"); it != fields_.task_to_id.end())
            prompt.push_back(it->second);
    }
    if (fields_.no_timestamps_token_id && prompt.back() != fields_.no_timestamps_token_id)
        prompt.push_back(fields_.no_timestamps_token_id);
    std::vector<int32_t> ids;
    for (const auto& t : prompt) {
        if (t) ids.push_back(*t);
    }
    return ids;
}

std::string AutomaticSpeechRecognitionPipeline::detect_language(const std::vector<float>& features) {
    // Whisper's detect_language: one decoder step from <|startoftranscript|>, the best of the
    // language tokens.
    if (fields_.lang_to_id.empty())
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "language detection needs generation_config.json's lang_to_id; give a language");
    if (!config_.decoder_start_token_id)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "the model's config names no decoder_start_token_id (<|startoftranscript|>)");
    const std::vector<int32_t> start{*config_.decoder_start_token_id};
    ForwardCall call(*session_);
    const std::span<const float> logits = call.run({.ids = start, .input_features = features});
    std::string best;
    float best_logit = 0.0f;
    for (const auto& [token, id] : fields_.lang_to_id) {
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
        // The features first: they refuse audio at another sampling rate.
        features[i] = std::make_shared<const std::vector<float>>(speech_features(*session_, extractor, audio).values);
        if (static_cast<int64_t>(audio.samples.size()) > extractor.n_samples()) {
            throw sdk::Error(TFX_ERR_UNSUPPORTED,
                             "audio " + std::to_string(i) + " lasts more than " +
                                 std::to_string(extractor.n_samples() / extractor.sampling_rate()) +
                                 " s, the model's window; tfx does not do long-form transcription yet (split the "
                                 "audio)");
        }
        const std::vector<int32_t> prompt = decoder_prompt(options, features[i].get());
        for (const auto& [token, id] : fields_.lang_to_id) {
            if (std::find(prompt.begin(), prompt.end(), id) != prompt.end()) out[i].language = token;
        }
        rows_of_prompt[prompt].push_back(i);
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
