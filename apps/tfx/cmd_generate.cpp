// `tfx generate`: prompt -> new tokens, streamed as they are chosen. Defaults come from the
// model's generation_config.json; command-line options override them.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>

#include <nlohmann/json.hpp>

#include "apps/tfx/commands.h"
#include "apps/tfx/interrupt.h"
#include "core/generation.h"
#include "core/json_file.h"
#include "core/json_schema_regex.h"
#include "core/stop_strings.h"
#include "core/tensor_parallel.h"
#include "registry/auto_tokenizer.h"
#include "registry/speech_recognition.h"

namespace tfx::cli {
namespace {

struct GenerateCommand {
    ModelOptions model;
    std::string prompt;
    std::string prompt_file;
    std::string input_ids;
    std::string batch_file;
    std::string audio;
    std::string decoder_prompt_ids;
    SamplingOptions sampling;
    bool chat = false;
    bool json = false;
    std::vector<std::string> stop_strings;
    std::string teacher_force;
    std::string assistant_model;
    std::string json_schema;
    std::string regex;
    int64_t prompt_lookup_tokens = 0;
    int64_t assistant_tokens = 0;
    bool output_scores = false;
    int32_t top_scores = 20;
    // The prompt sources, of which exactly one must be given.
    std::vector<CLI::Option*> sources;
};

// Exactly one of PROMPT, --prompt-file, --input-ids, --batch, --audio; checked before the model loads.
void check_arguments(const GenerateCommand& o) {
    std::vector<std::string> given;
    for (const CLI::Option* source : o.sources) {
        if (source->count() > 0) given.push_back(source->get_name());
    }
    if (given.size() > 1) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         given[0] + " and " + given[1] +
                             " cannot be combined: give exactly one of PROMPT, "
                             "--prompt-file FILE, --input-ids 1,2,3, --batch FILE or --audio FILE");
    }
    if (given.empty())
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "give a PROMPT, --prompt-file FILE, --input-ids 1,2,3, --batch FILE or --audio FILE");
    // A chat template renders text; ids given as such cannot be sent through it.
    if (o.chat && (!o.input_ids.empty() || !o.batch_file.empty() || !o.audio.empty())) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         std::string("--chat takes a text prompt (PROMPT or --prompt-file), not ") +
                             (!o.audio.empty()      ? "--audio"
                              : o.input_ids.empty() ? "--batch"
                                                    : "--input-ids"));
    }
    for (const std::string& stop : o.stop_strings) {
        if (stop.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--stop: expected a non-empty string, got ''");
    }
    if (!o.json_schema.empty() && !o.regex.empty())
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--json-schema and --regex cannot be combined: give one constraint");
    if (!o.teacher_force.empty() && !o.batch_file.empty())
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--teacher-force takes one prompt, not --batch");
}

// One returned sequence as a JSON object: its new tokens, text, and (with --output-scores) each
// step's processed log-probabilities.
nlohmann::json sequence_json(const GenerationResult& result, size_t row, const Tokenizer* tokenizer) {
    const std::vector<int32_t>& tokens = result.new_tokens[row];
    nlohmann::json out = {
        {"new_tokens", tokens},
        {"text", tokenizer ? nlohmann::json(tokenizer->decode(tokens, true)) : nlohmann::json(nullptr)}};
    if (row < result.scores.size()) {
        nlohmann::json steps = nlohmann::json::array();
        for (size_t t = 0; t < result.scores[row].size(); ++t) {
            const StepScores& s = result.scores[row][t];
            steps.push_back({{"token", tokens[t]},
                             {"logprob", s.chosen_logprob},
                             {"n_finite", s.n_finite},
                             {"top_ids", s.top_ids},
                             {"top_logprobs", s.top_logprobs}});
        }
        out["scores"] = std::move(steps);
    }
    return out;
}

// --json: one line per returned sequence; then, when there are several, a last line with all of
// them ("sequences", and "sequences_scores" for beam search). With one, its line holds those too.
void print_json(const GenerationResult& result, const Tokenizer* tokenizer) {
    nlohmann::json summary = {{"sequences", result.new_tokens}};
    if (!result.sequences_scores.empty()) summary["sequences_scores"] = result.sequences_scores;
    auto print = [](const nlohmann::json& j) {
        std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    };
    if (result.new_tokens.size() == 1) {
        nlohmann::json line = sequence_json(result, 0, tokenizer);
        line.update(summary);
        print(line);
        return;
    }
    for (size_t row = 0; row < result.new_tokens.size(); ++row) print(sequence_json(result, row, tokenizer));
    print(summary);
}

