// The 2- and 3-bit K-quants (Q2_K, Q3_K; the Q2_K and Q3_K_S/M/L mixes of llama-quantize).
// No shared file holds them, so the tests make their blocks from the layouts' public
// description: value v of a 256-value super-block sits in half h = v / 128, bit pair
// s = (v % 128) / 32 and byte l = v % 32, and scale k = v / 16.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../unit/test_data.h"
#include "blockwise_plugin.h"
#include "core/gguf.h"
#include "gguf_edit.h"
#include "golden_logits.h"
#include "reencoded_check.h"
#include "tfx/sdk/half.hpp"

namespace {

constexpr int kSuper = 256;
constexpr int kQ2KBytes = 84, kQ3KBytes = 110;

struct Position {
    int qs_byte, shift, scale;  // qs[qs_byte] >> shift holds the value's low 2 bits
    int hmask_byte, hmask_bit;  // Q3_K: the value's third bit
};

Position position_of(int v) {
    const int half = v / 128, pair = (v % 128) / 32, l = v % 32;
    return {32 * half + l, 2 * pair, v / 16, l, 4 * half + pair};
}

float f16_at(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return tfx::sdk::f16_to_f32(h);
}

void put_f16(uint8_t* p, float v) {
    const uint16_t h = tfx::sdk::f32_to_f16(v);
    std::memcpy(p, &h, 2);
}

// Q3_K's 6-bit scale k: 4 low bits in a nibble of byte k % 8 (low for k < 8), 2 high bits at
// bit 2 (k / 4) of byte 8 + k % 4; the stored code is the scale + 32.
int q3_k_scale_code(const uint8_t* scales, int k) {
    const int low = (scales[k % 8] >> (k < 8 ? 0 : 4)) & 0x0F;
    return low | (((scales[8 + k % 4] >> (2 * (k / 4))) & 3) << 4);
}

void put_q3_k_scale_code(uint8_t* scales, int k, int code) {
    scales[k % 8] |= static_cast<uint8_t>((code & 0x0F) << (k < 8 ? 0 : 4));
    scales[8 + k % 4] |= static_cast<uint8_t>(((code >> 4) & 3) << (2 * (k / 4)));
}

// What value v of a Q2_K block (scales[16], qs[64], d, dmin) is: d * sc * q - dmin * m.
float q2_k_value(const uint8_t* block, int v) {
    const Position p = position_of(v);
    const uint8_t scale_min = block[p.scale];
    const int q = (block[16 + p.qs_byte] >> p.shift) & 3;
    return f16_at(block + 80) * static_cast<float>(scale_min & 0x0F) * static_cast<float>(q) -
           f16_at(block + 82) * static_cast<float>(scale_min >> 4);
}

// What value v of a Q3_K block (hmask[32], qs[64], scales[12], d) is: d * (code - 32) * q, with
// q = low 2 bits + 4 * third bit - 4 (-4..3).
float q3_k_value(const uint8_t* block, int v) {
    const Position p = position_of(v);
    const int low = (block[32 + p.qs_byte] >> p.shift) & 3;
    const int third = (block[p.hmask_byte] >> p.hmask_bit) & 1;
    const int scale = q3_k_scale_code(block + 96, p.scale) - 32;
    return f16_at(block + 108) * static_cast<float>(scale) * static_cast<float>(low + 4 * third - 4);
}

// Round-to-nearest encoders, enough to make test files from float weights (llama.cpp's
// quantizers search the scales; any valid choice decodes by the same rules).
void encode_q2_k(const float* x, uint8_t* block) {
    std::memset(block, 0, kQ2KBytes);
    float scale[16], min[16], max_scale = 0.0f, max_min = 0.0f;
    for (int k = 0; k < 16; ++k) {
        const float lo = std::min(0.0f, *std::min_element(x + 16 * k, x + 16 * k + 16));
        const float hi = *std::max_element(x + 16 * k, x + 16 * k + 16);
        scale[k] = (hi - lo) / 3.0f;
        min[k] = -lo;
        max_scale = std::max(max_scale, scale[k]);
        max_min = std::max(max_min, min[k]);
    }
    put_f16(block + 80, max_scale / 15.0f);
    put_f16(block + 82, max_min / 15.0f);
    const float d = f16_at(block + 80), dmin = f16_at(block + 82);
    for (int k = 0; k < 16; ++k) {
        const int sc = d > 0.0f ? std::clamp(static_cast<int>(std::lround(scale[k] / d)), 0, 15) : 0;
        const int m = dmin > 0.0f ? std::clamp(static_cast<int>(std::lround(min[k] / dmin)), 0, 15) : 0;
        block[k] = static_cast<uint8_t>(sc | (m << 4));
    }
    for (int v = 0; v < kSuper; ++v) {
        const Position p = position_of(v);
        const float step = d * static_cast<float>(block[p.scale] & 0x0F);
        const float offset = dmin * static_cast<float>(block[p.scale] >> 4);
        const int q = step > 0.0f ? std::clamp(static_cast<int>(std::lround((x[v] + offset) / step)), 0, 3) : 0;
        block[16 + p.qs_byte] |= static_cast<uint8_t>(q << p.shift);
    }
}

void encode_q3_k(const float* x, uint8_t* block) {
    std::memset(block, 0, kQ3KBytes);
    float scale[16], max_scale = 0.0f;
    for (int k = 0; k < 16; ++k) {
        float amax = 0.0f;
        for (int i = 0; i < 16; ++i) amax = std::max(amax, std::fabs(x[16 * k + i]));
        scale[k] = amax / 4.0f;
        max_scale = std::max(max_scale, scale[k]);
    }
    put_f16(block + 108, max_scale / 31.0f);
    const float d = f16_at(block + 108);
    for (int k = 0; k < 16; ++k) {
        const int sc = d > 0.0f ? std::clamp(static_cast<int>(std::lround(scale[k] / d)), 0, 31) : 0;
        put_q3_k_scale_code(block + 96, k, sc + 32);
    }
    for (int v = 0; v < kSuper; ++v) {
        const Position p = position_of(v);
        const float step = d * static_cast<float>(q3_k_scale_code(block + 96, p.scale) - 32);
        const int q = step > 0.0f ? std::clamp(static_cast<int>(std::lround(x[v] / step)), -4, 3) : 0;
        block[32 + p.qs_byte] |= static_cast<uint8_t>(((q + 4) & 3) << p.shift);
        block[p.hmask_byte] |= static_cast<uint8_t>(((q + 4) >> 2) << p.hmask_bit);
    }
}

// Random bytes are valid blocks of both formats (every scale code, sign and bit pattern); d
// and dmin are set to finite halves so the values can be compared.
TEST(KQuants, Q2KAndQ3KBlocksDecodeAsTheirLayoutsSay) {
    std::mt19937 random(20261206);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> half_scale(-0.05f, 0.05f);
    const int64_t rows = 3, blocks_a_row = 2;
    for (const auto& [format, block_bytes] : {std::pair{"q2_k", kQ2KBytes}, std::pair{"q3_k", kQ3KBytes}}) {
        std::vector<uint8_t> bytes(static_cast<size_t>(rows * blocks_a_row * block_bytes));
        for (uint8_t& b : bytes) b = static_cast<uint8_t>(byte(random));
        for (int64_t b = 0; b < rows * blocks_a_row; ++b) {
            uint8_t* block = bytes.data() + b * block_bytes;
            if (block_bytes == kQ2KBytes) {
                put_f16(block + 80, half_scale(random));
                put_f16(block + 82, half_scale(random));
            } else {
                put_f16(block + 108, half_scale(random));
            }
        }
        const std::vector<float> got = tfx::test::dequantize(format, bytes.data(), rows, blocks_a_row * kSuper);
        ASSERT_EQ(got.size(), static_cast<size_t>(rows * blocks_a_row * kSuper));
        for (int64_t b = 0; b < rows * blocks_a_row; ++b) {
            const uint8_t* block = bytes.data() + b * block_bytes;
            for (int v = 0; v < kSuper; ++v) {
                const float want = block_bytes == kQ2KBytes ? q2_k_value(block, v) : q3_k_value(block, v);
                ASSERT_NEAR(got[static_cast<size_t>(b * kSuper + v)], want, 1e-6f * (1.0f + std::fabs(want)))
                    << format << " block " << b << " value " << v;
            }
        }
    }
}

// The random kq-llama-256 model's Q8_0 file with its 14 projections re-encoded Q3_K (layer 0)
// and Q2_K (layer 1) in place. By default the cpu backend runs them re-encoded to q8_0; asked
// for f32, they are decoded exactly (the values the test above pins). The two stay within the
// shared README's 0.5 for quantized activations. (Against the float model the blocks were made
// from, 2 and 3 bits move this random model's broad logits far more: cosine 0.1-0.8.)
TEST(GgufModel, Q2KAndQ3KFilesRun) {
    TFX_TEST_DATA_OR_SKIP(q8, "quant/gguf/kq-llama-256-q8_0.gguf");
    TFX_TEST_DATA_OR_SKIP(golden_path, "quant/golden/kq-llama-256.json");
    std::vector<char> bytes = tfx::test::file_bytes(q8);
    const tfx::gguf::File source(q8);
    int retyped = 0;
    for (const tfx::gguf::Tensor& t : source.header().tensors) {
        if (t.ne.size() != 2 || t.name.rfind("blk.", 0) != 0) continue;
        ASSERT_EQ(t.type, tfx::gguf::Type::Q8_0) << t.name;
        const bool q3 = t.name.rfind("blk.0.", 0) == 0;
        const std::vector<float> values = tfx::test::dequantize("q8_0", source.data(t), t.ne[1], t.ne[0]);
        ASSERT_EQ(t.ne[0] % kSuper, 0) << t.name;
        uint8_t* out = reinterpret_cast<uint8_t*>(bytes.data() + source.header().data_offset + t.offset);
        const int block_bytes = q3 ? kQ3KBytes : kQ2KBytes;
        for (size_t b = 0; b < values.size() / kSuper; ++b) {
            if (q3) {
                encode_q3_k(values.data() + b * kSuper, out + b * block_bytes);
            } else {
                encode_q2_k(values.data() + b * kSuper, out + b * block_bytes);
            }
        }
        tfx::test::retype_2d(bytes, t.name, q3 ? 11 : 10);  // ggml's Q3_K, Q2_K
        ++retyped;
    }
    ASSERT_EQ(retyped, 14);
    const auto path = std::filesystem::temp_directory_path() / "tfx-q2_k-q3_k.gguf";
    tfx::test::write_bytes(path, bytes);
    std::vector<std::vector<int32_t>> prompts;
    const nlohmann::json golden = tfx::test::read_json(golden_path);
    for (const auto& prompt : golden.at("prompts")) {
        prompts.push_back(prompt.at("input_ids").get<std::vector<int32_t>>());
    }
    EXPECT_GE(prompts.size(), 5u);
    tfx::test::expect_reencoded_near_exact(path, 14, prompts);
    std::filesystem::remove(path);
}

}  // namespace
