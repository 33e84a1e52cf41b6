// matvec and widen on every dispatch target the CPU runs (not only the best), each shape
// against a double-precision sum over the same upcast weights.
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "matvec.h"
#include "tfx/sdk/half.hpp"

namespace {

using tfx::cpu::WeightFormat;

struct Weights {
    std::vector<float> f32;      // the values, as the reference sees them
    std::vector<uint16_t> half;  // stored form for bf16/f16
    const void* data(WeightFormat format) const {
        return format == WeightFormat::f32 ? static_cast<const void*>(f32.data()) : half.data();
    }
};

Weights random_weights(WeightFormat format, size_t count, std::mt19937& rng) {
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

const char* name_of(WeightFormat format) {
    return format == WeightFormat::f32 ? "f32" : format == WeightFormat::bf16 ? "bf16" : "f16";
}

// Runs `body` once per target, restoring the best target afterwards.
template <class Body>
void on_every_target(Body body) {
    const auto targets = tfx::cpu::isa_targets();
    ASSERT_FALSE(targets.empty());
    for (const std::string& target : targets) {
        tfx::cpu::use_isa(target);
        ASSERT_EQ(tfx::cpu::isa_in_use(), target);
        SCOPED_TRACE("target " + target);
        body();
    }
    tfx::cpu::use_isa("");
}

TEST(Matvec, EqualsTheReferenceOnEveryTargetFormatAndShape) {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    struct Shape {
        int64_t m, n, k;
    };
    // Tails in every dimension: rows of x past a tile of 4, output rows past a block of 4,
    // columns past a vector (and past a bf16 pair step); the last four run on several threads,
    // the last three over several L2 tiles of weight rows (more than 4 rows of x).
    const Shape shapes[] = {{1, 1, 1},   {1, 3, 7},    {2, 5, 16},    {3, 4, 31},     {4, 17, 32},   {5, 9, 33},
                            {7, 6, 100}, {1, 64, 576}, {1, 256, 576}, {6, 130, 1000}, {9, 301, 576}, {16, 70, 2048}};
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
                    tfx::cpu::matvec(x.data(), w.data(format), format, b, y.data(), s.m, s.n, s.k);
                    for (int64_t i = 0; i < s.m; ++i) {
                        for (int64_t j = 0; j < s.n; ++j) {
                            double sum = b != nullptr ? b[j] : 0.0, magnitude = std::abs(sum);
                            for (int64_t c = 0; c < s.k; ++c) {
                                const double term = double(x[i * s.k + c]) * w.f32[j * s.k + c];
                                sum += term;
                                magnitude += std::abs(term);
                            }
                            // f32 accumulation in any order: within a few ulps of the magnitude.
                            ASSERT_NEAR(y[i * s.n + j], sum, 1e-6 * magnitude + 1e-7) << "row " << i << ", col " << j;
                        }
                    }
                }
            }
        }
    });
}

TEST(Widen, IsExactOnEveryTarget) {
    std::mt19937 rng(3);
    on_every_target([&] {
        for (WeightFormat format : {WeightFormat::bf16, WeightFormat::f16}) {
            for (int64_t n : {1, 15, 16, 17, 4096, 70001}) {
                const Weights w = random_weights(format, static_cast<size_t>(n), rng);
                std::vector<float> out(static_cast<size_t>(n), NAN);
                tfx::cpu::widen(w.half.data(), format, out.data(), n);
                ASSERT_EQ(out, w.f32) << name_of(format) << " n=" << n;
            }
        }
    });
}

TEST(Isa, AnUnknownTargetIsRefusedNamingTheChoices) {
    try {
        tfx::cpu::use_isa("avx9000");
        FAIL() << "expected an error";
    } catch (const std::invalid_argument& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("'avx9000' is not a target this CPU runs"), std::string::npos) << message;
        EXPECT_NE(message.find(tfx::cpu::isa_targets().front()), std::string::npos) << message;
    }
    tfx::cpu::use_isa("");
    EXPECT_EQ(tfx::cpu::isa_in_use(), tfx::cpu::isa_targets().front());
    tfx::cpu::use_isa("portable");
    EXPECT_EQ(tfx::cpu::isa_in_use(), tfx::cpu::isa_targets().back());
    tfx::cpu::use_isa("");
}

}  // namespace
