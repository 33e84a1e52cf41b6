// `tfx forward`: one forward pass, printed for comparison with the reference (porting and
// debugging tool). Causal LMs: last-position logits and per-position argmax; base models:
// last_hidden_state.
#include <algorithm>
#include <iostream>

#include <nlohmann/json.hpp>

#include "apps/tfx/commands.h"
#include "core/forward_call.h"
#include "core/model_session.h"

namespace tfx::cli {
namespace {

struct ForwardOptions {
    ModelOptions model;
    std::string input_ids;
    bool json = false;
};

void run_forward(const ForwardOptions& o) {
    auto session = AutoModel::from_pretrained(o.model.model, o.model.session_options());
    const std::vector<int32_t> ids = parse_ids(o.input_ids, "--input-ids");
    const tfx_model_info& info = session->info();
    const auto tokens = static_cast<int64_t>(ids.size());
    const bool classifier = info.output_kind == TFX_OUTPUT_CLASS_LOGITS;
    ForwardCall call(*session);
    call.run({.ids = ids, .output = SequenceInput::Output::all});
    auto row = [&](int64_t t) {
        auto r = call.row(t);
        return std::vector<float>(r.begin(), r.end());
    };
    const std::vector<float> pooled(call.pooled().begin(), call.pooled().end());
    nlohmann::json result;
    if (classifier) {
        result["logits"] = row(0);
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
    if (classifier) {
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
    auto* cmd = app.add_subcommand("forward", "One forward pass: logits (causal LM) or hidden states (base model)");
    opts->model.add_to(cmd);
    cmd->add_option("--input-ids", opts->input_ids, "Comma-separated token ids")->required();
    cmd->add_flag("--json", opts->json, "Print one JSON object");
    cmd->callback([opts] { run_forward(*opts); });
}

}  // namespace tfx::cli