// The whole file (or stdin for "-"), less one trailing newline, as llama.cpp's --file reads it.
std::string read_prompt_file(const std::string& path) {
    std::string text;
    // Under --tp rank 0 reads it (mpirun hands stdin to rank 0 alone) and shares it.
    const TensorParallelGroup* group = TensorParallelGroup::joined();
    if (group != nullptr && group->rank() != 0) {
        text = group->share_from_first(std::string());
    } else if (path == "-") {
        text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
        std::error_code ec;
        if (std::filesystem::is_directory(path, ec))
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                             "--prompt-file: '" + path + "' is a folder, expected a text file");
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            throw sdk::Error(TFX_ERR_NOT_FOUND,
                             "--prompt-file: cannot open '" + path + "' (expected a text file, or - for stdin)");
        }
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    if (group != nullptr && group->rank() == 0) text = group->share_from_first(text);
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.empty())
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--prompt-file: '" + path + "' holds no text, expected a prompt");
    return text;
}

std::vector<std::vector<int32_t>> read_batch(const std::string& path) {
    const std::string where = "--batch " + path;
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw sdk::Error(TFX_ERR_NOT_FOUND, where + ": cannot open (expected a JSON file such as [[1,2,3],[4,5]])");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        // e.what() holds the line and column; byte is the offset (1-based) where parsing stopped.
        std::string message = e.what();
        if (const size_t cut = message.find("parse error"); cut != std::string::npos) message = message.substr(cut);
        throw sdk::Error(TFX_ERR_FORMAT, where + ": invalid JSON at byte " + std::to_string(e.byte) + ": " + message +
                                             " (expected a JSON list of token id lists, such as [[1,2,3],[4,5]])");
    }
    std::vector<std::vector<int32_t>> batch;
    if (!j.is_array() || j.empty())
        throw sdk::Error(TFX_ERR_FORMAT,
                         where + ": expected a non-empty JSON list of token id lists, such as [[1,2,3],[4,5]]");
    for (size_t i = 0; i < j.size(); ++i) {
        const std::string item = where + ": item " + std::to_string(i);
        if (!j[i].is_array() || j[i].empty())
            throw sdk::Error(TFX_ERR_FORMAT, item + " is not a non-empty list of token ids");
        std::vector<int32_t> ids;
        for (size_t k = 0; k < j[i].size(); ++k) {
            const auto& id = j[i][k];
            const bool in_range = id.is_number_unsigned()  ? id.get<uint64_t>() <= 2147483647u
                                  : id.is_number_integer() ? id.get<int64_t>() >= 0 && id.get<int64_t>() <= 2147483647
                                                           : false;
            if (!in_range) {
                throw sdk::Error(TFX_ERR_FORMAT, item + ", position " + std::to_string(k) + ": " + id.dump() +
                                                     " is not a token id (expected an integer from 0 to 2147483647)");
            }
            ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
        }
        batch.push_back(std::move(ids));
    }
    return batch;
}

