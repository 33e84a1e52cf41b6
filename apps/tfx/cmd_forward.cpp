// `tfx forward`: one forward pass, printed for comparison with the reference (porting and
// debugging tool). Causal and masked LMs: last-position logits and per-position argmax; token
// classifiers: every position's label logits; question answering: start and end logits per
// position; sequence classifiers: the logits; base models: last_hidden_state. Encoder-decoder
// models take the encoder's ids and --decoder-input-ids: the encoder's last hidden state and
// every decoder position's logits (one teacher-forced pass, as transformers' forward gives).
// Vision models take --image: the image processor's pixel_values, then the logits (image
// classifiers) or last_hidden_state; CLIP gives image_embeds, and with --input-ids text_embeds
// and logits_per_image. Speech encoder-decoder models (Whisper) take --audio: the feature
// extractor's input_features, then the encoder's states and the decoder's logits.
#include <algorithm>
#include <iostream>

#include <nlohmann/json.hpp>

#include "apps/tfx/commands.h"
#include "core/forward_call.h"
#include "core/model_session.h"
#include "registry/image_processor.h"
#include "registry/speech_recognition.h"
#include "registry/zero_shot_image_classification.h"

namespace tfx::cli {
namespace {

struct ForwardOptions {
    ModelOptions model;
    std::string input_ids;
    std::string token_type_ids;
    std::string decoder_input_ids;
    std::string image;
    std::string audio;
    bool json = false;
};

// Rows [0, rows) of the call's output, as nested lists.
nlohmann::json rows_of(ForwardCall& call, int64_t rows) {
    nlohmann::json out = nlohmann::json::array();
    for (int64_t t = 0; t < rows; ++t) {
        const auto r = call.row(t);
        out.push_back(std::vector<float>(r.begin(), r.end()));
    }
    return out;
}

// An encoder-decoder model: the encoder over `encoder` (its ids, or a speech model's input
// features), the decoder over --decoder-input-ids; `result` may hold fields already.
void run_seq2seq_forward(const ForwardOptions& o, ModelSession& session, SequenceInput encoder,
                         nlohmann::json result = nlohmann::json::object()) {
    if (o.decoder_input_ids.empty()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, session.architecture() +
                                                       " is an encoder-decoder model: --decoder-input-ids is required "
                                                       "(--input-ids or --audio are the encoder's)");
    }
    const std::vector<int32_t> decoder_ids = parse_ids(o.decoder_input_ids, "--decoder-input-ids");
    const tfx_model_info& info = session.info();
    ForwardCall call(session);
    encoder.ids = decoder_ids;
    encoder.output = SequenceInput::Output::all;
    call.run(encoder);
    const auto states = call.encoder_output();
    const auto hidden = static_cast<size_t>(info.hidden_size);
    const size_t encoder_tokens = states.size() / hidden;
    nlohmann::json encoder_states = nlohmann::json::array();
    for (size_t t = 0; t < encoder_tokens; ++t) {
        encoder_states.push_back(std::vector<float>(states.begin() + static_cast<ptrdiff_t>(t * hidden),
                                                    states.begin() + static_cast<ptrdiff_t>((t + 1) * hidden)));
    }
    const auto rows = static_cast<int64_t>(decoder_ids.size());
    result["encoder_last_hidden_state"] = encoder_states;
    result[info.output_kind == TFX_OUTPUT_LOGITS ? "decoder_logits" : "last_hidden_state"] = rows_of(call, rows);
    if (o.json) {
        std::cout << result.dump() << '\n';
        return;
    }
    std::cout << session.architecture() << " via " << session.plugin_summary() << '\n';
    if (result.contains("input_features")) {
        std::cout << "input_features: [" << info.input_feature_bins << ", " << info.input_feature_frames << "]\n";
    }
    std::cout << "encoder_last_hidden_state: [" << encoder_tokens << ", " << info.hidden_size << "]\n"
              << (info.output_kind == TFX_OUTPUT_LOGITS ? "decoder_logits: [" : "last_hidden_state: [") << rows << ", "
              << info.output_size << "]\n";
}

// A speech model: --audio through the folder's feature extractor, then the encoder-decoder pass.
void run_audio_forward(const ForwardOptions& o, ModelSession& session) {
    if (session.info().input_feature_tokens <= 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--audio: " + session.architecture() + " is not a speech model");
    }
    if (!o.input_ids.empty()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "--input-ids: " + session.architecture() + "'s encoder takes --audio, not token ids");
    }
    const MelFeatures features = speech_features(session, read_audio(o.audio));
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t b = 0; b < features.mel_bins; ++b) {
        const auto first = features.values.begin() + static_cast<ptrdiff_t>(b * features.frames);
        rows.push_back(std::vector<float>(first, first + static_cast<ptrdiff_t>(features.frames)));
    }
    run_seq2seq_forward(o, session, {.input_features = features.values}, {{"input_features", std::move(rows)}});
}

