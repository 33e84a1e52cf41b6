// The vectorized activations on every ISA target this machine runs, against the reference
// definitions (transformers' ACT2FN) computed with the C library in double precision.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels.h"
#include "matvec.h"
#include "tfx/backend.h"

namespace {

double reference(int32_t act, double v) {
    switch (act) {
        case TFX_ACT_SILU:
            return v / (1.0 + std::exp(-v));
        case TFX_ACT_GELU:
            return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
        case TFX_ACT_GELU_TANH:
            return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        case TFX_ACT_RELU:
            return v > 0.0 ? v : 0.0;
        case TFX_ACT_TANH:
            return std::tanh(v);
        default:
            return v;
    }
}

// Inputs: normal values at several scales, large magnitudes where exp over- or underflows,
// zeros, and a length that leaves a tail past whole vectors and spans several thread chunks.
std::vector<float> inputs() {
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x;
    for (float scale : {0.01f, 1.0f, 4.0f, 30.0f}) {
        for (int i = 0; i < 2500; ++i) x.push_back(scale * normal(rng));
    }
    for (float v : {0.0f, -0.0f, 87.9f, -87.9f, 88.5f, -88.5f, 104.0f, -104.0f, 200.0f, -200.0f, 1e30f, -1e30f}) {
        x.push_back(v);
    }
    x.push_back(1.0f);  // 10013 values
    return x;
}

TEST(Activation, MatchesTheReferenceOnEveryTarget) {
    const std::vector<float> x = inputs();
    std::vector<float> up(x.size());
    for (size_t i = 0; i < up.size(); ++i) up[i] = 0.5f + static_cast<float>(i % 7) * 0.25f;
    for (const std::string& target : tfx::cpu::isa_targets()) {
        tfx::cpu::use_isa(target);
        for (int32_t act : {TFX_ACT_SILU, TFX_ACT_GELU, TFX_ACT_GELU_TANH, TFX_ACT_RELU, TFX_ACT_TANH}) {
            SCOPED_TRACE("target " + target + " act " + std::to_string(act));
            std::vector<float> y(x.size(), NAN), gated(x.size(), NAN);
            tfx::cpu::activation(act, x.data(), y.data(), static_cast<int64_t>(x.size()));
            tfx::cpu::gated_activation(act, x.data(), up.data(), gated.data(), static_cast<int64_t>(x.size()));
            int bad = 0;
            for (size_t i = 0; i < x.size() && bad < 5; ++i) {
                const double want = reference(act, x[i]);
                // A few ulps of the result, and of the input's scale where 1 + tanh cancels.
                const double tolerance =
                    4e-7 * std::fabs(want) + 1e-6 * std::min(1.0, std::fabs(static_cast<double>(x[i]))) + 1e-37;
                if (!(std::fabs(y[i] - want) <= tolerance) ||
                    !(std::fabs(gated[i] - want * up[i]) <= 2 * tolerance * up[i])) {
                    ADD_FAILURE() << "x = " << x[i] << ": act " << y[i] << ", gated " << gated[i] << ", want " << want;
                    ++bad;
                }
            }
        }
    }
    tfx::cpu::use_isa("");
}

}  // namespace
