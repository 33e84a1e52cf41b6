// The C host API (sdk/include/tfx/host_api.h) over the C++ one: every call is guarded, so no
// exception crosses into C; errors arrive as a status and a message.
#include "tfx/host_api.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>
#include <variant>

#include "core/forward_call.h"
#include "core/generation.h"
#include "core/json_file.h"
#include "registry/auto_model.h"
#include "registry/auto_tokenizer.h"
#include "registry/image_classification.h"
#include "registry/image_feature_extraction.h"
#include "registry/pipelines.h"
#include "registry/question_answering.h"
#include "registry/speech_recognition.h"
#include "registry/text2text_generation.h"
#include "registry/token_classification.h"
#include "registry/zero_shot_classification.h"
#include "registry/zero_shot_image_classification.h"
#include "tfx/sdk/error.hpp"

struct tfx_api_tokenizer {
    std::unique_ptr<tfx::Tokenizer> tokenizer;
};

struct tfx_api_pipeline {
    std::variant<
        std::unique_ptr<tfx::FeatureExtractionPipeline>, std::unique_ptr<tfx::TextClassificationPipeline>,
        std::unique_ptr<tfx::FillMaskPipeline>, std::unique_ptr<tfx::TextGenerationPipeline>,
        std::unique_ptr<tfx::TokenClassificationPipeline>, std::unique_ptr<tfx::QuestionAnsweringPipeline>,
        std::unique_ptr<tfx::ZeroShotClassificationPipeline>, std::unique_ptr<tfx::ImageClassificationPipeline>,
        std::unique_ptr<tfx::Text2TextGenerationPipeline>, std::unique_ptr<tfx::ZeroShotImageClassificationPipeline>,
        std::unique_ptr<tfx::AutomaticSpeechRecognitionPipeline>, std::unique_ptr<tfx::ImageFeatureExtractionPipeline>>
        pipeline;
    std::string task;  // as opened ("ner", "translation_en_to_fr", ...)
};

struct tfx_api_model {
    std::unique_ptr<tfx::ModelSession> session;
    tfx_api_tokenizer tokenizer;     // empty when the model has none
    tfx::GenerationConfig defaults;  // its generation_config.json (else config.json's tokens)
};

namespace {

using tfx::sdk::Error;

template <class T>
void write(tfx_sink sink, std::span<const T> values) {
    if (sink.write) sink.write(sink.ctx, values.data(), values.size_bytes());
}

void write_text(tfx_sink sink, const std::string& text) {
    if (sink.write) sink.write(sink.ctx, text.data(), text.size());
}

const tfx::Tokenizer& tokenizer_of(const tfx_api_tokenizer* tokenizer) {
    if (!tokenizer || !tokenizer->tokenizer) throw Error(TFX_ERR_INVALID_ARGUMENT, "tokenizer is NULL");
    return *tokenizer->tokenizer;
}

// The non-empty lines of `text` (NULL: none).
std::vector<std::string> lines(const char* text) {
    std::vector<std::string> out;
    if (!text) return out;
    std::stringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) out.push_back(line);
    }
    return out;
}

tfx::LoadOptions load_options(const tfx_api_open_options* options) {
    tfx::LoadOptions load;
    if (!options) return load;
    if (options->struct_size < sizeof(uint32_t) * 2)
        throw Error(TFX_ERR_INVALID_ARGUMENT, "tfx_api_open_options.struct_size is not set");
    load.num_threads = options->num_threads;
    load.device = options->device ? options->device : "auto";
    if (options->quantize) load.quantize = options->quantize;
    load.kv_dtype = options->kv_dtype ? options->kv_dtype : "f32";
    if (options->revision) load.revision = options->revision;
    load.offline = options->offline != 0;
    if (options->plugin_paths) {
        std::stringstream paths(options->plugin_paths);
        for (std::string p; std::getline(paths, p, ':');) {
            if (!p.empty()) load.plugin_paths.push_back(p);
        }
    }
    if (TFX_HAS_FIELD(options, tfx_api_open_options, merge_lora)) {
        for (const std::string& spec : lines(options->lora)) {
            load.lora.push_back(tfx::lora::parse_spec(spec, "tfx_api_open_options.lora"));
        }
        load.merge_lora = options->merge_lora != 0;
    }
    return load;
}