// A vision model: --image through the folder's image processor, one forward of its pixels.
void run_image_forward(const ForwardOptions& o, ModelSession& session) {
    const tfx_model_info& info = session.info();
    if (info.image_tokens <= 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--image: " + session.architecture() + " is not a vision model");
    }
    const bool embeds = info.output_kind == TFX_OUTPUT_EMBEDDING;  // CLIP: images and texts
    if ((!o.input_ids.empty() && !embeds) || !o.token_type_ids.empty() || !o.decoder_input_ids.empty()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--image: " + session.architecture() + " takes no token ids");
    }
    const PixelValues pixels = ImageProcessor(session.model_dir()).preprocess(read_image(o.image));
    ForwardCall call(session);
    call.run({.output = SequenceInput::Output::all, .pixels = pixels.values});
    nlohmann::json result;
    if (embeds) {
        const auto image = call.row(0);
        const std::vector<float> image_embeds(image.begin(), image.end());
        result["image_embeds"] = image_embeds;
        if (!o.input_ids.empty()) {
            // The text in a call of its own (a call is all images or all texts); CLIPModel's
            // logits_per_image = exp(logit_scale) x (image . text), both normalised.
            const std::vector<int32_t> ids = parse_ids(o.input_ids, "--input-ids");
            const auto text = call.run({.ids = ids, .output = SequenceInput::Output::all});
            result["text_embeds"] = std::vector<float>(text.begin(), text.end());
            result["logits_per_image"] = embedding_logit(info, text, image_embeds);
        }
    }
    nlohmann::json planes = nlohmann::json::array();
    const auto plane = static_cast<size_t>(pixels.height * pixels.width), width = static_cast<size_t>(pixels.width);
    for (size_t c = 0; c * plane < pixels.values.size(); ++c) {
        nlohmann::json rows = nlohmann::json::array();
        for (size_t y = 0; y < static_cast<size_t>(pixels.height); ++y) {
            const auto at = pixels.values.begin() + static_cast<std::ptrdiff_t>(c * plane + y * width);
            rows.push_back(std::vector<float>(at, at + static_cast<std::ptrdiff_t>(width)));
        }
        planes.push_back(std::move(rows));
    }
    result["pixel_values"] = std::move(planes);
    if (info.output_kind == TFX_OUTPUT_CLASS_LOGITS) {
        const auto r = call.row(0);
        result["logits"] = std::vector<float>(r.begin(), r.end());
    } else if (!embeds) {
        result["last_hidden_state"] = rows_of(call, info.image_tokens);
    }
    if (o.json) {
        std::cout << result.dump() << '\n';
        return;
    }
    std::cout << session.architecture() << " via " << session.plugin_summary() << '\n'
              << "pixel_values: [3, " << pixels.height << ", " << pixels.width << "]\n";
    for (const char* key : {"logits", "image_embeds", "text_embeds", "logits_per_image"}) {
        if (result.contains(key)) std::cout << key << ": " << result[key].dump() << '\n';
    }
}

