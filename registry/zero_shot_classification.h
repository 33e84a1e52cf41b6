// zero-shot-classification, as transformers' ZeroShotClassificationPipeline runs an NLI model
// (a sequence classifier whose labels name "entailment"): each candidate label becomes a
// hypothesis (hypothesis_template with the label in place of "{}"), the text and the
// hypothesis go in as a pair, and
//   single-label: the entailment logits of all candidates through one softmax;
//   multi_label (or a single candidate): per candidate, softmax over its contradiction and
//   entailment logits, the entailment probability.
// Labels come back best first.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "registry/pair_encoding.h"
#include "registry/pipelines.h"

namespace tfx {

// The NLI label that means entailment: the first whose name starts with "entail" (any case);
// -1 when none does (transformers then reads the last label, and says so).
int64_t entailment_label(const std::vector<std::string>& labels);

// Each candidate's score from its NLI logits (logits [candidates][nli_labels], row-major).
std::vector<float> zero_shot_scores(std::span<const float> logits, int64_t nli_labels, int64_t entailment,
                                    bool multi_label);

// "{}" in `hypothesis_template` replaced by `label` (the first "{}"); throws unless it has one.
std::string hypothesis_for(const std::string& hypothesis_template, const std::string& label);

// Candidate labels as transformers parses a string of them: split on commas, trimmed, empty
// ones dropped.
std::vector<std::string> candidate_labels_of(const std::string& comma_separated);

struct ZeroShotResult {
    std::string sequence;
    std::vector<std::string> labels;  // best first
    std::vector<float> scores;
};
// {"sequence", "labels", "scores"}.
nlohmann::json zero_shot_json(const ZeroShotResult& result);

class ZeroShotClassificationPipeline : public TaskPipeline {
  public:
    ZeroShotClassificationPipeline(const std::string& model, const LoadOptions& options);
    ZeroShotResult operator()(const std::string& sequence, const std::vector<std::string>& candidate_labels,
                              const std::string& hypothesis_template = "This example is {}.", bool multi_label = false);

  private:
    PairTemplate pair_;
    int64_t entailment_ = -1;
    int64_t nli_labels_ = 0;
};

}  // namespace tfx
