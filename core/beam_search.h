// Beam search as transformers' generate() runs it (BeamSearchScorer): num_beams hypotheses per
// prompt, scored by the sum of their processed log-probabilities, finished ones ranked by
// score / generated_length ** length_penalty, stopped per early_stopping (true, false or
// "never"). Beams live in the paged KV cache: a beam that continues another forks its cache
// sequence (blocks shared, the last one copied when first written), so reordering beams
// copies no cache.
#pragma once

#include <vector>

#include "core/generation.h"

namespace tfx {

// Every prompt's num_return_sequences best hypotheses, best first, with sequences_scores. A
// finished hypothesis ends with its EOS; an open one ran to max_length. Prompts are decoded
// as one batch, as transformers pads them (lengths count the left pads of shorter prompts).
// An encoder-decoder model's rows may start from a decoder prompt, and a speech model's encode
// `encoder_decoder.input_features` (their prompts then empty).
GenerationResult beam_search(ModelSession& session, const std::vector<std::vector<int32_t>>& prompts,
                             const GenerationConfig& config, const EncoderDecoderInputs& encoder_decoder = {});

}  // namespace tfx
