#include "core/gptq_awq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "tfx/sdk/error.hpp"
#include "tfx/sdk/half.hpp"

namespace tfx::quantized_checkpoint {
namespace {

[[noreturn]] void fail(const std::string& what) {
    throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, what);
}

// A 2-D tensor of the expected dtype, as a view of its elements.
template <class T>
const T* elements(const safetensors::Checkpoint::Entry& e, safetensors::DType dtype, const std::string& name,
                  int64_t rows, int64_t cols) {
    const auto& info = *e.info;
    if (info.dtype != dtype || info.shape.size() != 2 || info.shape[0] != rows || info.shape[1] != cols) {
        std::string shape;
        for (int64_t d : info.shape) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
        fail("tensor '" + name + "' is " + std::string(safetensors::dtype_name(info.dtype)) + " [" + shape +
             "], expected " + std::string(safetensors::dtype_name(dtype)) + " [" + std::to_string(rows) + ", " +
             std::to_string(cols) + "]");
    }
    return reinterpret_cast<const T*>(e.file->data(info));
}

float f16_at(const uint16_t* p, int64_t i) {
    uint16_t h;
    std::memcpy(&h, p + i, 2);
    return sdk::f16_to_f32(h);
}

int32_t i32_at(const int32_t* p, int64_t i) {
    int32_t v;
    std::memcpy(&v, p + i, 4);
    return v;
}

}  // namespace

std::optional<Method> method_of(const nlohmann::json& config, const std::string& source) {
    if (!config.is_object() || !config.contains("quantization_config")) return std::nullopt;
    const nlohmann::json& q = config.at("quantization_config");
    auto field = [&](const char* key) { return source + ": quantization_config." + key; };
    if (!q.is_object() || !q.contains("quant_method") || !q.at("quant_method").is_string()) {
        fail(field("quant_method") + " is missing or not a string");
    }
    const std::string kind = q.at("quant_method");
    Method m{};
    if (kind == "fp8") {
        m.kind = Method::Kind::fp8;
        m.bits = 8;
        m.group_size = -1;
        const std::string format = q.value("fmt", std::string("e4m3"));
        if (format != "e4m3") fail(field("fmt") + " is '" + format + "'; tfx reads e4m3 fp8 weights");
        const nlohmann::json block = q.value("weight_block_size", nlohmann::json());
        if (block.is_null()) return m;
        if (!block.is_array() || block.size() != 2 || !block[0].is_number_integer() || !block[1].is_number_integer() ||
            block[0].get<int64_t>() <= 0 || block[1].get<int64_t>() <= 0) {
            fail(field("weight_block_size") + " must be two positive integers, got " + block.dump());
        }
        m.block_rows = block[0].get<int64_t>();
        m.block_cols = block[1].get<int64_t>();
        return m;
    }
    const nlohmann::json bits = q.value("bits", q.value("w_bit", nlohmann::json()));
    const nlohmann::json group = q.value("group_size", q.value("q_group_size", nlohmann::json(-1)));
    if (!bits.is_number_integer()) fail(field("bits") + " is missing or not an integer");
    if (!group.is_number_integer() || (group.get<int64_t>() <= 0 && group.get<int64_t>() != -1)) {
        fail(field("group_size") + " must be a positive integer or -1, got " + group.dump());
    }
    m.bits = bits.get<int>();
    m.group_size = group.get<int64_t>();
    if (kind == "gptq") {
        m.kind = Method::Kind::gptq;
        if (m.bits != 2 && m.bits != 4 && m.bits != 8) {
            fail(field("bits") + " is " + std::to_string(m.bits) + "; tfx reads GPTQ at 2, 4 and 8 bits");
        }
        const std::string format = q.value("checkpoint_format", std::string("gptq"));
        if (format != "gptq" && format != "gptq_v2") {
            fail(field("checkpoint_format") + " is '" + format + "' (gptq or gptq_v2 expected)");
        }
        m.zeros_minus_one = format == "gptq";
    } else if (kind == "awq") {
        m.kind = Method::Kind::awq;
        const std::string version = q.value("version", std::string("gemm"));
        if (version != "gemm" && version != "GEMM") {
            fail(field("version") + " is '" + version + "'; tfx reads AWQ's gemm packing");
        }
        if (m.bits != 4) fail(field("bits") + " is " + std::to_string(m.bits) + "; AWQ gemm packs 4 bits");
        if (!q.value("zero_point", true)) fail(field("zero_point") + " is false; tfx reads AWQ with zero points");
        if (m.group_size == -1) fail(field("group_size") + " is -1; AWQ gemm needs groups");
        m.zeros_minus_one = false;
    } else {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, field("quant_method") + " is '" + kind +
                                                  "'; tfx reads gptq, awq and fp8 checkpoints (bitsandbytes and "
                                                  "others are not supported yet)");
    }
    return m;
}

