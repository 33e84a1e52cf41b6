// Choosing the next token as transformers' generate() does: its logits processors in its order
// (sequence bias, encoder and repetition penalties, n-gram, encoder n-gram and bad-word bans, length limits, forced
// BOS/EOS, exponential decay, suppression, renormalization), then, when sampling, its warpers (temperature, top-k,
// top-p, min-p, typical, epsilon, eta), then argmax or a draw. OpenAI's presence / frequency penalties (not
// transformers') follow the repetition penalty.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "core/generation_config.h"
#include "core/token_constraint.h"

namespace tfx {

// One sequence as transformers' processors see it when they process its next token's logits.
struct TokenContext {
    std::span<const int32_t> ids;  // prompt and generated tokens (not a padded batch row's left pads)
    int64_t pads = 0;              // left pads before `ids` in a padded batch: lengths count them, as in transformers
    int64_t input_length = 0;      // the prompt's length as generate() counts it (padded in a batch)
    int64_t max_length = 0;        // input_length + max_new_tokens
    // An encoder-decoder model's encoder input (then `ids` are the decoder's), else empty.
    std::span<const int32_t> encoder_ids;
    // transformers' input_ids.shape[-1].
    int64_t length() const { return pads + static_cast<int64_t>(ids.size()); }
};

class LogitsProcessing {
  public:
    // Validates `config` against the vocabulary (every id it names must be inside it).
    LogitsProcessing(const GenerationConfig& config, int64_t vocab_size);

    // The processors, in place: what transformers' generate() returns as `scores` when it does
    // not sample. Beam search runs them on log-probabilities.
    void process(std::span<float> scores, const TokenContext& context) const;
    // The warpers, in place, when sampling (else nothing).
    void warp(std::span<float> scores) const;
    // process(), the constraint's mask (constrained decoding), warp(), then argmax (the first
    // on ties) or a draw from softmax(scores).
    int32_t choose(std::span<float> scores, const TokenContext& context, std::mt19937_64& rng,
                   const TokenConstraint* constraint = nullptr) const;

    const GenerationConfig& config() const { return config_; }

  private:
    // Adds sequence biases (`bans` false) or bans bad words (true).
    void add_biases(std::span<float> scores, const TokenContext& context, bool bans) const;

    GenerationConfig config_;
    // sequence_bias's one-token entries summed per token; longer entries apply when the context
    // ends with their prefix.
    std::vector<float> single_token_bias_;
    std::vector<std::pair<std::vector<int32_t>, float>> prefix_bias_;
    // bad_words_ids split the same way (one-token entries equal to an EOS are dropped, as
    // transformers does).
    std::vector<int32_t> banned_tokens_;
    std::vector<std::vector<int32_t>> banned_sequences_;
};

// log_softmax(scores) of the n best finite entries, best first, and how many are finite: the
// per-step `scores` report of generate() (and OpenAI's top logprobs).
struct StepScores {
    int32_t n_finite = 0;
    std::vector<int32_t> top_ids;
    std::vector<float> top_logprobs;
    float chosen_logprob = 0.0f;
};
StepScores step_scores(std::span<const float> scores, int32_t chosen, int32_t n);

}  // namespace tfx
