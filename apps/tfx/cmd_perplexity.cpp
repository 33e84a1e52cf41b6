// `tfx perplexity`: perplexity of a causal LM on a fixed token stream, as llama.cpp's
// llama-perplexity and the shared references define it: the stream cut into whole windows of
// --ctx tokens, each one forward pass from position 0 (no extra BOS), tokens 1..ctx-1 of each
// window scored with a log-softmax in f64 over the f32 logits. With --kl-base, the same windows
// through a reference model (the f32 original of a quantized one) give the mean KL divergence
// KL(reference || model) per scored token and how often both pick the same top token.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "apps/tfx/commands.h"
#include "core/forward_call.h"
#include "core/json_file.h"
#include "core/model_session.h"
#include "tfx/sdk/error.hpp"

namespace tfx::cli {
namespace {

struct PerplexityOptions {
    ModelOptions model;
    std::string ids_file;
    int64_t ctx = 128;
    std::string kl_base;
    bool json = false;
};

// A JSON file with an "ids" array (or a bare array), or ids separated by spaces or commas.
std::vector<int32_t> read_ids(const std::string& path) {
    const std::string s = read_text_file(path);
    const size_t first = s.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && (s[first] == '{' || s[first] == '[')) {
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(s);
        } catch (const nlohmann::json::exception& e) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--ids-file " + path + ": not valid JSON (" + e.what() + ")");
        }
        const nlohmann::json ids = j.is_object() ? j.value("ids", nlohmann::json()) : j;
        if (!ids.is_array()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--ids-file " + path + ": no \"ids\" array");
        std::string joined;
        for (const auto& id : ids) {
            if (!id.is_number_integer()) {
                throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                                 "--ids-file " + path + ": ids must be integers, got " + id.dump());
            }
            joined += (joined.empty() ? "" : ",") + std::to_string(id.get<int64_t>());
        }
        return parse_ids(joined, "--ids-file");
    }
    std::string joined = s;
    for (char& c : joined) {
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r') c = ',';
    }
    std::string compact;
    for (char c : joined) {
        if (c != ',' || (!compact.empty() && compact.back() != ',')) compact += c;
    }
    while (!compact.empty() && compact.back() == ',') compact.pop_back();
    return parse_ids(compact, "--ids-file");
}

// log-softmax in f64 of one row of logits.
std::vector<double> log_softmax(std::span<const float> logits) {
    double top = -INFINITY;
    for (float v : logits) top = std::max(top, static_cast<double>(v));
    double sum = 0.0;
    for (float v : logits) sum += std::exp(static_cast<double>(v) - top);
    const double log_sum = top + std::log(sum);
    std::vector<double> out(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - log_sum;
    return out;
}

void run_perplexity(const PerplexityOptions& o) {
    if (o.ctx < 2)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--ctx: expected at least 2, got " + std::to_string(o.ctx));
    const std::vector<int32_t> ids = read_ids(o.ids_file);
    const auto windows = static_cast<int64_t>(ids.size()) / o.ctx;
    if (windows == 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--ids-file " + o.ids_file + ": " + std::to_string(ids.size()) +
                                                       " ids, fewer than one window of --ctx " + std::to_string(o.ctx));
    }
    auto session = AutoModel::from_pretrained(o.model.model, o.model.session_options());
    if (session->info().output_kind != TFX_OUTPUT_LOGITS) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, "--model " + o.model.model + ": perplexity needs a causal LM");
    }
    std::unique_ptr<ModelSession> base;
    if (!o.kl_base.empty()) {
        ModelOptions base_options = o.model;
        base_options.model = o.kl_base;
        base_options.quantize.clear();
        base_options.weight_format.clear();
        base = AutoModel::from_pretrained(o.kl_base, base_options.session_options());
    }
    ForwardCall call(*session);
    std::optional<ForwardCall> base_call;
    if (base) base_call.emplace(*base);
    const auto vocab = static_cast<size_t>(session->info().output_size);
    double nll = 0.0, kl = 0.0;
    int64_t scored = 0, same_top = 0;
    for (int64_t w = 0; w < windows; ++w) {
        const std::span<const int32_t> window(ids.data() + w * o.ctx, static_cast<size_t>(o.ctx));
        call.run({.ids = window, .output = SequenceInput::Output::all});
        if (base_call) base_call->run({.ids = window, .output = SequenceInput::Output::all});
        for (int64_t t = 0; t + 1 < o.ctx; ++t) {
            const auto logp = log_softmax(call.row(t));
            const auto next = static_cast<size_t>(window[static_cast<size_t>(t + 1)]);
            if (next >= vocab) {
                throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--ids-file: id " + std::to_string(next) +
                                                               " is outside the vocabulary of " +
                                                               std::to_string(vocab));
            }
            nll -= logp[next];
            if (base_call) {
                const auto ref = log_softmax(base_call->row(t));
                if (ref.size() != logp.size()) {
                    throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--kl-base: its vocabulary differs from the model's");
                }
                double d = 0.0;
                for (size_t i = 0; i < ref.size(); ++i) d += std::exp(ref[i]) * (ref[i] - logp[i]);
                kl += d;
                const auto ref_top = std::max_element(ref.begin(), ref.end()) - ref.begin();
                same_top += ref_top == std::max_element(logp.begin(), logp.end()) - logp.begin() ? 1 : 0;
            }
            ++scored;
        }
    }
    nlohmann::json result = {{"model", o.model.model},
                             {"n_tokens", ids.size()},
                             {"ctx", o.ctx},
                             {"n_windows", windows},
                             {"n_scored", scored},
                             {"nll_sum", nll},
                             {"ppl", std::exp(nll / static_cast<double>(scored))}};
    if (base) {
        result["kl_base"] = o.kl_base;
        result["kl_mean"] = kl / static_cast<double>(scored);
        result["same_top_token"] = static_cast<double>(same_top) / static_cast<double>(scored);
    }
    if (o.json) {
        std::cout << result.dump() << '\n';
        return;
    }
    std::cout << "perplexity " << result["ppl"].get<double>() << " over " << scored << " tokens (" << windows
              << " windows of " << o.ctx << ")\n";
    if (base) {
        std::cout << "KL(" << o.kl_base << " || model) " << result["kl_mean"].get<double>()
                  << " per token; same top token " << 100.0 * result["same_top_token"].get<double>() << "%\n";
    }
}

}  // namespace

void add_perplexity_command(CLI::App& app) {
    auto opts = std::make_shared<PerplexityOptions>();
    auto* cmd =
        app.add_subcommand("perplexity", "Perplexity on a token stream (and KL divergence against a reference)");
    opts->model.add_to(cmd, /*tensor_parallel=*/true);
    cmd->add_option("--ids-file", opts->ids_file, "Token ids: a JSON file with an \"ids\" array, or ids as text")
        ->required();
    cmd->add_option("--ctx", opts->ctx, "Window length: each window is one pass from position 0")
        ->capture_default_str();
    cmd->add_option("--kl-base", opts->kl_base, "Reference model (folder or .gguf) for the KL divergence");
    cmd->add_flag("--json", opts->json, "Print one JSON object");
    cmd->callback([opts] { run_perplexity(*opts); });
}

}  // namespace tfx::cli