// The input fields a pipeline reads; the generating ones also read every generation_config
// field (max_new_tokens, num_beams, ...).
struct InputFields {
    std::vector<std::string> names;
    bool generation = false;
};
InputFields input_fields(const tfx_api_pipeline& p) {
    return std::visit(
        [](const auto& pipeline) -> InputFields {
            using P = typename std::decay_t<decltype(pipeline)>::element_type;
            if constexpr (std::is_same_v<P, tfx::FeatureExtractionPipeline>) {
                return {{"text", "pooling", "normalize"}};
            } else if constexpr (std::is_same_v<P, tfx::TextClassificationPipeline>) {
                return {{"text"}};
            } else if constexpr (std::is_same_v<P, tfx::FillMaskPipeline>) {
                return {{"text", "top_k"}};
            } else if constexpr (std::is_same_v<P, tfx::TextGenerationPipeline> ||
                                 std::is_same_v<P, tfx::Text2TextGenerationPipeline>) {
                return {{"text"}, true};
            } else if constexpr (std::is_same_v<P, tfx::TokenClassificationPipeline>) {
                return {{"text", "aggregation_strategy", "ignore_labels"}};
            } else if constexpr (std::is_same_v<P, tfx::QuestionAnsweringPipeline>) {
                return {{"question", "context", "top_k", "max_answer_len", "handle_impossible_answer", "max_seq_len",
                         "doc_stride"}};
            } else if constexpr (std::is_same_v<P, tfx::ZeroShotClassificationPipeline>) {
                return {{"text", "candidate_labels", "hypothesis_template", "multi_label"}};
            } else if constexpr (std::is_same_v<P, tfx::ImageClassificationPipeline>) {
                return {{"image", "top_k"}};
            } else if constexpr (std::is_same_v<P, tfx::ZeroShotImageClassificationPipeline>) {
                return {{"image", "candidate_labels", "hypothesis_template"}};
            } else if constexpr (std::is_same_v<P, tfx::AutomaticSpeechRecognitionPipeline>) {
                return {{"audio", "language", "task"}, true};
            } else {
                static_assert(std::is_same_v<P, tfx::ImageFeatureExtractionPipeline>);
                return {{"image", "pooling", "normalize"}};
            }
        },
        p.pipeline);
}

// Whether `key` is a field of transformers' GenerationConfig (acted on or not).
bool is_generation_field(const std::string& key, const nlohmann::json& value) {
    const auto unsupported =
        tfx::GenerationConfig::unsupported_fields(tfx::sdk::Config(nlohmann::json{{key, value}}, "input_json"));
    return unsupported.empty() || unsupported.front().find("(unknown)") == std::string::npos;
}

// A field the pipeline does not read is refused, naming it: a misspelt option ("topk") would
// otherwise change nothing, silently. For the generating pipelines, only names that are not
// generation_config fields at all are refused (fields tfx does not act on are the CLI's warning).
void refuse_unknown_fields(const tfx_api_pipeline& p, const nlohmann::json& input) {
    if (!input.is_object()) return;  // each pipeline's shape check names what it expects
    const InputFields known = input_fields(p);
    for (const auto& [key, value] : input.items()) {
        if (std::find(known.names.begin(), known.names.end(), key) != known.names.end()) continue;
        if (known.generation && is_generation_field(key, value)) continue;
        std::string reads;
        for (const std::string& name : known.names) reads += (reads.empty() ? "" : ", ") + name;
        throw Error(TFX_ERR_INVALID_ARGUMENT, "input_json: unknown field '" + key + "' for " + p.task + " (it reads " +
                                                  reads + (known.generation ? " and generation_config fields" : "") +
                                                  ")");
    }
}

void need(const void* p, const char* what) {
    if (!p) throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(what) + " is NULL");
}

// One sequence's outputs, the last position's or every position's (valid until `call` runs again).
std::span<const float> forward_rows(tfx::ForwardCall& call, const int32_t* ids, size_t count, int32_t all_positions) {
    need(ids, "ids");
    if (count == 0) throw Error(TFX_ERR_INVALID_ARGUMENT, "count: no token ids given");
    tfx::SequenceInput in;
    in.ids = std::span(ids, count);
    in.output = all_positions ? tfx::SequenceInput::Output::all : tfx::SequenceInput::Output::last;
    return call.run(in);
}

