// Pre-quantized Hugging Face checkpoints (config.json's quantization_config): GPTQ (AutoGPTQ /
// optimum, 2-8 bits, any group size, act-order through g_idx), AWQ GEMM (4 bits) and fp8
// (e4m3 weights with block scales). A GPTQ / AWQ linear
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
    enum class Kind { gptq, awq, fp8 } kind;
    int bits;
    int64_t group_size;    // -1: one group over all inputs
    bool zeros_minus_one;  // GPTQ's v1 checkpoints store zero - 1
    // fp8 (transformers' FineGrainedFP8, DeepSeek / Qwen FP8 releases): X.weight is F8_E4M3
    // [out, in], X.weight_scale_inv [ceil(out / rows), ceil(in / cols)] its blocks' scales;
    // 0 x 0: one scale for the whole tensor.
    int64_t block_rows = 0, block_cols = 0;
};

// The method config.json's quantization_config names; nullopt without one. Throws sdk::Error
// naming the field for an unsupported method or setting.
std::optional<Method> method_of(const nlohmann::json& config, const std::string& source);

// The tensors of one linear (`find` resolves the name suffixes "qweight", "qzeros", "scales",
// "g_idx").
struct Packed {
    safetensors::Checkpoint::Entry qweight, qzeros, scales;
    std::optional<safetensors::Checkpoint::Entry> g_idx;
};

// A linear's integers unpacked and validated against each other (throws naming the tensor that
// does not fit): value [o, i] = scale[g, o] * (q[o, i] - zero[g, o]) with g = group_of[i].
struct Unpacked {
    int64_t out = 0, in = 0, groups = 0;
    std::vector<uint8_t> q;            // [out, in]
    std::vector<int32_t> group_of;     // [in]
    const uint16_t* scales = nullptr;  // [groups, out] f16, in the mapped checkpoint
    std::vector<int32_t> zeros;        // [groups, out], GPTQ v1's -1 undone
};
Unpacked unpack(const Method& method, const Packed& packed, const std::string& name);

// The f32 weight [out, in] that transformers' twin holds: f32(f16 scale) * f32(q - zero).
std::vector<float> dequantize(const Unpacked& unpacked);

// The same integers as ggml blocks of 32 inputs (the layouts of blockwise_quantizer.cpp), which
// backends compute on natively: 4-bit as q4_0 (zeros all 8) or q4_1, 8-bit with zeros all 128
// as q8_0. nullopt where no such format holds them: other bit widths, asymmetric 8-bit, act-order
// groups that change inside a block of 32 inputs.
struct Blocks {
    std::string format;
    std::vector<uint8_t> bytes;  // [out rows of row_bytes]
    uint64_t row_bytes = 0;
};
std::optional<Blocks> as_blocks(const Method& method, const Unpacked& unpacked);

// An fp8 linear's f32 weight [out, in]: e4m3 value x its block's scale (exact in f32). Throws
// naming the tensor whose dtype or shape does not fit.
std::vector<float> dequantize_fp8(const Method& method, const safetensors::Checkpoint::Entry& weight,
                                  const safetensors::Checkpoint::Entry& scale_inv, const std::string& name);
// The f32 value of an e4m3fn byte (no infinities; S.1111.111 is NaN).
float e4m3_to_f32(uint8_t bits);

}  // namespace tfx::quantized_checkpoint
