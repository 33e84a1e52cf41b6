// Choosing the next token: the logits processors of transformers' generate(), in its order
// (repetition penalty, then OpenAI's presence / frequency penalties; then, when sampling, temperature, top-k, top-p,
// min-p), then argmax or a draw from the remaining distribution.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "core/generation_config.h"

namespace tfx {

// Applies the processors to logits in place and returns the chosen token. `context` is the
// prompt and the tokens generated so far; the generated ones start at `prompt_length`.
int32_t choose_next_token(std::span<float> logits, std::span<const int32_t> context, size_t prompt_length,
                          const GenerationConfig& config, std::mt19937_64& rng);

}  // namespace tfx
