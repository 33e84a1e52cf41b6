// Assisted (speculative) greedy decoding: a cheap source proposes the next tokens (a smaller
// draft model's greedy continuation, or prompt lookup: what followed the latest n-gram earlier
// in the context), the model checks them all in one forward, keeps those its own greedy choice
// agrees with, and adds its own next token. The tokens are plain greedy decoding's; only the
// number of forwards changes. Rejected tokens leave both KV caches (PagedKvCache::truncate).
#pragma once

#include <vector>

#include "core/generation.h"

namespace tfx {

// generate() with an assistant model or prompt_lookup_num_tokens > 0: greedy decoding only (do_sample false, one beam),
// each prompt in turn.
GenerationResult assisted_generate(ModelSession& session, const std::vector<std::vector<int32_t>>& prompts,
                                   const GenerationConfig& config, const GenerateOptions& options);

}  // namespace tfx
