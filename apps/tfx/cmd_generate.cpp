// `tfx generate`: prompt -> new tokens, streamed as they are chosen. Defaults come from the
// model's generation_config.json; command-line options override them.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "apps/tfx/commands.h"
#include "core/generation.h"
#include "core/json_file.h"
#include "registry/auto_tokenizer.h"

namespace tfx::cli {
namespace {

struct GenerateOptions {
    ModelOptions model;
    std::string prompt;
    std::string input_ids;
    std::string batch_file;
    SamplingOptions sampling;
    bool chat = false;
    bool json = false;
    std::vector<std::string> stop_strings;
};

std::vector<std::vector<int32_t>> read_batch(const std::string& path) {
    auto text = read_text_file(path);
    auto j = nlohmann::json::parse(text, nullptr, false);
    std::vector<std::vector<int32_t>> batch;
    if (!j.is_array() || j.empty())
        throw sdk::Error(TFX_ERR_FORMAT, path + ": expected a non-empty JSON list of token id lists");
    for (size_t i = 0; i < j.size(); ++i) {
        if (!j[i].is_array() || j[i].empty()) {
            throw sdk::Error(TFX_ERR_FORMAT,
                             path + ": item " + std::to_string(i) + " is not a non-empty list of token ids");
        }
        std::vector<int32_t> ids;
        for (const auto& id : j[i]) {
            if (!id.is_number_integer())
                throw sdk::Error(TFX_ERR_FORMAT, path + ": item " + std::to_string(i) + " holds a non-integer id");
            ids.push_back(id.get<int32_t>());
        }
        batch.push_back(std::move(ids));
    }
    return batch;
}

void run_generate(const GenerateOptions& o) {
    auto session = AutoModel::from_pretrained(o.model.model, o.model.session_options());
    std::unique_ptr<Tokenizer> tokenizer;
    if (std::filesystem::exists(session->model_dir() / "tokenizer.json")) {
        tokenizer = Tokenizer::open(session->model_dir(), global_options().plugin_paths);
    }
    std::vector<std::vector<int32_t>> prompts;
    if (!o.batch_file.empty()) {
        prompts = read_batch(o.batch_file);
    } else if (!o.input_ids.empty()) {
        prompts.push_back(parse_ids(o.input_ids, "--input-ids"));
    } else if (!o.prompt.empty()) {
        if (!tokenizer)
            throw sdk::Error(TFX_ERR_NOT_FOUND,
                             o.model.model + ": no tokenizer.json for a text prompt; pass --input-ids");
        if (o.chat) {
            const nlohmann::ordered_json messages = {{{"role", "user"}, {"content", o.prompt}}};
            prompts.push_back(tokenizer->encode_chat(messages, {}));
        } else {
            prompts.push_back(tokenizer->encode(o.prompt, true));
        }
    } else {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "give a PROMPT, --input-ids or --batch");
    }
    const GenerationConfig config = o.sampling.resolve(*session);

    // Streams text when the model has a tokenizer, token ids otherwise.
    std::optional<TextStreamer> streamer;
    if (tokenizer) streamer.emplace(*tokenizer, /*skip_special_tokens=*/true);
    const bool stream = !o.json && prompts.size() == 1;
    TokenCallback on_token;
    if (stream) {
        on_token = [&](size_t, int32_t token) {
            if (streamer) {
                std::cout << streamer->put(token) << std::flush;
            } else {
                std::cout << token << ' ' << std::flush;
            }
        };
    }
    StopCondition stop;
    if (!o.stop_strings.empty()) {
        if (!tokenizer) throw sdk::Error(TFX_ERR_UNSUPPORTED, "--stop needs the model's tokenizer.json");
        stop = [&](size_t, const std::vector<int32_t>& tokens) {
            const std::string text = tokenizer->decode(tokens, true);
            return std::any_of(o.stop_strings.begin(), o.stop_strings.end(),
                               [&](const std::string& s) { return text.find(s) != std::string::npos; });
        };
    }
    GenerationResult result = generate(*session, prompts, config, on_token, stop);
    if (stream) std::cout << (streamer ? streamer->end() : "") << '\n';
    if (o.json || prompts.size() > 1) {
        for (const auto& tokens : result.new_tokens) {
            nlohmann::json text = tokenizer ? nlohmann::json(tokenizer->decode(tokens, true)) : nlohmann::json(nullptr);
            std::cout << nlohmann::json{{"new_tokens", tokens}, {"text", text}}.dump(
                             -1, ' ', false, nlohmann::json::error_handler_t::replace)
                      << '\n';
        }
    }
}

}  // namespace

void add_generate_command(CLI::App& app) {
    auto o = std::make_shared<GenerateOptions>();
    auto* cmd = app.add_subcommand("generate", "Generate tokens from a prompt (streamed)");
    o->model.add_to(cmd);
    cmd->add_option("PROMPT", o->prompt, "Text prompt (needs a tokenizer)");
    cmd->add_option("--input-ids", o->input_ids, "Prompt as comma-separated token ids");
    cmd->add_option("--batch", o->batch_file, "JSON list of id lists, run as one left-padded batch");
    o->sampling.add_to(cmd);
    cmd->add_flag("--chat", o->chat, "Send PROMPT as a user message through the model's chat template");
    cmd->add_option("--stop", o->stop_strings, "Stop a sequence once its text contains this string (repeatable)");
    cmd->add_flag("--json", o->json, "Print {\"new_tokens\": [...], \"text\": ...} per sequence");
    cmd->callback([o] { run_generate(*o); });
}

}  // namespace tfx::cli
