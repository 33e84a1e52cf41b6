// gemm_many_bf16 (matmul_precision medium: AVX-512 BF16 dot products) against a double sum
// over x rounded to bf16 and the bf16 weights: each product of two bf16 values is exact in f32,
// so only the f32 sums' order separates the two.
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "float_kernel_testing.h"
#include "gemm_bf16.h"

namespace {

using tfx::cpu::WeightFormat;
using namespace tfx::cpu::testing;

// Even k only (the pairs of a dot product). Tails as in test_gemm.cpp: rows short of a vector
// and of a tile, features short of a tile, pairs short of a packing step of 16, several blocks
// of rows and of columns (4098 splits into blocks of 2050 and 2048 pairs' columns).
constexpr Shape kShapes[] = {{17, 1, 2},     {20, 7, 4},     {33, 13, 6},     {64, 6, 32},
                             {65, 64, 100},  {129, 24, 576}, {300, 19, 64},   {40, 9, 2100},
                             {32, 192, 576}, {257, 70, 34},  {18, 130, 1000}, {128, 96, 4098}};

std::vector<float> rounded_to_bf16(std::vector<float> x) {
    for (float& v : x) v = tfx::sdk::bf16_to_f32(tfx::sdk::f32_to_bf16(v));
    return x;
}

TEST(GemmBf16, EqualsTheReferenceOnRoundedInputsForEveryShape) {
    if (!tfx::cpu::bf16_dot_products_available()) GTEST_SKIP() << "this CPU has no AVX-512 BF16 dot products";
    std::mt19937 rng(17);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (const Shape& s : kShapes) {
        SCOPED_TRACE("m " + std::to_string(s.m) + " n " + std::to_string(s.n) + " k " + std::to_string(s.k));
        std::vector<float> x(static_cast<size_t>(s.m * s.k)), bias(static_cast<size_t>(s.n));
        for (float& v : x) v = normal(rng);
        for (float& v : bias) v = normal(rng);
        const Weights w = random_weights(WeightFormat::bf16, static_cast<size_t>(s.n * s.k), rng);
        std::vector<float> y(static_cast<size_t>(s.m * s.n), NAN);
        const tfx::cpu::MatvecWeight one{w.data(WeightFormat::bf16), WeightFormat::bf16, bias.data(), y.data(), s.n};
        tfx::cpu::gemm_many_bf16(x.data(), &one, 1, s.m, s.k);
        ASSERT_NO_FATAL_FAILURE(expect_product(y, rounded_to_bf16(x), w, bias.data(), s.m, s.n, s.k));
    }
}

// q, k and v over one packed x; and x really is rounded (the unrounded product differs).
TEST(GemmBf16, ManyWeightsShareOnePackedInputRoundedToBf16) {
    if (!tfx::cpu::bf16_dot_products_available()) GTEST_SKIP() << "this CPU has no AVX-512 BF16 dot products";
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t m = 150, k = 96;
    const int64_t widths[] = {96, 7, 32};
    std::vector<float> x(static_cast<size_t>(m * k));
    for (float& v : x) v = normal(rng);
    std::vector<Weights> ws;
    std::vector<std::vector<float>> ys;
    std::vector<tfx::cpu::MatvecWeight> many;
    for (int64_t n : widths) {
        ws.push_back(random_weights(WeightFormat::bf16, static_cast<size_t>(n * k), rng));
        ys.emplace_back(static_cast<size_t>(m * n), NAN);
    }
    for (size_t i = 0; i < ws.size(); ++i)
        many.push_back({ws[i].data(WeightFormat::bf16), WeightFormat::bf16, nullptr, ys[i].data(), widths[i]});
    tfx::cpu::gemm_many_bf16(x.data(), many.data(), 3, m, k);
    const std::vector<float> rounded = rounded_to_bf16(x);
    for (size_t i = 0; i < ws.size(); ++i) {
        SCOPED_TRACE("weight " + std::to_string(i));
        ASSERT_NO_FATAL_FAILURE(expect_product(ys[i], rounded, ws[i], nullptr, m, widths[i], k));
    }
    double largest = 0.0;
    for (int64_t j = 0; j < widths[0]; ++j) {
        double exact = 0.0;
        for (int64_t c = 0; c < k; ++c) exact += double(x[c]) * ws[0].f32[j * k + c];
        largest = std::max(largest, std::abs(exact - ys[0][j]));
    }
    EXPECT_GT(largest, 1e-3) << "x was not rounded to bf16";
}

TEST(GemmBf16, RefusesAnOddNumberOfColumns) {
    if (!tfx::cpu::bf16_dot_products_available()) GTEST_SKIP() << "this CPU has no AVX-512 BF16 dot products";
    std::vector<float> x(9), y(3);
    std::vector<uint16_t> w(9);
    const tfx::cpu::MatvecWeight one{w.data(), WeightFormat::bf16, nullptr, y.data(), 3};
    EXPECT_THROW(tfx::cpu::gemm_many_bf16(x.data(), &one, 1, 1, 3), std::invalid_argument);
}

// Below AVX-512 in the dispatch cap the dot products are never offered, even on a CPU that has
// them (TFX_CPU_ISA=avx2 must behave as an AVX2 machine).
TEST(GemmBf16, IsNotOfferedBelowAvx512) {
    for (const std::string& target : tfx::cpu::isa_targets()) {
        tfx::cpu::use_isa(target);
        if (target.rfind("avx3", 0) != 0) {
            EXPECT_FALSE(tfx::cpu::bf16_dot_products_available()) << target;
        }
    }
    tfx::cpu::use_isa("");
}

}  // namespace
