// matvec and widen on every dispatch target the CPU runs (not only the best), each shape
// against a double-precision sum over the same upcast weights.
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "float_kernel_testing.h"
#include "matvec.h"
#include "tfx/sdk/half.hpp"

namespace {

using tfx::cpu::WeightFormat;
using namespace tfx::cpu::testing;

TEST(Matvec, EqualsTheReferenceOnEveryTargetFormatAndShape) {
    // Tails in every dimension: rows of x past a tile of 4, output rows past a block of 4,
    // columns past a vector (and past a bf16 pair step); the last four run on several threads,
    // the last three over several L2 tiles of weight rows (more than 4 rows of x).
    const Shape shapes[] = {{1, 1, 1},   {1, 3, 7},    {2, 5, 16},    {3, 4, 31},     {4, 17, 32},   {5, 9, 33},
                            {7, 6, 100}, {1, 64, 576}, {1, 256, 576}, {6, 130, 1000}, {9, 301, 576}, {16, 70, 2048}};
    expect_kernel_matches_reference(shapes, 7, tfx::cpu::matvec);
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
