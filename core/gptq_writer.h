// Writing GPTQ checkpoints (AutoGPTQ / optimum's "v1" format, the one core/gptq_awq.h reads):
// one linear's f32 weight [out, in] quantized by round-to-nearest in symmetric groups, packed
// into the tensors X.qweight, X.qzeros, X.scales and X.g_idx.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"

namespace tfx::gptq_writer {

// The scales are chosen as llama.cpp's Q4_0 / Q8_0 choose them, so a 4-bit linear in groups of
// 32 holds exactly the q4_0 blocks `--quantize int4` makes (and loads back as those blocks):
//   4 bits: d = (the group's value of largest magnitude) / -8, q = round(w / d) + 8 in 0..15
//           (d may be negative: the extreme lands on -8, its mirror on +7);
//   8 bits: d = max |w| / 127, q = round(w / d) + 128 in 1..255.
// The zero point is 8 / 128 (sym), stored as zero - 1 as v1 checkpoints do.
struct Tensor {
    std::string suffix;  // "qweight", ...
    safetensors::DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
};
// Needs bits 4 or 8, group_size dividing `in`, and `in` and `out` multiples of 32 / bits.
std::vector<Tensor> quantize_linear(std::span<const float> weight, int64_t out, int64_t in, int bits,
                                    int64_t group_size);
// Why quantize_linear cannot take this shape; empty when it can.
std::string unfit_reason(int64_t out, int64_t in, int bits, int64_t group_size);

// config.json's quantization_config for such a checkpoint, as transformers' GPTQConfig writes it.
nlohmann::json quantization_config(int bits, int64_t group_size);

}  // namespace tfx::gptq_writer
