// question-answering (extractive), as transformers' QuestionAnsweringPipeline does it for one
// window: the question and the context encoded as a pair by the tokenizer's post-processor
// template (token_type_ids from it), start and end logits from the model, softmax over the
// context's tokens (and the first, [CLS]), then the best spans: start probability times end
// probability, the end not before the start and at most max_answer_len tokens on, the answer
// widened to whole words and given as characters of the context. With handle_impossible_answer
// the empty answer competes with the score [CLS] gets as both start and end.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "registry/pair_encoding.h"
#include "registry/pipelines.h"

namespace tfx {

struct Answer {
    float score;
    int64_t start, end;  // characters of the context
    std::string answer;
};

struct Span {
    int64_t start, end;  // tokens, inclusive
    float score;
};

// decode_spans over one window: `allowed` marks the tokens a span may start and end at (the
// context's, and the first); scores are probabilities from the masked softmaxes, the first
// token's taken out. Best first; at most top_k. `null_score` gets the first token's start x end
// probability (the empty answer's score).
std::vector<Span> best_spans(std::span<const float> start_logits, std::span<const float> end_logits,
                             const std::vector<bool>& allowed, int64_t top_k, int64_t max_answer_len,
                             float* null_score);

// {"score", "start", "end", "answer"}, as transformers' pipeline returns an answer.
nlohmann::json answer_json(const Answer& answer);

class QuestionAnsweringPipeline : public TaskPipeline {
  public:
    QuestionAnsweringPipeline(const std::string& model, const LoadOptions& options);
    std::vector<Answer> operator()(const std::string& question, const std::string& context, int64_t top_k = 1,
                                   int64_t max_answer_len = 15, bool handle_impossible_answer = false);

  private:
    PairTemplate pair_;
    bool word_aware_ = false;
};

}  // namespace tfx
