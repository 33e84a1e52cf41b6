// `tfx tokenize` and `tfx detokenize`: text <-> ids with a model folder's tokenizer, as
// AutoTokenizer does (default) or as tokenizer.json alone does (--raw).
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "apps/tfx/commands.h"
#include "registry/auto_tokenizer.h"
#include "tfx/sdk/error.hpp"

namespace tfx::cli {
namespace {

struct TokenizeOptions {
    std::string tokenizer;
    std::string text;
    std::string jsonl;
    bool no_special = false;
    bool raw = false;
};

void run_tokenize(const TokenizeOptions& o) {
    auto tokenizer = Tokenizer::open(o.tokenizer, global_options().plugin_paths, o.raw);
    auto print = [&](const std::string& text) {
        std::cout << nlohmann::json{{"ids", tokenizer->encode(text, !o.no_special)}}.dump() << '\n';
    };
    if (o.jsonl.empty()) {
        print(o.text);
        return;
    }
    std::ifstream in(o.jsonl);
    if (!in) throw sdk::Error(TFX_ERR_NOT_FOUND, o.jsonl + ": cannot open");
    int failures = 0;
    size_t line_number = 0;
    for (std::string line; std::getline(in, line);) {
        ++line_number;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
            auto j = nlohmann::json::parse(line);
            if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) {
                throw sdk::Error(TFX_ERR_FORMAT, "expected an object with a string \"text\"");
            }
            print(j["text"].get<std::string>());
        } catch (const std::exception& e) {
            ++failures;
            std::cout << nlohmann::json{{"error", o.jsonl + ":" + std::to_string(line_number) + ": " + e.what()}}.dump(
                             -1, ' ', false, nlohmann::json::error_handler_t::replace)
                      << '\n';
        }
    }
    if (failures > 0) throw sdk::Error(TFX_ERR_FORMAT, std::to_string(failures) + " input line(s) failed");
}

struct DetokenizeOptions {
    std::string tokenizer;
    std::string ids;
    bool skip_special = false;
    bool clean_up_spaces = false;
    bool raw = false;
};

void run_detokenize(const DetokenizeOptions& o) {
    auto tokenizer = Tokenizer::open(o.tokenizer, global_options().plugin_paths, o.raw);
    std::cout << tokenizer->decode(parse_ids(o.ids, "--ids"), o.skip_special, o.clean_up_spaces) << '\n';
}

}  // namespace

void add_tokenize_commands(CLI::App& app) {
    auto t = std::make_shared<TokenizeOptions>();
    auto* tok = app.add_subcommand("tokenize", "Text to token ids, one {\"ids\": [...]} line per input");
    tok->add_option("--tokenizer", t->tokenizer,
                    "Folder with tokenizer.json (a model folder), or a .gguf file (its own vocabulary)")
        ->required();
    auto* text = tok->add_option("--text", t->text, "Text to encode");
    auto* jsonl = tok->add_option("--jsonl", t->jsonl, "File of {\"text\": ...} lines");
    text->excludes(jsonl);
    tok->add_flag("--no-special", t->no_special, "Do not add special tokens (BOS/EOS, templates)");
    tok->add_flag("--raw", t->raw, "tokenizer.json alone, ignoring tokenizer_config.json");
    tok->callback([t, text, jsonl] {
        if (!*text && !*jsonl) throw CLI::RequiredError("--text or --jsonl");
        run_tokenize(*t);
    });

    auto d = std::make_shared<DetokenizeOptions>();
    auto* detok = app.add_subcommand("detokenize", "Token ids to text");
    detok->add_option("--tokenizer", d->tokenizer, "Folder with tokenizer.json")->required();
    detok->add_option("--ids", d->ids, "Comma-separated token ids")->required();
    detok->add_flag("--skip-special", d->skip_special, "Leave out special tokens");
    detok->add_flag("--clean-up-tokenization-spaces", d->clean_up_spaces,
                    "Remove spaces before punctuation as transformers' decode(clean_up_tokenization_spaces=True)");
    detok->add_flag("--raw", d->raw, "tokenizer.json alone, ignoring tokenizer_config.json");
    detok->callback([d] { run_detokenize(*d); });
}

}  // namespace tfx::cli
