// Assisted (speculative) decoding: a cheap source proposes the next tokens (a smaller draft
// model's greedy continuation, or prompt lookup: what followed the latest n-gram earlier in the
// context), the model scores them all in one forward, keeps those its own choice agrees with,
// and adds its own next token. Its choice is plain decoding's: the argmax, or when sampling a
// draw from its processed distribution with the request's random stream, one draw per token
// taken in order. So the tokens are exactly plain decoding's (same seed, same tokens); only the
// number of forwards changes. (transformers' speculative sampling accepts by probability
// ratio instead: more draft tokens kept, but not the same tokens as plain sampling.)
// Rejected tokens leave both KV caches (PagedKvCache::truncate).
#pragma once

#include <vector>

#include "core/generation.h"

namespace tfx {

// generate() with an assistant model or prompt_lookup_num_tokens > 0: greedy or sampled, one
// sequence per prompt (no beams), each prompt in turn.
GenerationResult assisted_generate(ModelSession& session, const std::vector<std::vector<int32_t>>& prompts,
                                   const GenerationConfig& config, const GenerateOptions& options);

}  // namespace tfx