Unpacked unpack(const Method& m, const Packed& p, const std::string& name) {
    const int per_word = 32 / m.bits;
    const uint32_t mask = (1u << m.bits) - 1;
    const auto& qshape = p.qweight.info->shape;
    const auto& sshape = p.scales.info->shape;
    if (qshape.size() != 2 || sshape.size() != 2) fail("tensor '" + name + ".qweight' or '.scales' is not 2-D");
    Unpacked u;
    if (m.kind == Method::Kind::gptq) {
        u.in = qshape[0] * per_word;
        u.out = qshape[1];
    } else {
        u.in = qshape[0];
        u.out = qshape[1] * per_word;
    }
    const int64_t in = u.in, out = u.out;
    u.groups = sshape[0];
    if (u.groups <= 0 || (m.group_size > 0 && u.groups != (in + m.group_size - 1) / m.group_size) ||
        (m.group_size == -1 && u.groups != 1)) {
        fail("tensor '" + name + ".scales' has " + std::to_string(u.groups) + " groups, which does not fit " +
             std::to_string(in) + " inputs in groups of " + std::to_string(m.group_size));
    }
    using safetensors::DType;
    const auto* qweight = elements<int32_t>(p.qweight, DType::I32, name + ".qweight", qshape[0], qshape[1]);
    u.scales = elements<uint16_t>(p.scales, DType::F16, name + ".scales", u.groups, out);
    const auto* qzeros = elements<int32_t>(p.qzeros, DType::I32, name + ".qzeros", u.groups, out / per_word);
    if (out % per_word != 0) fail("tensor '" + name + "': " + std::to_string(out) + " outputs do not pack");
    u.group_of.resize(static_cast<size_t>(in));
    for (int64_t i = 0; i < in; ++i) u.group_of[i] = static_cast<int32_t>(m.group_size > 0 ? i / m.group_size : 0);
    if (p.g_idx) {
        const auto& gshape = p.g_idx->info->shape;
        if (p.g_idx->info->dtype != DType::I32 || gshape.size() != 1 || gshape[0] != in) {
            fail("tensor '" + name + ".g_idx' must be I32 [" + std::to_string(in) + "]");
        }
        const auto* g = reinterpret_cast<const int32_t*>(p.g_idx->file->data(*p.g_idx->info));
        for (int64_t i = 0; i < in; ++i) {
            const int32_t v = i32_at(g, i);
            if (v < 0 || v >= u.groups) {
                fail("tensor '" + name + ".g_idx' sends input " + std::to_string(i) + " to group " + std::to_string(v) +
                     " of " + std::to_string(u.groups));
            }
            u.group_of[i] = v;
        }
    }
    // AWQ packs eight outputs a word in this order of nibbles.
    constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    auto packed_along_out = [&](const int32_t* words, int64_t row, int64_t o) {
        const int64_t word = o / per_word, slot = o % per_word;
        int shift = static_cast<int>(slot) * m.bits;
        if (m.kind == Method::Kind::awq) {
            for (int j = 0; j < 8; ++j) {
                if (kAwqOrder[j] == slot) shift = 4 * j;
            }
        }
        return static_cast<int32_t>((static_cast<uint32_t>(i32_at(words, row * (out / per_word) + word)) >> shift) &
                                    mask);
    };
    u.zeros.resize(static_cast<size_t>(u.groups * out));
    for (int64_t g = 0; g < u.groups; ++g) {
        for (int64_t o = 0; o < out; ++o) {
            u.zeros[static_cast<size_t>(g * out + o)] = packed_along_out(qzeros, g, o) + (m.zeros_minus_one ? 1 : 0);
        }
    }
    u.q.resize(static_cast<size_t>(out * in));
    for (int64_t i = 0; i < in; ++i) {
        for (int64_t o = 0; o < out; ++o) {
            int32_t q;
            if (m.kind == Method::Kind::gptq) {
                const auto word = static_cast<uint32_t>(i32_at(qweight, (i / per_word) * out + o));
                q = static_cast<int32_t>((word >> ((i % per_word) * m.bits)) & mask);
            } else {
                q = packed_along_out(qweight, i, o);
            }
            u.q[static_cast<size_t>(o * in + i)] = static_cast<uint8_t>(q);
        }
    }
    return u;
}

std::vector<float> dequantize(const Unpacked& u) {
    std::vector<float> w(static_cast<size_t>(u.out * u.in));
    for (int64_t o = 0; o < u.out; ++o) {
        for (int64_t i = 0; i < u.in; ++i) {
            const int64_t g = u.group_of[i];
            w[static_cast<size_t>(o * u.in + i)] =
                f16_at(u.scales, g * u.out + o) * static_cast<float>(u.q[static_cast<size_t>(o * u.in + i)] -
                                                                     u.zeros[static_cast<size_t>(g * u.out + o)]);
        }
    }
    return w;
}

