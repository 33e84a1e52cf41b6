#include "core/gptq_writer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tfx/sdk/error.hpp"
#include "tfx/sdk/half.hpp"

namespace tfx::gptq_writer {
namespace {

// The group's scale d (f16, as stored) and 1 / d as the quantizer uses it (from d before
// rounding, as llama.cpp's quantizers do).
struct Scale {
    uint16_t stored;
    float inverse;
};

Scale scale_of(std::span<const float> group, int bits) {
    float d;
    if (bits == 4) {
        float extreme = 0.0f;  // with its sign
        for (float v : group) {
            if (std::fabs(v) > std::fabs(extreme)) extreme = v;
        }
        d = extreme / -8.0f;
    } else {
        float amax = 0.0f;
        for (float v : group) amax = std::max(amax, std::fabs(v));
        d = amax / 127.0f;
    }
    return {sdk::f32_to_f16(d), d != 0.0f ? 1.0f / d : 0.0f};
}

// 4 bits: + 8 + 0.5 then truncation, round to nearest on the shifted, non-negative value
// (as q4_0); 8 bits: round(), then + 128.
uint32_t level_of(float v, float inverse, int bits) {
    if (bits == 4) return static_cast<uint32_t>(std::min(15, static_cast<int>(v * inverse + 8.0f + 0.5f)));
    return static_cast<uint32_t>(static_cast<int>(std::round(v * inverse)) + 128);
}

template <class T>
std::vector<uint8_t> bytes_of(const std::vector<T>& values) {
    std::vector<uint8_t> out(values.size() * sizeof(T));
    std::memcpy(out.data(), values.data(), out.size());
    return out;
}

}  // namespace

std::string unfit_reason(int64_t out, int64_t in, int bits, int64_t group_size) {
    const int64_t per_word = 32 / bits;
    if (group_size <= 0 || in % group_size != 0) {
        return std::to_string(in) + " inputs do not split into groups of " + std::to_string(group_size);
    }
    if (in % per_word != 0 || out % per_word != 0) {
        return "[" + std::to_string(out) + ", " + std::to_string(in) + "] does not pack " + std::to_string(per_word) +
               " values an int32";
    }
    return {};
}

std::vector<Tensor> quantize_linear(std::span<const float> weight, int64_t out, int64_t in, int bits,
                                    int64_t group_size) {
    if (bits != 4 && bits != 8) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "GPTQ writer: bits must be 4 or 8");
    if (const std::string why = unfit_reason(out, in, bits, group_size); !why.empty()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "GPTQ writer: " + why);
    }
    if (static_cast<int64_t>(weight.size()) != out * in) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "GPTQ writer: weight holds " + std::to_string(weight.size()) +
                                                       " values, not " + std::to_string(out * in));
    }
    const int64_t per_word = 32 / bits, groups = in / group_size;
    const uint32_t stored_zero = (1u << (bits - 1)) - 1;  // v1 stores zero - 1
    std::vector<uint32_t> qweight(static_cast<size_t>(in / per_word * out), 0);
    std::vector<uint32_t> qzeros(static_cast<size_t>(groups * out / per_word), 0);
    std::vector<uint16_t> scales(static_cast<size_t>(groups * out));
    std::vector<int32_t> g_idx(static_cast<size_t>(in));
    for (int64_t i = 0; i < in; ++i) g_idx[i] = static_cast<int32_t>(i / group_size);
    for (int64_t o = 0; o < out; ++o) {
        for (int64_t g = 0; g < groups; ++g) {
            const auto group =
                weight.subspan(static_cast<size_t>(o * in + g * group_size), static_cast<size_t>(group_size));
            const Scale scale = scale_of(group, bits);
            scales[static_cast<size_t>(g * out + o)] = scale.stored;
            qzeros[static_cast<size_t>(g * (out / per_word) + o / per_word)] |= stored_zero << ((o % per_word) * bits);
            for (int64_t j = 0; j < group_size; ++j) {
                const int64_t i = g * group_size + j;
                qweight[static_cast<size_t>((i / per_word) * out + o)] |= level_of(group[j], scale.inverse, bits)
                                                                          << ((i % per_word) * bits);
            }
        }
    }
    using safetensors::DType;
    return {{"qweight", DType::I32, {in / per_word, out}, bytes_of(qweight)},
            {"qzeros", DType::I32, {groups, out / per_word}, bytes_of(qzeros)},
            {"scales", DType::F16, {groups, out}, bytes_of(scales)},
            {"g_idx", DType::I32, {in}, bytes_of(g_idx)}};
}

nlohmann::json quantization_config(int bits, int64_t group_size) {
    return {{"quant_method", "gptq"},
            {"bits", bits},
            {"group_size", group_size},
            {"desc_act", false},
            {"sym", true},
            {"true_sequential", true},
            {"damp_percent", 0.01},
            {"static_groups", false},
            {"checkpoint_format", "gptq"},
            {"tokenizer", nullptr},
            {"dataset", nullptr}};
}

}  // namespace tfx::gptq_writer
