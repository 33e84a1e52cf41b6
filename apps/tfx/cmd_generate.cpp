// `tfx generate`: prompt -> new tokens, streamed as they are chosen. Defaults come from the
// model's generation_config.json; command-line options override them.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <iostream>

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
    int64_t max_new_tokens = 0;
    bool greedy = false;
    float temperature = 1.0f, top_p = 1.0f, min_p = 0.0f, repetition_penalty = 1.0f;
    int64_t top_k = 0;
    uint64_t seed = 0;
    bool ignore_eos = false;
    bool json = false;
    std::vector<std::string> stop_strings;
    // Which options were given, so only those override generation_config.json.
    CLI::Option *max_new_opt, *temperature_opt, *top_k_opt, *top_p_opt, *min_p_opt, *penalty_opt, *seed_opt;
};

std::vector<std::vector<int32_t>> read_batch(const std::string& path) {
    auto text = read_text_file(path);
    auto j = nlohmann::json::parse(text, nullptr, false);
    std::vector<std::vector<int32_t>> batch;
    if (!j.is_array() || j.empty()) throw sdk::Error(TFX_ERR_FORMAT, path + ": expected a non-empty JSON list of token id lists");
    for (size_t i = 0; i < j.size(); ++i) {
        if (!j[i].is_array() || j[i].empty()) {
            throw sdk::Error(TFX_ERR_FORMAT, path + ": item " + std::to_string(i) + " is not a non-empty list of token ids");
        }
        std::vector<int32_t> ids;
        for (const auto& id : j[i]) {
            if (!id.is_number_integer()) throw sdk::Error(TFX_ERR_FORMAT, path + ": item " + std::to_string(i) + " holds a non-integer id");
            ids.push_back(id.get<int32_t>());
        }
        batch.push_back(std::move(ids));
    }
    return batch;
}

GenerationConfig generation_config(const ModelSession& session, const GenerateOptions& o) {
    GenerationConfig g = GenerationConfig::from_model(
        session.config(), load_optional_json_file(session.model_dir() / "generation_config.json"));
    const bool sampling_flags = *o.temperature_opt || *o.top_k_opt || *o.top_p_opt || *o.min_p_opt || *o.seed_opt;
    if (o.greedy && sampling_flags) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--greedy cannot be combined with sampling options");
    if (o.greedy) g.do_sample = false;
    if (sampling_flags) g.do_sample = true;
    if (*o.max_new_opt) {
        g.max_new_tokens = o.max_new_tokens;
        g.max_length.reset();
    }
    if (*o.temperature_opt) g.temperature = o.temperature;
    if (*o.top_k_opt) g.top_k = o.top_k;
    if (*o.top_p_opt) g.top_p = o.top_p;
    if (*o.min_p_opt) g.min_p = o.min_p;
    if (*o.penalty_opt) g.repetition_penalty = o.repetition_penalty;
    if (*o.seed_opt) g.seed = o.seed;
    g.ignore_eos = o.ignore_eos;
    return g;
}

void run_generate(const GenerateOptions& o) {
    SessionOptions so{global_options().plugin_paths, o.model.device, o.model.attn_implementation, o.model.threads};
    auto session = ModelSession::open(o.model.model, so);
    std::unique_ptr<Tokenizer> tokenizer;
    if (std::filesystem::exists(std::filesystem::path(o.model.model) / "tokenizer.json")) {
        tokenizer = Tokenizer::open(o.model.model, global_options().plugin_paths);
    }
    std::vector<std::vector<int32_t>> prompts;
    if (!o.batch_file.empty()) {
        prompts = read_batch(o.batch_file);
    } else if (!o.input_ids.empty()) {
        prompts.push_back(parse_ids(o.input_ids, "--input-ids"));
    } else if (!o.prompt.empty()) {
        if (!tokenizer) throw sdk::Error(TFX_ERR_NOT_FOUND, o.model.model + ": no tokenizer.json for a text prompt; pass --input-ids");
        prompts.push_back(tokenizer->encode(o.prompt, true));
    } else {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "give a PROMPT, --input-ids or --batch");
    }
    const GenerationConfig config = generation_config(*session, o);

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
            std::cout << nlohmann::json{{"new_tokens", tokens}, {"text", text}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
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
    o->max_new_opt = cmd->add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate");
    cmd->add_flag("--greedy", o->greedy, "Greedy decoding (argmax)");
    o->temperature_opt = cmd->add_option("--temperature", o->temperature, "Sampling temperature (> 0)");
    o->top_k_opt = cmd->add_option("--top-k", o->top_k, "Keep the k most likely tokens (0: off)");
    o->top_p_opt = cmd->add_option("--top-p", o->top_p, "Nucleus sampling mass in (0, 1]");
    o->min_p_opt = cmd->add_option("--min-p", o->min_p, "Drop tokens below min_p x the top probability");
    o->seed_opt = cmd->add_option("--seed", o->seed, "Random seed for sampling");
    o->penalty_opt = cmd->add_option("--repetition-penalty", o->repetition_penalty, "Penalty for tokens already seen (1: off)");
    cmd->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at end-of-sequence tokens");
    cmd->add_option("--stop", o->stop_strings, "Stop a sequence once its text contains this string (repeatable)");
    cmd->add_flag("--json", o->json, "Print {\"new_tokens\": [...], \"text\": ...} per sequence");
    cmd->callback([o] { run_generate(*o); });
}

}  // namespace tfx::cli