// text2text-generation / summarization / translation: {"text": a string or a list, any
// generation_config field} -> [{"<task>_text": ...}] per text (one entry per returned sequence),
// a list of those for a list of texts unless each has one, as transformers' pipelines return.
nlohmann::json generate_texts(tfx::Text2TextGenerationPipeline& pipeline, nlohmann::json input) {
    if (input.is_discarded() || !input.is_object() || !input.contains("text") ||
        !(input["text"].is_string() || input["text"].is_array())) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, "input_json: expected a JSON object with a \"text\" string or list");
    }
    std::vector<std::string> texts;
    for (const auto& t : input["text"].is_array() ? input["text"] : nlohmann::json::array({input["text"]})) {
        if (!t.is_string()) throw Error(TFX_ERR_INVALID_ARGUMENT, "input_json: \"text\": expected strings");
        texts.push_back(t.get<std::string>());
    }
    const bool many = input["text"].is_array();
    input.erase("text");
    tfx::GenerationConfig config = pipeline.config();
    config.read(tfx::sdk::Config(input, "input_json"));
    config.validate();
    const std::string key = pipeline.output_key();
    nlohmann::json out = nlohmann::json::array();
    for (const auto& outputs : pipeline(texts, config)) {
        nlohmann::json entries = nlohmann::json::array();
        for (const std::string& text : outputs) entries.push_back({{key, text}});
        out.push_back(many && entries.size() == 1 ? entries.front() : entries);
    }
    return many ? out : out.front();
}

// automatic-speech-recognition: {"audio": a sound file or a list of them, "language", "task",
// any generation_config field} -> {"text"} per file (a list of those for a list of files).
nlohmann::json transcribe(tfx::AutomaticSpeechRecognitionPipeline& pipeline, nlohmann::json input) {
    if (input.is_discarded() || !input.is_object() || !input.contains("audio") ||
        !(input["audio"].is_string() || input["audio"].is_array())) {
        throw Error(TFX_ERR_INVALID_ARGUMENT,
                    "input_json: expected a JSON object with an \"audio\" file or list of files");
    }
    std::vector<tfx::Audio> audios;
    for (const auto& f : input["audio"].is_array() ? input["audio"] : nlohmann::json::array({input["audio"]})) {
        if (!f.is_string()) throw Error(TFX_ERR_INVALID_ARGUMENT, "input_json: \"audio\": expected file names");
        audios.push_back(tfx::read_audio(f.get<std::string>()));
    }
    const bool many = input["audio"].is_array();
    const tfx::sdk::Config fields(input, "input_json");
    tfx::AutomaticSpeechRecognitionPipeline::Options options;
    if (fields.has("language")) options.language = fields.get<std::string>("language");
    if (fields.has("task")) options.task = fields.get<std::string>("task");
    for (const char* key : {"audio", "language", "task"}) input.erase(key);
    tfx::GenerationConfig config = pipeline.config();
    config.read(tfx::sdk::Config(input, "input_json"));
    config.validate();
    nlohmann::json out = nlohmann::json::array();
    for (const tfx::Transcription& t : pipeline(audios, options, config)) out.push_back({{"text", t.text}});
    return many ? out : out.front();
}

// image-feature-extraction: {"image": a file or a list of files, "pooling": "mean" | "cls",
// "normalize": false} -> {"embedding"} per image (a list of those for a list of files).
nlohmann::json embed_images(tfx::ImageFeatureExtractionPipeline& pipeline, const nlohmann::json& input) {
    if (input.is_discarded() || !input.is_object() || !input.contains("image") ||
        !(input["image"].is_string() || input["image"].is_array())) {
        throw Error(TFX_ERR_INVALID_ARGUMENT,
                    "input_json: expected a JSON object with an \"image\" file or list of files");
    }
    const tfx::sdk::Config fields(input, "input_json");
    const std::string pooling = fields.get_or<std::string>("pooling", "mean");
    if (pooling != "mean" && pooling != "cls") fields.fail("pooling", "expected \"mean\" or \"cls\"");
    std::vector<tfx::RgbImage> images;
    for (const auto& f : input["image"].is_array() ? input["image"] : nlohmann::json::array({input["image"]})) {
        if (!f.is_string()) throw Error(TFX_ERR_INVALID_ARGUMENT, "input_json: \"image\": expected file names");
        images.push_back(tfx::read_image(f.get<std::string>()));
    }
    nlohmann::json out = nlohmann::json::array();
    for (auto& v : pipeline(images, pooling == "cls" ? tfx::Pooling::cls : tfx::Pooling::mean,
                            fields.get_or<bool>("normalize", false)))
        out.push_back({{"embedding", std::move(v)}});
    return input["image"].is_array() ? out : out.front();
}

// The labels of a JSON list of strings or one comma-separated string ("candidate_labels").
std::vector<std::string> candidate_labels(const tfx::sdk::Config& fields) {
    std::vector<std::string> labels;
    const auto candidates = fields.has("candidate_labels") ? fields.json()["candidate_labels"] : nlohmann::json();
    if (candidates.is_string()) return tfx::candidate_labels_of(candidates.get<std::string>());
    if (!candidates.is_array())
        fields.fail("candidate_labels", "expected a list of labels, or one string of comma-separated labels");
    for (const auto& label : candidates) {
        if (!label.is_string()) fields.fail("candidate_labels", "expected a list of labels");
        labels.push_back(label.get<std::string>());
    }
    return labels;
}

