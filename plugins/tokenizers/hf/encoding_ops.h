// Operations on Encodings shared by the post-processors and the tokenizer: merging
// sequences, truncation with overflow, padding (the Rust crate's Encoding methods).
#pragma once

#include <vector>

#include "tokenizer.h"

namespace tfx::tok {

// Appends `pair` to `self`, combining their overflowing parts as the Rust crate does.
void merge_into(Encoding& self, const Encoding& pair);
Encoding merge_all(std::vector<Encoding> encodings);

void truncate(Encoding& e, size_t max_length, size_t stride, Direction direction);
// Truncates a sequence (and optional pair) to params.max_length; throws Error when the
// strategy cannot be satisfied.
void truncate_pair(Encoding& first, Encoding* second, const TruncationParams& params);

void pad(Encoding& e, size_t target_length, const PaddingParams& params);
void pad_batch(std::vector<Encoding>& batch, const PaddingParams& params);

}  // namespace tfx::tok
