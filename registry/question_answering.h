// question-answering (extractive), as transformers' QuestionAnsweringPipeline does it: the
// question and the context encoded as a pair by the tokenizer's post-processor template
// (token_type_ids from it); a context longer than a window of max_seq_len tokens split into
// windows that overlap by doc_stride tokens, as a tokenizer's overflowing encodings do
// (truncation "only_second" with a stride); per window, start and end logits from the model,
// softmax over the window's context tokens (and the first, [CLS]), then the best spans: start
// probability times end probability, the end not before the start and at most max_answer_len
// tokens on. The windows' answers together, best first (an earlier window first on a tie),
// widened to whole words and given as characters of the context. With
// handle_impossible_answer the empty answer competes with the lowest score [CLS] gets as both
// start and end in any window.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
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

// The pipeline's arguments, with transformers' defaults.
struct QuestionAnsweringOptions {
    int64_t top_k = 1;
    int64_t max_answer_len = 15;
    bool handle_impossible_answer = false;
    // Tokens a window takes, question and special tokens included; 0: the least of 384, the
    // tokenizer's model_max_length and the model's positions.
    int64_t max_seq_len = 0;
    // Context tokens a window shares with the one before; -1: min(max_seq_len / 2, 128).
    int64_t doc_stride = -1;
};

// The context tokens [begin, end) of each window, for `context` tokens of which a window holds
// `room` and `stride` overlap (stride < room unless one window holds them all).
std::vector<std::pair<int64_t, int64_t>> context_windows(int64_t context, int64_t room, int64_t stride);

class QuestionAnsweringPipeline : public TaskPipeline {
  public:
    QuestionAnsweringPipeline(const std::string& model, const LoadOptions& options);
    std::vector<Answer> operator()(const std::string& question, const std::string& context,
                                   const QuestionAnsweringOptions& options = {});

  private:
    PairTemplate pair_;
    bool word_aware_ = false;
    int64_t model_max_length_ = 0;  // tokenizer_config.json's, 0 when it names none
};

}  // namespace tfx