// zero-shot-image-classification: {"image": a file, "candidate_labels", "hypothesis_template"}
// -> [{"score", "label"}, ...], best first.
nlohmann::json label_images(tfx::ZeroShotImageClassificationPipeline& pipeline, const nlohmann::json& input) {
    if (input.is_discarded() || !input.is_object() || !input.contains("image") || !input["image"].is_string())
        throw Error(TFX_ERR_INVALID_ARGUMENT, "input_json: expected a JSON object with an \"image\" file");
    const tfx::sdk::Config fields(input, "input_json");
    const tfx::ImageLabelScores result =
        pipeline(tfx::read_image(input["image"].get<std::string>()), candidate_labels(fields),
                 fields.get_or<std::string>("hypothesis_template", "This is a photo of {}."));
    nlohmann::json out = nlohmann::json::array();
    for (size_t i = 0; i < result.labels.size(); ++i)
        out.push_back({{"score", result.scores[i]}, {"label", result.labels[i]}});
    return out;
}

// image-classification: {"image": a file or a list of files, "top_k": 5}, each image's labels.
nlohmann::json classify_images(tfx::ImageClassificationPipeline& pipeline, const nlohmann::json& input) {
    if (input.is_discarded() || !input.is_object() || !input.contains("image") ||
        !(input["image"].is_string() || input["image"].is_array())) {
        throw Error(TFX_ERR_INVALID_ARGUMENT,
                    "input_json: expected a JSON object with an \"image\" file or list of files");
    }
    const tfx::sdk::Config fields(input, "input_json");
    std::vector<tfx::RgbImage> images;
    for (const auto& file : input["image"].is_array() ? input["image"] : nlohmann::json::array({input["image"]})) {
        if (!file.is_string()) fields.fail("image", "expected file names");
        images.push_back(tfx::read_image(file.get<std::string>()));
    }
    nlohmann::json out = nlohmann::json::array();
    for (const auto& labels : pipeline.classify(images, fields.get_or<int64_t>("top_k", 5))) {
        nlohmann::json list = nlohmann::json::array();
        for (const tfx::ImageLabel& l : labels) list.push_back({{"label", l.label}, {"score", l.score}});
        out.push_back(std::move(list));
    }
    return input["image"].is_array() ? out : out.front();
}

}  // namespace