void run_forward(const ForwardOptions& o) {
    auto session = AutoModel::from_pretrained(o.model.model, o.model.session_options());
    if (!o.image.empty() && !o.audio.empty())
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--image and --audio: give one");
    if (!o.image.empty()) return run_image_forward(o, *session);
    if (!o.audio.empty()) return run_audio_forward(o, *session);
    const tfx_model_info& info = session->info();
    if (o.input_ids.empty()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         info.input_feature_tokens > 0
                             ? "--audio is required: " + session->architecture() + " is a speech model"
                             : std::string("--input-ids is required (or --image, for vision models)"));
    }
    const std::vector<int32_t> ids = parse_ids(o.input_ids, "--input-ids");
    if (info.num_cross_layers > 0) return run_seq2seq_forward(o, *session, {.encoder_ids = ids});
    if (!o.decoder_input_ids.empty()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "--decoder-input-ids: " + session->architecture() + " is not an encoder-decoder model");
    }
    const auto tokens = static_cast<int64_t>(ids.size());
    const bool classifier = info.output_kind == TFX_OUTPUT_CLASS_LOGITS;
    std::vector<int32_t> token_types;
    if (!o.token_type_ids.empty()) {
        token_types = parse_ids(o.token_type_ids, "--token-type-ids");
        if (token_types.size() != ids.size()) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--token-type-ids: expected " + std::to_string(ids.size()) +
                                                           " ids (one per input id), got " +
                                                           std::to_string(token_types.size()));
        }
    }
    ForwardCall call(*session);
    call.run({.ids = ids, .token_type_ids = token_types, .output = SequenceInput::Output::all});
    auto row = [&](int64_t t) {
        auto r = call.row(t);
        return std::vector<float>(r.begin(), r.end());
    };
    const std::vector<float> pooled(call.pooled().begin(), call.pooled().end());
    nlohmann::json result;
    const std::string& head = session->task_head();
    if (info.output_kind == TFX_OUTPUT_EMBEDDING) {
        result["text_embeds"] = row(0);
    } else if (classifier) {
        result["logits"] = row(0);
    } else if (head == "question_answering") {
        std::vector<float> start, end;
        for (int64_t t = 0; t < tokens; ++t) start.push_back(row(t)[0]), end.push_back(row(t)[1]);
        result["start_logits"] = start;
        result["end_logits"] = end;
    } else if (head == "token_classification") {
        nlohmann::json logits = nlohmann::json::array();
        std::vector<int64_t> argmax;
        for (int64_t t = 0; t < tokens; ++t) {
            auto r = row(t);
            argmax.push_back(std::max_element(r.begin(), r.end()) - r.begin());
            logits.push_back(std::move(r));
        }
        result["logits"] = logits;
        result["argmax_per_position"] = argmax;
    } else if (info.output_kind == TFX_OUTPUT_LOGITS) {
        result["logits"] = row(tokens - 1);
        std::vector<int64_t> argmax;
        for (int64_t t = 0; t < tokens; ++t) {
            auto r = row(t);
            argmax.push_back(std::max_element(r.begin(), r.end()) - r.begin());
        }
        result["argmax_per_position"] = argmax;
    } else {
        nlohmann::json hidden = nlohmann::json::array();
        for (int64_t t = 0; t < tokens; ++t) hidden.push_back(row(t));
        result["last_hidden_state"] = hidden;
        if (info.has_pooler) result["pooler_output"] = pooled;
    }
    if (o.json) {
        std::cout << result.dump() << '\n';
        return;
    }
    std::cout << session->architecture() << " via " << session->plugin_summary() << '\n';
    if (head == "question_answering" || head == "token_classification" || result.contains("text_embeds")) {
        for (const auto& [name, value] : result.items()) std::cout << name << ": " << value.dump() << '\n';
    } else if (classifier) {
        std::cout << "logits: " << result["logits"].dump() << '\n';
    } else if (info.output_kind == TFX_OUTPUT_LOGITS) {
        auto last = row(tokens - 1);
        std::vector<size_t> order(last.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::partial_sort(order.begin(), order.begin() + std::min<size_t>(5, order.size()), order.end(),
                          [&](size_t a, size_t b) { return last[a] > last[b]; });
        std::cout << "last position, top 5:";
        for (size_t i = 0; i < std::min<size_t>(5, order.size()); ++i)
            std::cout << "  " << order[i] << " (" << last[order[i]] << ")";
        std::cout << "\nargmax per position: " << result["argmax_per_position"].dump() << '\n';
    } else {
        std::cout << "last_hidden_state: [" << tokens << ", " << info.output_size << "]\n";
    }
}

}  // namespace

void add_forward_command(CLI::App& app) {
    auto opts = std::make_shared<ForwardOptions>();
    auto* cmd =
        app.add_subcommand("forward", "One forward pass: logits (LM and task heads) or hidden states (base model)");
    opts->model.add_to(cmd, /*tensor_parallel=*/true);
    cmd->add_option("--input-ids", opts->input_ids, "Comma-separated token ids (required unless --image or --audio)");
    cmd->add_option("--token-type-ids", opts->token_type_ids,
                    "Comma-separated segment ids, one per input id (default: all 0)");
    cmd->add_option("--decoder-input-ids", opts->decoder_input_ids,
                    "Encoder-decoder models: comma-separated decoder ids (--input-ids are the encoder's)");
    cmd->add_option(
        "--image", opts->image,
        "Vision models: a PNG or JPEG file, through the model's image processor (preprocessor_config.json)");
    cmd->add_option("--audio", opts->audio,
                    "Speech models: a sound file (WAV, FLAC, Ogg), through the model's feature extractor "
                    "(preprocessor_config.json); --decoder-input-ids are the decoder's");
    cmd->add_flag("--json", opts->json, "Print one JSON object");
    cmd->callback([opts] { run_forward(*opts); });
}

}  // namespace tfx::cli
