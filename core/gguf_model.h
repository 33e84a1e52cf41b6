// A GGUF file seen as a Hugging Face checkpoint, as transformers' GGUF loader sees it: the
// config.json its metadata implies, and its tensors under Hugging Face names, with the rows of
// attn_q / attn_k put back in Hugging Face's order (llama.cpp's converter interleaves the two
// rotary halves of each head for llama-architecture files).
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/gguf.h"

namespace tfx::gguf {

struct HfTensor {
    const Tensor* tensor;
    std::vector<int64_t> shape;  // Hugging Face order ([out, in] for a weight)
    int64_t permuted_heads = 0;  // > 0: rows stored interleaved over this many heads
};

struct HfView {
    std::string config_json;
    std::map<std::string, HfTensor, std::less<>> tensors;  // by Hugging Face name
};

// Throws sdk::Error naming the file and the metadata key for an architecture, a rope scaling or
// a tensor type tfx does not map.
HfView hf_view(const File& file);

// The stored row of Hugging Face row `row` of a weight with `rows` rows interleaved over
// `heads` heads.
int64_t stored_row(int64_t row, int64_t rows, int64_t heads);

// The weight-format name of a tensor type ("q4_0", "f16", ...), as quantizers and backends name them.
std::string format_name(Type type);
bool is_float(Type type);

}  // namespace tfx::gguf
