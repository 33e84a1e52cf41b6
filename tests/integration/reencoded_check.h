// The check the GGUF tests make of a file whose blocks the cpu backend does not run: loaded as
// it is, `reencoded` linears are re-encoded to q8_0; asked for f32, none is and the blocks are
// decoded exactly. On every prompt the two stay within the shared README's 0.5 for quantized
// activations, and differ (the q8_0 kernels ran, not the f32 ones).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <vector>

#include <gtest/gtest.h>

#include "core/forward_call.h"
#include "core/model_session.h"
#include "golden_logits.h"
#include "registry/auto_model.h"

namespace tfx::test {

inline void expect_reencoded_near_exact(const std::filesystem::path& gguf, int64_t reencoded,
                                        const std::vector<std::vector<int32_t>>& prompts) {
    tfx::LoadOptions as_f32;
    as_f32.weight_format = "f32";
    auto fast = tfx::AutoModel::from_pretrained(gguf.string(), {});
    auto exact = tfx::AutoModel::from_pretrained(gguf.string(), as_f32);
    EXPECT_EQ(fast->weights_reencoded(), reencoded);
    EXPECT_EQ(exact->weights_reencoded(), 0);
    tfx::ForwardCall fast_call(*fast), exact_call(*exact);
    for (const std::vector<int32_t>& ids : prompts) {
        const auto f = fast_call.run({.ids = ids});
        const std::vector<float> got(f.begin(), f.end());
        const auto e = exact_call.run({.ids = ids});
        const std::vector<float> want(e.begin(), e.end());
        EXPECT_TRUE(std::all_of(got.begin(), got.end(), [](float v) { return std::isfinite(v); }));
        EXPECT_LE(max_abs_diff(got, want), 0.5f) << ids.size() << " ids";
        EXPECT_GT(max_abs_diff(got, want), 0.0f);
    }
}

}  // namespace tfx::test
