#include "registry/zero_shot_classification.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>

#include "core/log.h"
#include "tfx/sdk/error.hpp"

namespace tfx {

int64_t entailment_label(const std::vector<std::string>& labels) {
    for (size_t i = 0; i < labels.size(); ++i) {
        std::string lower = labels[i];
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (lower.starts_with("entail")) return static_cast<int64_t>(i);
    }
    return -1;
}

std::vector<float> zero_shot_scores(std::span<const float> logits, int64_t nli_labels, int64_t entailment,
                                    bool multi_label) {
    const auto candidates = static_cast<int64_t>(logits.size()) / nli_labels;
    // Python's negative index: -1 is the last label.
    const int64_t entail = entailment < 0 ? nli_labels + entailment : entailment;
    const int64_t contradiction = entailment == 0 ? nli_labels - 1 : 0;
    std::vector<float> scores(static_cast<size_t>(candidates));
    if (multi_label || candidates == 1) {
        for (int64_t c = 0; c < candidates; ++c) {
            float pair[2] = {logits[c * nli_labels + contradiction], logits[c * nli_labels + entail]};
            softmax_in_place(pair);
            scores[c] = pair[1];
        }
        return scores;
    }
    for (int64_t c = 0; c < candidates; ++c) scores[c] = logits[c * nli_labels + entail];
    softmax_in_place(scores);
    return scores;
}

std::string hypothesis_for(const std::string& hypothesis_template, const std::string& label) {
    const size_t at = hypothesis_template.find("{}");
    if (at == std::string::npos) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "hypothesis_template \"" + hypothesis_template + "\": expected {} where the label goes");
    }
    return hypothesis_template.substr(0, at) + label + hypothesis_template.substr(at + 2);
}

std::vector<std::string> candidate_labels_of(const std::string& comma_separated) {
    std::vector<std::string> labels;
    size_t at = 0;
    while (at <= comma_separated.size()) {
        const size_t comma = std::min(comma_separated.find(',', at), comma_separated.size());
        std::string label = comma_separated.substr(at, comma - at);
        const size_t first = label.find_first_not_of(" \t\n\r"), last = label.find_last_not_of(" \t\n\r");
        if (first != std::string::npos) labels.push_back(label.substr(first, last - first + 1));
        at = comma + 1;
    }
    return labels;
}

nlohmann::json zero_shot_json(const ZeroShotResult& result) {
    return {{"sequence", result.sequence}, {"labels", result.labels}, {"scores", result.scores}};
}

ZeroShotClassificationPipeline::ZeroShotClassificationPipeline(const std::string& model, const LoadOptions& options)
    : TaskPipeline(model, options) {
    if (session_->info().output_kind != TFX_OUTPUT_CLASS_LOGITS) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, session_->architecture() +
                                                  " is not a sequence classifier; zero-shot classification needs "
                                                  "an NLI model (labels with entailment)");
    }
    nli_labels_ = session_->info().output_size;
    entailment_ = entailment_label(label_names(*session_, nli_labels_));
    if (entailment_ < 0) {
        log::write(log::Level::warn, "zero-shot-classification",
                   "config.json's id2label names no entailment label; reading the last label as entailment, as "
                   "transformers does");
    }
    pair_ = pair_template_of(session_->model_dir() / "tokenizer.json");
}

ZeroShotResult ZeroShotClassificationPipeline::operator()(const std::string& sequence,
                                                          const std::vector<std::string>& candidate_labels,
                                                          const std::string& hypothesis_template, bool multi_label) {
    if (candidate_labels.empty()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "candidate_labels: give at least one label");
    }
    // One premise-hypothesis pair per label, all in ragged forward calls together.
    std::vector<std::vector<int32_t>> ids, types;
    for (const std::string& label : candidate_labels) {
        PairEncoding pair = encode_pair(*tokenizer_, pair_, sequence, hypothesis_for(hypothesis_template, label));
        check_fits(*session_, pair, "the text and the hypothesis", "texts are not truncated");
        ids.push_back(std::move(pair.ids));
        types.push_back(std::move(pair.type_ids));
    }
    std::vector<float> logits;
    for (const Outputs& out : run_batch(ids, types)) {
        logits.insert(logits.end(), out.values.begin(), out.values.begin() + nli_labels_);
    }
    const std::vector<float> scores = zero_shot_scores(logits, nli_labels_, entailment_, multi_label);
    std::vector<size_t> order(scores.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
    ZeroShotResult result{sequence, {}, {}};
    for (size_t i : order) {
        result.labels.push_back(candidate_labels[i]);
        result.scores.push_back(scores[i]);
    }
    return result;
}

}  // namespace tfx
