// Task commands over the pipelines: `tfx embed`, `tfx classify`, `tfx fill-mask`. Each prints
// one JSON line per input.
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "apps/tfx/commands.h"
#include "registry/pipelines.h"
#include "tfx/sdk/error.hpp"

namespace tfx::cli {
namespace {

void print(const nlohmann::json& j) {
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

// TEXT arguments, or the "text" of each line of a JSONL file.
std::vector<std::string> inputs(const std::vector<std::string>& texts, const std::string& jsonl) {
    if (jsonl.empty()) {
        if (texts.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "give TEXT arguments or --jsonl FILE");
        return texts;
    }
    std::ifstream in(jsonl);
    if (!in) throw sdk::Error(TFX_ERR_NOT_FOUND, jsonl + ": cannot open");
    std::vector<std::string> out;
    size_t n = 0;
    for (std::string line; std::getline(in, line);) {
        ++n;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) {
            throw sdk::Error(TFX_ERR_FORMAT, jsonl + ":" + std::to_string(n) + ": expected {\"text\": ...}");
        }
        out.push_back(j["text"].get<std::string>());
    }
    return out;
}

struct EmbedOptions {
    ModelOptions model;
    std::vector<std::string> texts;
    std::string jsonl;
    std::string pooling = "mean";
    bool normalize = false;
};

struct ClassifyOptions {
    ModelOptions model;
    std::vector<std::string> texts;
    std::string jsonl;
};

struct FillMaskOptions {
    ModelOptions model;
    std::string text;
    int top_k = 5;
};

}  // namespace

void add_task_commands(CLI::App& app) {
    auto e = std::make_shared<EmbedOptions>();
    auto* embed = app.add_subcommand("embed", "Sentence embeddings: one {\"embedding\": [...]} line per input");
    e->model.add_to(embed);
    embed->add_option("TEXT", e->texts, "Texts to embed");
    embed->add_option("--jsonl", e->jsonl, "File of {\"text\": ...} lines");
    embed->add_option("--pooling", e->pooling, "mean or cls")
        ->check(CLI::IsMember({"mean", "cls"}))
        ->capture_default_str();
    embed->add_flag("--normalize", e->normalize, "L2-normalize each vector");
    embed->callback([e] {
        FeatureExtractionPipeline pipeline(e->model.model, e->model.session_options());
        for (const auto& text : inputs(e->texts, e->jsonl)) {
            print({{"embedding", pipeline(text, e->pooling == "cls" ? Pooling::cls : Pooling::mean, e->normalize)}});
        }
    });

    auto c = std::make_shared<ClassifyOptions>();
    auto* classify = app.add_subcommand("classify", "Text classification: label and score per input");
    c->model.add_to(classify);
    classify->add_option("TEXT", c->texts, "Texts to classify");
    classify->add_option("--jsonl", c->jsonl, "File of {\"text\": ...} lines");
    classify->callback([c] {
        TextClassificationPipeline pipeline(c->model.model, c->model.session_options());
        for (const auto& text : inputs(c->texts, c->jsonl)) {
            auto scores = pipeline(text);
            nlohmann::json all = nlohmann::json::array();
            for (const auto& s : scores) all.push_back({{"label", s.label}, {"score", s.score}});
            print({{"label", scores.front().label}, {"score", scores.front().score}, {"scores", all}});
        }
    });

    auto f = std::make_shared<FillMaskOptions>();
    auto* fill = app.add_subcommand("fill-mask", "The most likely tokens for the mask token in TEXT");
    f->model.add_to(fill);
    fill->add_option("TEXT", f->text, "Text with exactly one mask token")->required();
    fill->add_option("--top-k", f->top_k, "Candidates to print")->capture_default_str()->check(integer_at_least(1));
    fill->callback([f] {
        FillMaskPipeline pipeline(f->model.model, f->model.session_options());
        for (const auto& cand : pipeline(f->text, f->top_k)) {
            print({{"token", cand.token},
                   {"token_str", cand.token_str},
                   {"score", cand.score},
                   {"sequence", cand.sequence}});
        }
    });
}

}  // namespace tfx::cli
