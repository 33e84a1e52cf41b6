// GPTQ / AWQ linears run on the cpu backend's block kernels: their integers regrouped into the
// ggml block format that holds them (quantized_checkpoint::as_blocks), or re-encoded to q8_0
// where none does.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../unit/test_data.h"
#include "blockwise_plugin.h"
#include "core/gptq_awq.h"
#include "core/model_session.h"
#include "registry/auto_model.h"
#include "tfx/sdk/half.hpp"

namespace {

using tfx::quantized_checkpoint::Method;
using tfx::quantized_checkpoint::Unpacked;

// A linear of 3 outputs x 128 inputs in groups of `group_size`, with random integers and
// scales, and the zero point `zero` (-1: a random one per group and output).
struct Linear {
    Unpacked unpacked;
    std::vector<uint16_t> scales;
};

Linear random_linear(int bits, int64_t group_size, int32_t zero, uint32_t seed) {
    std::mt19937 random(seed);
    const int32_t levels = 1 << bits;
    Linear l;
    Unpacked& u = l.unpacked;
    u.out = 3;
    u.in = 128;
    u.groups = u.in / group_size;
    for (int64_t i = 0; i < u.in; ++i) u.group_of.push_back(static_cast<int32_t>(i / group_size));
    std::uniform_int_distribution<int32_t> level(0, levels - 1);
    for (int64_t i = 0; i < u.out * u.in; ++i) u.q.push_back(static_cast<uint8_t>(level(random)));
    for (int64_t i = 0; i < u.groups * u.out; ++i) u.zeros.push_back(zero >= 0 ? zero : level(random));
    std::uniform_real_distribution<float> scale(0.001f, 0.05f);
    for (int64_t i = 0; i < u.groups * u.out; ++i) l.scales.push_back(tfx::sdk::f32_to_f16(scale(random)));
    u.scales = l.scales.data();
    return l;
}

// Decoded by the blockwise quantizer, the blocks hold the integers' values: exactly for the
// symmetric formats, within f16 rounding of -scale x zero for q4_1's minimum.
TEST(GptqBlocks, BlocksHoldTheCheckpointsValues) {
    struct Case {
        int bits;
        int64_t group_size;
        int32_t zero;
        const char* format;
        float tolerance;  // relative to the largest |value|
    };
    for (const Case& c : {Case{4, 32, 8, "q4_0", 0.0f}, Case{4, 128, 8, "q4_0", 0.0f}, Case{4, 64, -1, "q4_1", 1e-3f},
                          Case{8, 32, 128, "q8_0", 0.0f}}) {
        const Method method{Method::Kind::gptq, c.bits, c.group_size, true};
        const Linear l =
            random_linear(c.bits, c.group_size, c.zero, static_cast<uint32_t>(c.bits * 1000 + c.group_size));
        const auto blocks = tfx::quantized_checkpoint::as_blocks(method, l.unpacked);
        ASSERT_TRUE(blocks.has_value()) << c.format;
        EXPECT_EQ(blocks->format, c.format);
        const std::vector<float> want = tfx::quantized_checkpoint::dequantize(l.unpacked);
        const std::vector<float> got =
            tfx::test::dequantize(c.format, blocks->bytes.data(), l.unpacked.out, l.unpacked.in);
        float largest = 0.0f, off = 0.0f;
        for (size_t i = 0; i < want.size(); ++i) {
            largest = std::max(largest, std::fabs(want[i]));
            off = std::max(off, std::fabs(got[i] - want[i]));
        }
        EXPECT_LE(off, c.tolerance * largest) << c.format << " group " << c.group_size;
    }
}

// Integers no block format holds exactly are left to the re-encoding path.
TEST(GptqBlocks, OnlyExactFormatsAreUsed) {
    const Method gptq4{Method::Kind::gptq, 4, 32, true};
    Linear act_order = random_linear(4, 32, 8, 1);
    act_order.unpacked.group_of[3] = 1;  // input 3 in the second group: groups change inside a block
    EXPECT_FALSE(tfx::quantized_checkpoint::as_blocks(gptq4, act_order.unpacked).has_value());
    const Method gptq8{Method::Kind::gptq, 8, 32, true};
    EXPECT_FALSE(tfx::quantized_checkpoint::as_blocks(gptq8, random_linear(8, 32, -1, 2).unpacked).has_value());
    const Method gptq3{Method::Kind::gptq, 3, 32, true};
    EXPECT_FALSE(tfx::quantized_checkpoint::as_blocks(gptq3, random_linear(3, 32, 4, 3).unpacked).has_value());
    const Method gptq16{Method::Kind::gptq, 4, 16, true};
    EXPECT_FALSE(tfx::quantized_checkpoint::as_blocks(gptq16, random_linear(4, 16, 8, 4).unpacked).has_value());
}

// The shared checkpoints: 4-bit g128 (asymmetric) and AWQ g64 packed from blocks; act-order
// g32 (groups permuted across blocks) and asymmetric 8-bit re-encoded to q8_0; asked for f32,
// every linear is decoded instead (the CLI checks hold each path to its tolerance).
TEST(GptqBlocks, SharedCheckpointsRunOnTheBlockKernels) {
    for (const auto& [variant, as_stored] :
         {std::pair{"gptq-4bit-g128", true}, std::pair{"awq-gemm-4bit-g64", true},
          std::pair{"gptq-4bit-g32-actorder", false}, std::pair{"gptq-8bit-g128", false}}) {
        TFX_TEST_DATA_OR_SKIP(model, "quant/models/tinystories-656k-" + std::string(variant));
        auto native = tfx::AutoModel::from_pretrained(model.string(), {});
        EXPECT_EQ(native->weights_packed_as_stored(), as_stored ? 14 : 0) << variant;
        EXPECT_EQ(native->weights_reencoded(), as_stored ? 0 : 14) << variant;
        tfx::LoadOptions as_f32;
        as_f32.weight_format = "f32";
        auto decoded = tfx::AutoModel::from_pretrained(model.string(), as_f32);
        EXPECT_EQ(decoded->weights_packed_as_stored(), 0) << variant;
        EXPECT_EQ(decoded->weights_reencoded(), 0) << variant;
    }
}

}  // namespace
