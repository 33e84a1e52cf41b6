// The generation loop: left-padded batches with an attention mask, prefill, then decode one
// token at a time against the KV cache until max_new_tokens, eos or a stop condition.
#pragma once

#include <functional>
#include <vector>

#include "core/model_session.h"
#include "core/sampling.h"

namespace tfx {

struct GenerationResult {
    std::vector<std::vector<int32_t>> new_tokens;  // per sequence, eos included when hit
};

// Called for each new token of each sequence as it is chosen (streaming).
using TokenCallback = std::function<void(size_t sequence, int32_t token)>;
// Asked after each token; true stops that sequence (stop strings live here).
using StopCondition = std::function<bool(size_t sequence, const std::vector<int32_t>& new_tokens)>;

GenerationResult generate(ModelSession& session, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config, const TokenCallback& on_token = {},
                          const StopCondition& should_stop = {});

}  // namespace tfx
