// What generate() is asked to do: lengths, sampling settings and special tokens, as
// transformers' GenerationConfig reads them from generation_config.json (else config.json).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "tfx/sdk/config.hpp"

namespace tfx {

struct GenerationConfig {
    int64_t max_new_tokens = 20;
    std::optional<int64_t> max_length;  // prompt + new tokens, used when max_new_tokens is not given
    bool do_sample = false;
    float temperature = 1.0f;
    int64_t top_k = 50;
    float top_p = 1.0f;
    float min_p = 0.0f;
    float repetition_penalty = 1.0f;
    // OpenAI's penalties, over the generated tokens only (not the prompt): each token's logit
    // less frequency_penalty x its count, less presence_penalty once it has appeared.
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    std::vector<int32_t> eos_token_ids;
    std::optional<int32_t> pad_token_id;
    uint64_t seed = 0;
    bool ignore_eos = false;

    // Defaults from generation_config.json (else config.json's token ids), as transformers
    // reads them; fields that fail validation name the file.
    static GenerationConfig from_model(const sdk::Config& config, const std::optional<sdk::Config>& generation_config);
    // Smallest temperature accepted when sampling: below it logits / temperature overflows.
    static constexpr float kMinTemperature = 1e-6f;
    // Throws when a value is out of range or not finite (temperature < kMinTemperature while
    // sampling, top_p outside (0, 1], ...); the message starts with the field's name.
    void validate() const;
};

}  // namespace tfx
