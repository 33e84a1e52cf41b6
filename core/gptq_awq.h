// Pre-quantized Hugging Face checkpoints (config.json's quantization_config): GPTQ (AutoGPTQ /
// optimum, 2-8 bits, any group size, act-order through g_idx) and AWQ GEMM (4 bits). A linear
// `X` is stored as X.qweight, X.qzeros, X.scales (and X.g_idx for GPTQ); these decode it to
// the f32 weight [out, in] that transformers' twin holds: f32(f16 scale) * f32(q - zero),
// exact in f32.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"

namespace tfx::quantized_checkpoint {

struct Method {
    enum class Kind { gptq, awq } kind;
    int bits;
    int64_t group_size;    // -1: one group over all inputs
    bool zeros_minus_one;  // GPTQ's v1 checkpoints store zero - 1
};

// The method config.json's quantization_config names; nullopt without one. Throws sdk::Error
// naming the field for an unsupported method or setting.
std::optional<Method> method_of(const nlohmann::json& config, const std::string& source);

// The f32 weight [out, in] of the linear whose tensors `find` resolves (name suffixes
// "qweight", "qzeros", "scales", "g_idx"), validated against each other; throws naming the
// tensor that does not fit.
struct Packed {
    safetensors::Checkpoint::Entry qweight, qzeros, scales;
    std::optional<safetensors::Checkpoint::Entry> g_idx;
};
std::vector<float> dequantize(const Method& method, const Packed& packed, const std::string& name,
                              std::vector<int64_t>& shape);

}  // namespace tfx::quantized_checkpoint
