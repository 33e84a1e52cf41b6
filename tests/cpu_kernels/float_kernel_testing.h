// Helpers for the float kernels' tests (matvec, gemm): random weights in each stored format
// beside the f32 values the reference sees, and a loop over every dispatch target.
#pragma once

#include <cmath>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "matvec.h"
#include "tfx/sdk/half.hpp"

namespace tfx::cpu::testing {

struct Weights {
    std::vector<float> f32;      // the values, as the reference sees them
    std::vector<uint16_t> half;  // stored form for bf16/f16
    const void* data(WeightFormat format) const {
        return format == WeightFormat::f32 ? static_cast<const void*>(f32.data()) : half.data();
    }
};

inline Weights random_weights(WeightFormat format, size_t count, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    Weights w;
    for (size_t i = 0; i < count; ++i) {
        const float v = normal(rng);
        if (format == WeightFormat::f32) {
            w.f32.push_back(v);
        } else {
            const uint16_t h = format == WeightFormat::bf16 ? tfx::sdk::f32_to_bf16(v) : tfx::sdk::f32_to_f16(v);
            w.half.push_back(h);
            w.f32.push_back(format == WeightFormat::bf16 ? tfx::sdk::bf16_to_f32(h) : tfx::sdk::f16_to_f32(h));
        }
    }
    return w;
}

inline const char* name_of(WeightFormat format) {
    return format == WeightFormat::f32 ? "f32" : format == WeightFormat::bf16 ? "bf16" : "f16";
}

// Runs `body` once per target, restoring the best target afterwards.
template <class Body>
void on_every_target(Body body) {
    const auto targets = isa_targets();
    ASSERT_FALSE(targets.empty());
    for (const std::string& target : targets) {
        use_isa(target);
        ASSERT_EQ(isa_in_use(), target);
        SCOPED_TRACE("target " + target);
        body();
    }
    use_isa("");
}

// Checks y[m, n] against x[m, k] · w[n, k]ᵀ (+ bias) summed in double: f32 accumulation in any
// order lands within a few ulps of the sum of the terms' magnitudes.
inline void expect_product(const std::vector<float>& y, const std::vector<float>& x, const Weights& w,
                           const float* bias, int64_t m, int64_t n, int64_t k) {
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
            double sum = bias != nullptr ? bias[j] : 0.0, magnitude = std::abs(sum);
            for (int64_t c = 0; c < k; ++c) {
                const double term = double(x[i * k + c]) * w.f32[j * k + c];
                sum += term;
                magnitude += std::abs(term);
            }
            ASSERT_NEAR(y[i * n + j], sum, 1e-6 * magnitude + 1e-7) << "row " << i << ", col " << j;
        }
    }
}

struct Shape {
    int64_t m, n, k;
};

// `kernel` (matvec's signature: x, w, format, bias, y, m, n, k) on every dispatch target, weight
// format and shape, without and with a bias, each output against expect_product.
template <class Kernel>
void expect_kernel_matches_reference(std::span<const Shape> shapes, uint32_t seed, Kernel kernel) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    on_every_target([&] {
        for (WeightFormat format : {WeightFormat::f32, WeightFormat::bf16, WeightFormat::f16}) {
            for (const Shape& s : shapes) {
                SCOPED_TRACE(std::string(name_of(format)) + " m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) +
                             " k=" + std::to_string(s.k));
                const Weights w = random_weights(format, static_cast<size_t>(s.n * s.k), rng);
                std::vector<float> x(static_cast<size_t>(s.m * s.k)), bias(static_cast<size_t>(s.n));
                for (float& v : x) v = normal(rng);
                for (float& v : bias) v = normal(rng);
                for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
                    std::vector<float> y(static_cast<size_t>(s.m * s.n), NAN);
                    kernel(x.data(), w.data(format), format, b, y.data(), s.m, s.n, s.k);
                    ASSERT_NO_FATAL_FAILURE(expect_product(y, x, w, b, s.m, s.n, s.k));
                }
            }
        }
    });
}

}  // namespace tfx::cpu::testing