extern "C" {

uint32_t tfx_api_version(void) {
    return TFX_HOST_API_VERSION;
}

int32_t tfx_api_open(const char* model, const tfx_api_open_options* options, tfx_api_model** out, tfx_error* error) {
    return tfx::sdk::guard(error, [&] {
        need(model, "model");
        need(out, "out");
        *out = nullptr;
        const tfx::LoadOptions load = load_options(options);
        auto m = std::make_unique<tfx_api_model>();
        m->session = tfx::AutoModel::from_pretrained(model, load);
        if (tfx::Tokenizer::model_has_one(*m->session))
            m->tokenizer.tokenizer = tfx::Tokenizer::for_model(*m->session, load.plugin_paths);
        m->defaults = tfx::GenerationConfig::from_model(
            m->session->config(), tfx::load_optional_json_file(m->session->model_dir() / "generation_config.json"));
        *out = m.release();
    });
}

void tfx_api_close(tfx_api_model* model) {
    delete model;
}

int32_t tfx_api_set_lora(tfx_api_model* model, const char* names, tfx_error* error) {
    return tfx::sdk::guard(error, [&] {
        need(model, "model");
        model->session->set_active_lora(lines(names));
    });
}

int32_t tfx_api_info(const tfx_api_model* model, tfx_model_info* info, tfx_error* error) {
    return tfx::sdk::guard(error, [&] {
        need(model, "model");
        need(info, "info");
        // A host built against older headers has a smaller struct: fill what it holds. 0 (not
        // set) means this header's size, as callers before ABI 2.8 left it.
        tfx_model_info full = model->session->info();
        if (info->struct_size != 0 && info->struct_size < offsetof(tfx_model_info, image_channels))
            throw Error(TFX_ERR_INVALID_ARGUMENT, "info->struct_size: expected sizeof(tfx_model_info)");
        const uint32_t size = info->struct_size == 0 ? sizeof full : std::min<uint32_t>(info->struct_size, sizeof full);
        full.struct_size = size;
        std::memcpy(info, &full, size);
    });
}

int32_t tfx_api_open_tokenizer(const char* model, const tfx_api_open_options* options, tfx_api_tokenizer** out,
                               tfx_error* error) {
    return tfx::sdk::guard(error, [&] {
        need(model, "model");
        need(out, "out");
        *out = nullptr;
        const tfx::LoadOptions load = load_options(options);
        auto t = std::make_unique<tfx_api_tokenizer>();
        const auto gguf = tfx::gguf_file_of(model);
        t->tokenizer =
            tfx::Tokenizer::open(gguf ? *gguf : tfx::resolve_tokenizer_location(model, load), load.plugin_paths);
        *out = t.release();
    });
}

void tfx_api_close_tokenizer(tfx_api_tokenizer* tokenizer) {
    delete tokenizer;
}

const tfx_api_tokenizer* tfx_api_model_tokenizer(const tfx_api_model* model) {
    return model && model->tokenizer.tokenizer ? &model->tokenizer : nullptr;
}

int32_t tfx_api_special_token_id(const tfx_api_tokenizer* tokenizer, const char* name, int32_t* id, tfx_error* error) {
    return tfx::sdk::guard(error, [&] {
        need(name, "name");
        need(id, "id");
        const std::optional<int32_t> found = tokenizer_of(tokenizer).special_id(name);
        if (!found) throw Error(TFX_ERR_NOT_FOUND, std::string("the tokenizer has no ") + name);
        *id = *found;
    });
}

int32_t tfx_api_encode(const tfx_api_tokenizer* tokenizer, const char* text, size_t size, int32_t add_special_tokens,
                       tfx_sink ids, tfx_error* error) {
    return tfx::sdk::guard(error, [&] {
        if (size > 0) need(text, "text");
        const std::vector<int32_t> out =
            tokenizer_of(tokenizer).encode(std::string_view(text ? text : "", size), add_special_tokens != 0);
        write<int32_t>(ids, out);
    });
}

int32_t tfx_api_decode(const tfx_api_tokenizer* tokenizer_handle, const int32_t* ids, size_t count,
                       int32_t skip_special_tokens, tfx_sink text, tfx_error* error) {
    return tfx::sdk::guard(error, [&] {
        if (count > 0) need(ids, "ids");
        const tfx::Tokenizer& tokenizer = tokenizer_of(tokenizer_handle);
        for (size_t i = 0; i < count; ++i) {
            if (ids[i] < 0 || ids[i] >= tokenizer.vocab_size())
                throw Error(TFX_ERR_INVALID_ARGUMENT, "ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                                                          " is outside the vocabulary (size " +
                                                          std::to_string(tokenizer.vocab_size()) + ")");
        }
        write_text(text, tokenizer.decode(std::span(ids, count), skip_special_tokens != 0));
    });
}

int32_t tfx_api_apply_chat_template(const tfx_api_tokenizer* tokenizer, const char* messages_json,
                                    int32_t add_generation_prompt, tfx_sink text, tfx_error* error) {
    return tfx::sdk::guard(error, [&] {
        need(messages_json, "messages_json");
        const auto messages = nlohmann::ordered_json::parse(messages_json, nullptr, false);
        if (messages.is_discarded() || !messages.is_array())
            throw Error(TFX_ERR_INVALID_ARGUMENT,
                        "messages_json: expected a JSON list of {\"role\", \"content\"} objects");
        tfx::Tokenizer::ChatOptions chat;
        chat.add_generation_prompt = add_generation_prompt != 0;
        write_text(text, tokenizer_of(tokenizer).apply_chat_template(messages, chat));
    });
}

int32_t tfx_api_forward(tfx_api_model* model, const int32_t* ids, size_t count, int32_t all_positions, tfx_sink output,
                        tfx_error* error) {
    return tfx::sdk::guard(error, [&] {
        need(model, "model");
        tfx::ForwardCall call(*model->session);
        write<float>(output, forward_rows(call, ids, count, all_positions));
    });
}

int32_t tfx_api_forward_dlpack(tfx_api_model* model, const int32_t* ids, size_t count, int32_t all_positions,
                               tfx_dlpack_managed_tensor** out, tfx_error* error) {
    return tfx::sdk::guard(error, [&] {
        need(model, "model");
        need(out, "out");
        tfx::ForwardCall call(*model->session);
        const std::span<const float> rows = forward_rows(call, ids, count, all_positions);
        // The tensor, its shape and its values in one allocation its deleter frees.
        struct Owned {
            tfx_dlpack_managed_tensor managed{};
            int64_t shape[2];
            std::vector<float> values;
        };
        auto owned = std::make_unique<Owned>();
        owned->values.assign(rows.begin(), rows.end());
        owned->shape[0] = call.rows();
        owned->shape[1] = call.rows() > 0 ? static_cast<int64_t>(rows.size()) / call.rows() : 0;
        tfx_dlpack_tensor& t = owned->managed.dl_tensor;
        t.data = owned->values.data();
        t.device = {1, 0};
        t.ndim = 2;
        t.dtype = {2, 32, 1};
        t.shape = owned->shape;
        owned->managed.manager_ctx = owned.get();
        owned->managed.deleter = [](tfx_dlpack_managed_tensor* self) { delete static_cast<Owned*>(self->manager_ctx); };
        *out = &owned.release()->managed;
    });
}

int32_t tfx_api_generate(tfx_api_model* model, const int32_t* const* prompts, const size_t* lengths, size_t num_prompts,
                         const char* generation_config_json, tfx_api_token_callback on_token, void* user,
                         tfx_sink result, tfx_error* error) {
    return tfx::sdk::guard(error, [&] {
        need(model, "model");
        if (num_prompts == 0) throw Error(TFX_ERR_INVALID_ARGUMENT, "num_prompts: no prompts given");
        need(prompts, "prompts");
        need(lengths, "lengths");
        std::vector<std::vector<int32_t>> batch;
        for (size_t p = 0; p < num_prompts; ++p) {
            if (lengths[p] > 0) need(prompts[p], "prompts[i]");
            batch.emplace_back(prompts[p], prompts[p] + lengths[p]);
        }
        tfx::GenerationConfig config = model->defaults;
        if (generation_config_json && *generation_config_json) {
            const auto json = nlohmann::json::parse(generation_config_json, nullptr, false);
            if (json.is_discarded() || !json.is_object())
                throw Error(TFX_ERR_INVALID_ARGUMENT, "generation_config_json: expected a JSON object");
            for (const auto& [key, value] : json.items()) {
                if (!is_generation_field(key, value)) {
                    throw Error(TFX_ERR_INVALID_ARGUMENT,
                                "generation_config_json: unknown field '" + key + "' (not a generation_config field)");
                }
            }
            config.read(tfx::sdk::Config(json, "generation_config_json"));
        }
        tfx::GenerateOptions options;
        std::vector<bool> stopped;
        if (on_token) {
            options.on_token = [&](size_t sequence, int32_t token) {
                if (stopped.size() <= sequence) stopped.resize(sequence + 1);
                if (on_token(user, sequence, token) != 0) stopped[sequence] = true;
            };
            options.should_stop = [&](size_t sequence, const std::vector<int32_t>&) {
                return sequence < stopped.size() && stopped[sequence];
            };
        }
        const tfx::GenerationResult out = tfx::generate(*model->session, batch, config, options);
        nlohmann::json j = {{"sequences", out.new_tokens}};
        if (!out.sequences_scores.empty()) j["sequences_scores"] = out.sequences_scores;
        write_text(result, j.dump());
    });
}

int32_t tfx_api_pipeline_open(const char* task, const char* model, const tfx_api_open_options* options,
                              tfx_api_pipeline** out, tfx_error* error) {
    return tfx::sdk::guard(error, [&] {
        need(task, "task");
        need(model, "model");
        need(out, "out");
        *out = nullptr;
        const tfx::LoadOptions load = load_options(options);
        auto p = std::make_unique<tfx_api_pipeline>();
        const std::string name = task;
        p->task = name;
        if (name == "feature-extraction") {
            p->pipeline = std::make_unique<tfx::FeatureExtractionPipeline>(model, load);
        } else if (name == "text-classification") {
            p->pipeline = std::make_unique<tfx::TextClassificationPipeline>(model, load);
        } else if (name == "fill-mask") {
            p->pipeline = std::make_unique<tfx::FillMaskPipeline>(model, load);
        } else if (name == "text-generation") {
            p->pipeline = std::make_unique<tfx::TextGenerationPipeline>(model, load);
        } else if (name == "token-classification" || name == "ner") {
            p->pipeline = std::make_unique<tfx::TokenClassificationPipeline>(model, load);
        } else if (name == "question-answering") {
            p->pipeline = std::make_unique<tfx::QuestionAnsweringPipeline>(model, load);
        } else if (name == "zero-shot-classification") {
            p->pipeline = std::make_unique<tfx::ZeroShotClassificationPipeline>(model, load);
        } else if (name == "image-classification") {
            p->pipeline = std::make_unique<tfx::ImageClassificationPipeline>(model, load);
        } else if (name == "zero-shot-image-classification") {
            p->pipeline = std::make_unique<tfx::ZeroShotImageClassificationPipeline>(model, load);
        } else if (name == "text2text-generation" || name == "summarization" || name.rfind("translation", 0) == 0) {
            p->pipeline = std::make_unique<tfx::Text2TextGenerationPipeline>(model, load, name);
        } else if (name == "image-feature-extraction") {
            p->pipeline = std::make_unique<tfx::ImageFeatureExtractionPipeline>(model, load);
        } else if (name == "automatic-speech-recognition") {
            p->pipeline = std::make_unique<tfx::AutomaticSpeechRecognitionPipeline>(model, load);
        } else {
            throw Error(TFX_ERR_UNSUPPORTED, "task '" + name +
                                                 "': expected feature-extraction, text-classification, fill-mask, "
                                                 "text-generation, token-classification, question-answering, "
                                                 "zero-shot-classification, image-classification, "
                                                 "zero-shot-image-classification, image-feature-extraction, "
                                                 "text2text-generation, summarization, translation or "
                                                 "automatic-speech-recognition");
        }
        *out = p.release();
    });
}

void tfx_api_pipeline_close(tfx_api_pipeline* pipeline) {
    delete pipeline;
}

int32_t tfx_api_pipeline_run(tfx_api_pipeline* pipeline, const char* input_json, tfx_sink output, tfx_error* error) {
    return tfx::sdk::guard(error, [&] {
        need(pipeline, "pipeline");
        need(input_json, "input_json");
        auto input = nlohmann::json::parse(input_json, nullptr, false);
        refuse_unknown_fields(*pipeline, input);
        auto& which = pipeline->pipeline;
        if (auto* seq2seq = std::get_if<std::unique_ptr<tfx::Text2TextGenerationPipeline>>(&which)) {
            write_text(output,
                       generate_texts(**seq2seq, input).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
            return;
        }
        if (auto* image_features = std::get_if<std::unique_ptr<tfx::ImageFeatureExtractionPipeline>>(&which)) {
            write_text(
                output,
                embed_images(**image_features, input).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
            return;
        }
        if (auto* speech = std::get_if<std::unique_ptr<tfx::AutomaticSpeechRecognitionPipeline>>(&which)) {
            write_text(output,
                       transcribe(**speech, input).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
            return;
        }
        if (auto* zero_image = std::get_if<std::unique_ptr<tfx::ZeroShotImageClassificationPipeline>>(&which)) {
            write_text(
                output,
                label_images(**zero_image, input).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
            return;
        }
        if (auto* images = std::get_if<std::unique_ptr<tfx::ImageClassificationPipeline>>(&which)) {
            write_text(output,
                       classify_images(**images, input).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
            return;
        }
        const bool question = std::holds_alternative<std::unique_ptr<tfx::QuestionAnsweringPipeline>>(which);
        // A list of texts, for the pipelines that run several in ragged forward calls together.
        const bool batches = std::holds_alternative<std::unique_ptr<tfx::TextClassificationPipeline>>(which) ||
                             std::holds_alternative<std::unique_ptr<tfx::TokenClassificationPipeline>>(which) ||
                             std::holds_alternative<std::unique_ptr<tfx::FeatureExtractionPipeline>>(which);
        const bool many = batches && input.is_object() && input.contains("text") && input["text"].is_array();
        if (input.is_discarded() || !input.is_object() ||
            (!question && !many && (!input.contains("text") || !input["text"].is_string()))) {
            throw Error(TFX_ERR_INVALID_ARGUMENT,
                        batches ? "input_json: expected a JSON object with a \"text\" string or list of strings"
                                : "input_json: expected a JSON object with a \"text\" string");
        }
        std::vector<std::string> texts;
        if (many) {
            for (const auto& t : input["text"]) {
                if (!t.is_string()) throw Error(TFX_ERR_INVALID_ARGUMENT, "input_json: \"text\": expected strings");
                texts.push_back(t.get<std::string>());
            }
        }
        const std::string text = question || many ? "" : input["text"].get<std::string>();
        const tfx::sdk::Config fields(input, "input_json");
        nlohmann::json out;
        if (auto* qa = std::get_if<std::unique_ptr<tfx::QuestionAnsweringPipeline>>(&which)) {
            out = nlohmann::json::array();
            tfx::QuestionAnsweringOptions options;
            options.top_k = fields.get_or<int64_t>("top_k", options.top_k);
            options.max_answer_len = fields.get_or<int64_t>("max_answer_len", options.max_answer_len);
            options.handle_impossible_answer =
                fields.get_or<bool>("handle_impossible_answer", options.handle_impossible_answer);
            options.max_seq_len = fields.get_or<int64_t>("max_seq_len", options.max_seq_len);
            options.doc_stride = fields.get_or<int64_t>("doc_stride", options.doc_stride);
            for (const tfx::Answer& a :
                 (**qa)(fields.get<std::string>("question"), fields.get<std::string>("context"), options)) {
                out.push_back(tfx::answer_json(a));
            }
        } else if (auto* zero = std::get_if<std::unique_ptr<tfx::ZeroShotClassificationPipeline>>(&which)) {
            const std::vector<std::string> labels = candidate_labels(fields);
            out = tfx::zero_shot_json((**zero)(text, labels,
                                               fields.get_or<std::string>("hypothesis_template", "This example is {}."),
                                               fields.get_or<bool>("multi_label", false)));
        } else if (auto* tagger = std::get_if<std::unique_ptr<tfx::TokenClassificationPipeline>>(&which)) {
            const tfx::Aggregation aggregation =
                tfx::aggregation_named(fields.get_or<std::string>("aggregation_strategy", "none"));
            std::vector<std::string> ignore = {"O"};
            if (fields.has("ignore_labels")) {
                const auto& labels = input["ignore_labels"];
                if (!labels.is_array()) fields.fail("ignore_labels", "expected a list of labels");
                ignore.clear();
                for (const auto& label : labels) {
                    if (!label.is_string()) fields.fail("ignore_labels", "expected a list of labels");
                    ignore.push_back(label.get<std::string>());
                }
            }
            if (many) {
                out = nlohmann::json::array();
                for (const auto& entities : (**tagger)(texts, aggregation, ignore))
                    out.push_back(tfx::entities_json(entities, aggregation));
            } else {
                out = tfx::entities_json((**tagger)(text, aggregation, ignore), aggregation);
            }
        } else if (auto* p = std::get_if<std::unique_ptr<tfx::FeatureExtractionPipeline>>(&which)) {
            auto& features = **p;
            tfx::Pooling pooling =
                tfx::sentence_transformers_pooling(features.session().model_dir()).value_or(tfx::Pooling::mean);
            if (fields.has("pooling")) {
                const std::string name = fields.get<std::string>("pooling");
                if (name != "mean" && name != "cls")
                    fields.fail("pooling", "expected \"mean\" or \"cls\", got '" + name + "'");
                pooling = name == "cls" ? tfx::Pooling::cls : tfx::Pooling::mean;
            }
            const bool normalize = fields.get_or<bool>("normalize", false);
            if (many) {
                out = nlohmann::json::array();
                for (auto& vector : features(texts, pooling, normalize))
                    out.push_back({{"embedding", std::move(vector)}});
            } else {
                out["embedding"] = features(text, pooling, normalize);
            }
        } else if (auto* classifier = std::get_if<std::unique_ptr<tfx::TextClassificationPipeline>>(&which)) {
            auto scores_json = [](const std::vector<tfx::TextClassificationPipeline::Score>& scores) {
                nlohmann::json list = nlohmann::json::array();
                for (const auto& score : scores) list.push_back({{"label", score.label}, {"score", score.score}});
                return list;
            };
            if (many) {
                out = nlohmann::json::array();
                for (const auto& scores : (**classifier)(texts)) out.push_back(scores_json(scores));
            } else {
                out = scores_json((**classifier)(text));
            }
        } else if (auto* fill = std::get_if<std::unique_ptr<tfx::FillMaskPipeline>>(&which)) {
            out = nlohmann::json::array();
            for (const auto& c : (**fill)(text, fields.get_or<int>("top_k", 5))) {
                nlohmann::json entry;
                entry["token"] = c.token;
                entry["token_str"] = c.token_str;
                entry["score"] = c.score;
                entry["sequence"] = c.sequence;
                out.push_back(std::move(entry));
            }
        } else {
            auto& generation = *std::get<std::unique_ptr<tfx::TextGenerationPipeline>>(which);
            input.erase("text");
            tfx::GenerationConfig config = tfx::GenerationConfig::from_model(
                generation.session().config(),
                tfx::load_optional_json_file(generation.session().model_dir() / "generation_config.json"));
            config.read(tfx::sdk::Config(input, "input_json"));
            out["generated_text"] = text + generation(text, config);
        }
        write_text(output, out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    });
}

}  // extern "C"