void run_generate(const GenerateCommand& o) {
    check_arguments(o);
    std::vector<std::vector<int32_t>> prompts;
    // Everything that can be checked without the model is, before it loads.
    if (!o.batch_file.empty()) {
        prompts = read_batch(o.batch_file);
    } else if (!o.input_ids.empty()) {
        prompts.push_back(parse_ids(o.input_ids, "--input-ids"));
    }
    std::string prompt = o.prompt;
    join_tensor_parallel(o.model.tensor_parallel);  // before reading a prompt rank 0 shares
    if (!o.prompt_file.empty()) prompt = read_prompt_file(o.prompt_file);
    if (prompts.empty() && prompt.empty() && o.audio.empty())
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "PROMPT: expected a non-empty text prompt");
    EncoderDecoderInputs encoder_decoder;
    if (!o.decoder_prompt_ids.empty())
        encoder_decoder.decoder_prompt = parse_ids(o.decoder_prompt_ids, "--decoder-prompt-ids");
    std::optional<Audio> audio;
    if (!o.audio.empty()) audio = read_audio(o.audio);

    auto session = AutoModel::from_pretrained(o.model.model, o.model.session_options());
    if (!encoder_decoder.decoder_prompt.empty() && session->info().num_cross_layers == 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "--decoder-prompt-ids: " + session->architecture() + " is not an encoder-decoder model");
    }
    if (audio) {
        // A speech model: the audio's features are the encoder's input; the decoder starts from
        // --decoder-prompt-ids (or decoder_start_token_id).
        encoder_decoder.input_features = {
            std::make_shared<const std::vector<float>>(speech_features(*session, *audio).values)};
        prompts.push_back({});
    } else if (session->info().input_feature_tokens > 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         session->architecture() + " is a speech model: give --audio FILE (its encoder's input)");
    }
    std::unique_ptr<Tokenizer> tokenizer;
    if (Tokenizer::model_has_one(*session)) {
        tokenizer = Tokenizer::for_model(*session, global_options().plugin_paths);
    }
    if (prompts.empty()) {
        if (!tokenizer)
            throw sdk::Error(
                TFX_ERR_NOT_FOUND,
                o.model.model + ": no tokenizer.json (or GGUF tokenizer metadata) for a text prompt; pass --input-ids");
        if (o.chat) {
            const nlohmann::ordered_json messages = {{{"role", "user"}, {"content", prompt}}};
            prompts.push_back(tokenizer->encode_chat(messages, {}));
        } else {
            prompts.push_back(tokenizer->encode(prompt, true));
        }
    }
    GenerationConfig config = o.sampling.resolve(*session);
    if (o.prompt_lookup_tokens > 0) config.prompt_lookup_num_tokens = o.prompt_lookup_tokens;
    if (o.assistant_tokens > 0) config.num_assistant_tokens = o.assistant_tokens;
    std::unique_ptr<ModelSession> assistant;
    if (!o.assistant_model.empty())
        assistant = AutoModel::from_pretrained(o.assistant_model, o.model.session_options());

    // --json, --batch and several returned sequences print JSON lines (print_json); otherwise
    // the one sequence streams as text (token ids without a tokenizer).
    const bool json = o.json || !o.batch_file.empty() || config.num_return_sequences > 1;
    std::optional<TextStreamer> streamer;
    if (tokenizer) streamer.emplace(*tokenizer, /*skip_special_tokens=*/true);
    TokenCallback on_token;
    if (!json) {
        on_token = [&](size_t, int32_t token) {
            if (streamer) {
                std::cout << streamer->put(token) << std::flush;
            } else {
                std::cout << token << ' ' << std::flush;
            }
        };
    }
    // Stop strings (--stop and the config's stop_strings) as transformers' StopStringCriteria
    // reads them, over each token's text.
    std::vector<std::string> stops = config.stop_strings;
    stops.insert(stops.end(), o.stop_strings.begin(), o.stop_strings.end());
    if (!stops.empty() && !tokenizer)
        throw sdk::Error(TFX_ERR_UNSUPPORTED, "stop strings (--stop, stop_strings) need the model's tokenizer.json");
    std::optional<StopStrings> stop_strings;
    if (!stops.empty()) {
        stop_strings.emplace(stops, [&tokenizer](int32_t token) { return tokenizer->piece_after_text(token); });
    }
    // Ctrl-C stops every sequence after its next token; what was generated is printed, then
    // the command exits 130.
    const InterruptScope interrupt_scope;
    const size_t per_prompt = config.num_beams > 1 ? 1 : static_cast<size_t>(config.num_return_sequences);
    std::vector<int32_t> context;
    tfx::GenerateOptions options;
    options.on_token = on_token;
    options.should_stop = [&](size_t row, const std::vector<int32_t>& tokens) {
        if (interrupted()) return true;
        if (!stop_strings) return false;
        const std::vector<int32_t>& row_prompt = prompts[row / per_prompt];
        context.assign(row_prompt.begin(), row_prompt.end());
        context.insert(context.end(), tokens.begin(), tokens.end());
        return stop_strings->matches(context);
    };
    if (o.output_scores) options.output_scores = o.top_scores;
    if (!o.teacher_force.empty()) options.teacher_force = parse_ids(o.teacher_force, "--teacher-force");
    options.assistant_model = assistant.get();
    options.encoder_decoder = std::move(encoder_decoder);
    if (!o.json_schema.empty() || !o.regex.empty()) {
        if (!tokenizer)
            throw sdk::Error(TFX_ERR_UNSUPPORTED, "--json-schema and --regex need the model's tokenizer.json");
        std::string pattern = o.regex;
        if (!o.json_schema.empty()) {
            load_json_file(o.json_schema);  // names the file when it is missing or not JSON
            // Read again keeping the key order: properties are written in the schema's order.
            const auto schema = nlohmann::ordered_json::parse(read_text_file(o.json_schema));
            try {
                pattern = json_schema_regex(schema);
            } catch (const sdk::Error& e) {
                throw sdk::Error(e.code(), "--json-schema " + o.json_schema + ": " + e.what());
            }
        }
        options.constraint = std::make_shared<ConstraintAutomaton>(
            pattern, std::make_shared<const TokenBytes>(tokenizer->token_bytes()), config.eos_token_ids);
    }
    GenerationResult result = generate(*session, prompts, config, options);
    if (result.forwards > 0) {
        size_t generated = 0;
        for (const auto& row : result.new_tokens) generated += row.size();
        std::cerr << "assisted decoding: " << result.forwards << " forward passes for " << generated << " tokens; "
                  << result.draft_accepted << " of " << result.draft_proposed << " draft tokens accepted\n";
    }
    if (!json) std::cout << (streamer ? streamer->end() : "") << '\n';
    if (json) print_json(result, tokenizer.get());
    std::cout << std::flush;
    if (interrupted()) throw Interrupted();
}

}  // namespace