std::optional<Blocks> as_blocks(const Method& m, const Unpacked& u) {
    constexpr int64_t kBlock = 32;
    if (m.bits != 4 && m.bits != 8) return std::nullopt;
    if (u.in % kBlock != 0) return std::nullopt;
    for (int64_t i = 0; i < u.in; ++i) {
        if (u.group_of[i] != u.group_of[i / kBlock * kBlock]) return std::nullopt;  // act-order across a block
    }
    // Zero points at the middle of the range (GPTQ's sym=True) make the symmetric formats, which
    // hold the values exactly; 4-bit zeros elsewhere make q4_1 (its minimum an f16 of -scale x
    // zero: within 2^-11 of it); 8-bit ones have no exact block format.
    const int32_t middle = 1 << (m.bits - 1);
    const bool symmetric = std::all_of(u.zeros.begin(), u.zeros.end(), [&](int32_t z) { return z == middle; });
    if (m.bits == 8 && !symmetric) return std::nullopt;
    Blocks b;
    b.format = m.bits == 8 ? "q8_0" : symmetric ? "q4_0" : "q4_1";
    const int64_t block_bytes = m.bits == 8 ? 2 + kBlock : symmetric ? 2 + kBlock / 2 : 4 + kBlock / 2;
    b.row_bytes = static_cast<uint64_t>(u.in / kBlock * block_bytes);
    b.bytes.resize(b.row_bytes * static_cast<uint64_t>(u.out));
    for (int64_t o = 0; o < u.out; ++o) {
        for (int64_t block = 0; block < u.in / kBlock; ++block) {
            uint8_t* at = b.bytes.data() + o * static_cast<int64_t>(b.row_bytes) + block * block_bytes;
            const int64_t g = u.group_of[block * kBlock];
            const uint16_t scale = u.scales[g * u.out + o];
            std::memcpy(at, &scale, 2);
            const uint8_t* q = u.q.data() + o * u.in + block * kBlock;
            if (m.bits == 8) {
                for (int64_t i = 0; i < kBlock; ++i) at[2 + i] = static_cast<uint8_t>(q[i] - middle);
                continue;
            }
            uint8_t* qs = at + 2;
            if (!symmetric) {
                const float zero = static_cast<float>(u.zeros[static_cast<size_t>(g * u.out + o)]);
                const uint16_t min = sdk::f32_to_f16(-f16_at(u.scales, g * u.out + o) * zero);
                std::memcpy(at + 2, &min, 2);
                qs = at + 4;
            }
            // Value i in the low nibble of byte i, value i + 16 in its high nibble.
            for (int64_t i = 0; i < kBlock / 2; ++i) qs[i] = static_cast<uint8_t>(q[i] | (q[i + kBlock / 2] << 4));
        }
    }
    return b;
}

float e4m3_to_f32(uint8_t bits) {
    const int exponent = (bits >> 3) & 0x0F, mantissa = bits & 0x07;
    if (exponent == 0x0F && mantissa == 0x07) return std::numeric_limits<float>::quiet_NaN();
    const float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -9)  // subnormal: m / 8 * 2^-6
                                          : std::ldexp(static_cast<float>(8 + mantissa), exponent - 10);
    return (bits & 0x80) != 0 ? -magnitude : magnitude;
}

std::vector<float> dequantize_fp8(const Method& m, const safetensors::Checkpoint::Entry& weight,
                                  const safetensors::Checkpoint::Entry& scale_inv, const std::string& name) {
    using safetensors::DType;
    const auto& shape = weight.info->shape;
    if (weight.info->dtype != DType::F8_E4M3 || shape.size() != 2) {
        fail("tensor '" + name + "' must be F8_E4M3 [out, in] in an fp8 checkpoint");
    }
    const int64_t out = shape[0], in = shape[1];
    const int64_t block_rows = m.block_rows > 0 ? m.block_rows : std::max<int64_t>(out, 1);
    const int64_t block_cols = m.block_cols > 0 ? m.block_cols : std::max<int64_t>(in, 1);
    const int64_t scale_rows = (out + block_rows - 1) / block_rows, scale_cols = (in + block_cols - 1) / block_cols;
    const auto& sinfo = *scale_inv.info;
    int64_t scales = 1;
    for (int64_t d : sinfo.shape) scales *= d;
    const bool per_tensor = m.block_rows == 0 && scales == 1;
    if ((sinfo.dtype != DType::F32 && sinfo.dtype != DType::BF16) ||
        (!per_tensor && (sinfo.shape.size() != 2 || sinfo.shape[0] != scale_rows || sinfo.shape[1] != scale_cols))) {
        fail("tensor '" + sinfo.name + "' must be F32 or BF16 [" + std::to_string(scale_rows) + ", " +
             std::to_string(scale_cols) + "]: one scale per " + std::to_string(block_rows) + " x " +
             std::to_string(block_cols) + " block of '" + name + "'");
    }
    const std::vector<float> scale =
        safetensors::widened(scale_inv.file->data(sinfo), sinfo.dtype, static_cast<size_t>(scales), sinfo.name.c_str());
    const uint8_t* values = weight.file->data(*weight.info);
    std::vector<float> w(static_cast<size_t>(out * in));
    for (int64_t o = 0; o < out; ++o) {
        for (int64_t i = 0; i < in; ++i) {
            const float s =
                per_tensor ? scale[0] : scale[static_cast<size_t>(o / block_rows * scale_cols + i / block_cols)];
            w[static_cast<size_t>(o * in + i)] = e4m3_to_f32(values[o * in + i]) * s;
        }
    }
    return w;
}

}  // namespace tfx::quantized_checkpoint
