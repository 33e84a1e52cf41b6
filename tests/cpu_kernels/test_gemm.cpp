// gemm and gemm_many on every dispatch target the CPU runs (not only the best), each shape
// against a double-precision sum over the same upcast weights.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "float_kernel_testing.h"
#include "gemm.h"

namespace {

using tfx::cpu::WeightFormat;
using namespace tfx::cpu::testing;

// Tails in every dimension: rows of x short of a vector and of a tile's vectors, output
// features short of a register tile, columns short of a 4x4 packing step; more rows of x
// than one packed block (128) and more columns than one block of k (2048); the larger shapes
// run on several threads.
constexpr Shape kShapes[] = {{17, 1, 1},    {17, 5, 3},      {20, 7, 4},     {33, 13, 5},   {64, 6, 31},
                             {65, 64, 100}, {129, 24, 576},  {300, 19, 64},  {40, 9, 2100}, {128, 192, 576},
                             {257, 70, 33}, {18, 130, 1000}, {128, 96, 4099}};

TEST(Gemm, EqualsTheReferenceOnEveryTargetFormatAndShape) {
    expect_kernel_matches_reference(kShapes, 11, tfx::cpu::gemm);
}

// q, k and v of different widths and formats over one x: each output is its own product.
TEST(Gemm, ManyWeightsShareOnePackedInput) {
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t m = 150, k = 96;
    const int64_t widths[] = {96, 7, 32};
    const WeightFormat formats[] = {WeightFormat::f32, WeightFormat::bf16, WeightFormat::f16};
    on_every_target([&] {
        std::vector<float> x(static_cast<size_t>(m * k));
        for (float& v : x) v = normal(rng);
        std::vector<Weights> ws;
        std::vector<std::vector<float>> biases, ys;
        std::vector<tfx::cpu::MatvecWeight> many;
        for (int i = 0; i < 3; ++i) {
            ws.push_back(random_weights(formats[i], static_cast<size_t>(widths[i] * k), rng));
            biases.emplace_back(static_cast<size_t>(widths[i]));
            for (float& v : biases.back()) v = normal(rng);
            ys.emplace_back(static_cast<size_t>(m * widths[i]), NAN);
        }
        for (int i = 0; i < 3; ++i) {
            many.push_back(
                {ws[i].data(formats[i]), formats[i], i == 1 ? nullptr : biases[i].data(), ys[i].data(), widths[i]});
        }
        tfx::cpu::gemm_many(x.data(), many.data(), 3, m, k);
        for (int i = 0; i < 3; ++i) {
            SCOPED_TRACE("weight " + std::to_string(i));
            ASSERT_NO_FATAL_FAILURE(
                expect_product(ys[i], x, ws[i], i == 1 ? nullptr : biases[i].data(), m, widths[i], k));
        }
    });
}

}  // namespace