void add_generate_command(CLI::App& app) {
    auto o = std::make_shared<GenerateCommand>();
    auto* cmd = app.add_subcommand("generate", "Generate tokens from a prompt (streamed)");
    o->model.add_to(cmd, /*tensor_parallel=*/true);
    o->sources = {
        cmd->add_option("PROMPT", o->prompt, "Text prompt (needs a tokenizer)"),
        cmd->add_option("--prompt-file", o->prompt_file,
                        "Read the text prompt from FILE (- for stdin), less one trailing newline"),
        cmd->add_option("--input-ids", o->input_ids, "Prompt as comma-separated token ids"),
        cmd->add_option("--batch", o->batch_file,
                        "JSON list of id lists, run as one ragged batch; prints one JSON line per row (as --json)"),
        cmd->add_option("--audio", o->audio,
                        "Speech models: a sound file (WAV, FLAC, Ogg) through the model's feature extractor, as the "
                        "encoder's input"),
    };
    cmd->add_option("--decoder-prompt-ids", o->decoder_prompt_ids,
                    "Encoder-decoder models: the decoder's first tokens (comma-separated ids; default "
                    "decoder_start_token_id), e.g. Whisper's <|startoftranscript|> <|en|> <|transcribe|> "
                    "<|notimestamps|>; the new tokens follow them");
    o->sampling.add_to(cmd);
    cmd->add_flag("--chat", o->chat, "Send PROMPT as a user message through the model's chat template");
    cmd->add_option("--stop", o->stop_strings, "Stop a sequence once its text contains this string (repeatable)");
    cmd->add_flag("--json", o->json,
                  "Print {\"new_tokens\": [...], \"text\": ...} per sequence, then with several sequences a last "
                  "line {\"sequences\": [...], \"sequences_scores\": [...]} (always so with --batch)");
    cmd->add_option("--teacher-force", o->teacher_force,
                    "Take these comma-separated ids as the new tokens instead of choosing them (the logits are "
                    "processed as usual; see --output-scores)");
    cmd->add_option("--json-schema", o->json_schema,
                    "Constrained decoding: the output is JSON valid against this JSON Schema file (see "
                    "core/json_schema_regex.h for the keywords)");
    cmd->add_option("--regex", o->regex, "Constrained decoding: the output matches this regular expression");
    cmd->add_option("--assistant-model", o->assistant_model,
                    "Assisted (speculative) decoding with this smaller model of the same tokenizer as the draft: the "
                    "tokens are plain decoding's (greedy, or sampled with the same seed), in fewer forward passes");
    cmd->add_option("--num-assistant-tokens", o->assistant_tokens,
                    "Draft tokens per round at first (then +2 after a round that accepted all, -1 otherwise)")
        ->check(integer_at_least(1));
    cmd->add_option("--prompt-lookup-num-tokens", o->prompt_lookup_tokens,
                    "Assisted decoding with prompt lookup: draft up to N tokens that followed the latest "
                    "n-gram earlier in the context")
        ->check(integer_at_least(1));
    cmd->add_flag("--output-scores", o->output_scores,
                  "With --json: each step's processed log-probabilities (the chosen token's, the best --top-scores "
                  "and how many tokens remain allowed)");
    cmd->add_option("--top-scores", o->top_scores, "Alternatives per step for --output-scores")
        ->check(integer_at_least(0));
    cmd->callback([o] { run_generate(*o); });
}

}  // namespace tfx::cli
