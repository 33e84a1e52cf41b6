// matmul_precision (torch.set_float32_matmul_precision's two ends): "highest" keeps every
// matmul's inputs f32, so a bf16 checkpoint matches transformers' f32 forward to 1e-4;
// "medium" multiplies bf16 weights by bf16-rounded activations in prefill matmuls where the CPU
// has AVX-512 BF16 dot products (and the dispatch cap allows AVX-512), and elsewhere changes
// nothing.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/test_data.h"
#include "core/forward_call.h"
#include "core/model_session.h"
#include "golden_logits.h"
#include "registry/auto_model.h"

namespace {

// The cpu backend multiplies in bf16 here: the CPU has the instructions, and TFX_CPU_ISA
// (the goldens.isa.* runs) does not cap the kernels below AVX-512.
bool bf16_dot_products_run() {
    const char* cap = std::getenv("TFX_CPU_ISA");
    const std::string isa = cap != nullptr ? cap : "";
    const bool capped = !isa.empty() && isa != "avx512" && isa.rfind("avx3", 0) != 0;
    return __builtin_cpu_supports("avx512bf16") && !capped;
}

TEST(MatmulPrecision, MediumRoundsPrefillActivationsToBf16WhereTheCpuCan) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k-bf16");
    TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tinystories-656k-bf16.json");
    const nlohmann::json golden = tfx::test::read_json(golden_path);
    tfx::LoadOptions medium;
    medium.matmul_precision = "medium";
    auto exact = tfx::AutoModel::from_pretrained(model, {});
    auto fast = tfx::AutoModel::from_pretrained(model, medium);
    tfx::ForwardCall exact_call(*exact), fast_call(*fast);
    int prefills = 0;
    for (const auto& prompt : golden.at("prompts")) {
        const auto ids = prompt.at("input_ids").get<std::vector<int32_t>>();
        const auto want = tfx::test::logits_of(prompt.at("last_logits"));
        const auto exact_logits = exact_call.run({.ids = ids});
        const std::vector<float> highest(exact_logits.begin(), exact_logits.end());
        const auto fast_logits = fast_call.run({.ids = ids});
        const std::vector<float> rounded(fast_logits.begin(), fast_logits.end());
        EXPECT_LE(tfx::test::max_abs_diff(highest, want), 1e-4f) << prompt.at("name");
        // bf16 keeps 8 bits of each activation: 2^-9 relative per product, averaging out over
        // the sums; measured 0.047 on logits of magnitude ~15.
        EXPECT_LE(tfx::test::max_abs_diff(rounded, want), 0.1f) << prompt.at("name");
        const auto top = [](std::span<const float> v) { return std::max_element(v.begin(), v.end()) - v.begin(); };
        EXPECT_EQ(top(rounded), top(want)) << prompt.at("name");
        // Prompts of 32+ tokens (the cpu backend's kBlockedGemmMinRows) take the prefill
        // GEMM; shorter ones the f32 matvec kernels.
        if (ids.size() >= 32) {
            ++prefills;
            if (bf16_dot_products_run()) {
                EXPECT_GT(tfx::test::max_abs_diff(rounded, highest), 1e-4f)
                    << prompt.at("name") << ": bf16 path not taken";
            } else {
                EXPECT_EQ(rounded, highest) << prompt.at("name");
            }
        } else {
            EXPECT_EQ(rounded, highest) << prompt.at("name");
        }
    }
    EXPECT_GE(prefills, 2);
}

TEST(MatmulPrecision, OtherValuesAreRefusedNamingTheOption) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k-bf16");
    tfx::LoadOptions low;
    low.matmul_precision = "low";
    try {
        tfx::AutoModel::from_pretrained(model, low);
        ADD_FAILURE() << "matmul_precision low was accepted";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("matmul_precision: expected highest or medium, got 'low'"),
                  std::string::npos)
            << e.what();
    }
}

}  // namespace
