// Disentangled relative attention (ABI 2.7, tfx_attention_args.relative_k / relative_q /
// relative_columns: DeBERTa's content-to-position and position-to-content terms) in the eager
// plugin, against a reference computed here in double: two cache-less prompts of a ragged batch
// (one long enough for the tiled kernel, which hands these calls to the per-token one), a
// column map that clamps and folds distances, GQA, each table alone. Then the refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "attention_plugin.h"
#include "ragged_batch.h"
#include "tfx/sdk/tensor.hpp"
#include "tfx/tfx.h"

namespace {

using attention_test::expect_near;
using attention_test::plugin;
using attention_test::Ragged;
using attention_test::random_floats;
using tfx::sdk::kF32;
using tfx::sdk::kI32;
using tfx::sdk::View;

constexpr int64_t kHeads = 4, kKvHeads = 2, kDim = 8, kSpan = 5, kRows = 6;

// One cache-less call over prompts of `lengths` tokens with random q, k, v, relative keys and
// queries, and a column map: distance d in [-kSpan, kSpan] to row (d * 7 + 100) % kRows, so
// neighbouring distances land on unrelated rows and a misplaced lookup shows.
struct Problem {
    std::vector<int64_t> lengths;
    std::vector<float> q, k, v, out, relative_k, relative_q;
    std::vector<int32_t> columns;
    View q_view, k_view, v_view, out_view, rk_view, rq_view, columns_view;
    Ragged batch;
    tfx_attention_args args{};

    Problem(std::vector<int64_t> lens, uint32_t seed) : lengths(std::move(lens)) {
        std::mt19937 rng(seed);
        int64_t tokens = 0;
        for (int64_t n : lengths) tokens += n;
        q = random_floats(tokens * kHeads * kDim, rng);
        k = random_floats(tokens * kKvHeads * kDim, rng);
        v = random_floats(tokens * kKvHeads * kDim, rng);
        relative_k = random_floats(kRows * kHeads * kDim, rng);
        relative_q = random_floats(kRows * kHeads * kDim, rng);
        for (int64_t d = -kSpan; d <= kSpan; ++d) columns.push_back(static_cast<int32_t>((d * 7 + 100) % kRows));
        out.assign(q.size(), NAN);
        batch.build(std::vector<int64_t>(lengths.size(), 0), lengths, false, 4, 8);  // no cache: blocks unused
        q_view = View(q.data(), kF32, {tokens, kHeads, kDim});
        k_view = View(k.data(), kF32, {tokens, kKvHeads, kDim});
        v_view = View(v.data(), kF32, {tokens, kKvHeads, kDim});
        out_view = View(out.data(), kF32, {tokens, kHeads, kDim});
        rk_view = View(relative_k.data(), kF32, {kRows, kHeads, kDim});
        rq_view = View(relative_q.data(), kF32, {kRows, kHeads, kDim});
        columns_view = View(columns.data(), kI32, {2 * kSpan + 1});
        args.struct_size = sizeof(tfx_attention_args);
        args.q = q_view.get();
        args.k = k_view.get();
        args.v = v_view.get();
        args.out = out_view.get();
        args.batch = &batch.batch;
        args.scale = 0.4f;
        args.relative_span = static_cast<int32_t>(kSpan);
        args.relative_k = rk_view.get();
        args.relative_q = rq_view.get();
        args.relative_columns = columns_view.get();
    }

    // softmax(scale (q_i·k_j + q_i·rk[c] + k_j·rq[c])) v, c = columns[clamp(j - i) + span],
    // bidirectional within each prompt.
    std::vector<float> reference() const {
        std::vector<float> result(out.size());
        const int64_t group = kHeads / kKvHeads;
        auto dot = [](const float* a, const float* b) {
            double sum = 0.0;
            for (int64_t d = 0; d < kDim; ++d) sum += double{a[d]} * b[d];
            return sum;
        };
        int64_t first = 0;
        for (int64_t n : lengths) {
            for (int64_t i = 0; i < n; ++i) {
                for (int64_t h = 0; h < kHeads; ++h) {
                    const float* qi = &q[static_cast<size_t>(((first + i) * kHeads + h) * kDim)];
                    std::vector<double> w;
                    double top = -INFINITY, sum = 0.0;
                    for (int64_t j = 0; j < n; ++j) {
                        const float* kj = &k[static_cast<size_t>(((first + j) * kKvHeads + h / group) * kDim)];
                        const int64_t c = columns[static_cast<size_t>(std::clamp(j - i, -kSpan, kSpan) + kSpan)];
                        double score = dot(qi, kj);
                        if (args.relative_k != nullptr)
                            score += dot(qi, &relative_k[static_cast<size_t>((c * kHeads + h) * kDim)]);
                        if (args.relative_q != nullptr)
                            score += dot(kj, &relative_q[static_cast<size_t>((c * kHeads + h) * kDim)]);
                        w.push_back(score * args.scale);
                        top = std::max(top, w.back());
                    }
                    for (double& x : w) sum += (x = std::exp(x - top));
                    for (int64_t d = 0; d < kDim; ++d) {
                        double acc = 0.0;
                        for (int64_t j = 0; j < n; ++j)
                            acc += w[static_cast<size_t>(j)] *
                                   v[static_cast<size_t>(((first + j) * kKvHeads + h / group) * kDim + d)];
                        result[static_cast<size_t>(((first + i) * kHeads + h) * kDim + d)] =
                            static_cast<float>(acc / sum);
                    }
                }
            }
            first += n;
        }
        return result;
    }
};

int32_t attend(const Problem& p, std::string* message) {
    return plugin("EagerAttention").attend(p.args, message);
}

TEST(DisentangledAttention, PromptsAddBothRelativeTermsOfEachKeysDistance) {
    Problem p({7, 23}, 1);
    std::string message;
    ASSERT_EQ(attend(p, &message), TFX_OK) << message;
    expect_near(p.out, p.reference());
}

TEST(DisentangledAttention, EitherTableAlone) {
    for (const bool keys : {true, false}) {
        SCOPED_TRACE(keys ? "relative_k only" : "relative_q only");
        Problem p({9}, 2);
        (keys ? p.args.relative_q : p.args.relative_k) = nullptr;
        std::string message;
        ASSERT_EQ(attend(p, &message), TFX_OK) << message;
        expect_near(p.out, p.reference());
    }
}

TEST(DisentangledAttention, AColumnOutsideTheTablesOrACacheIsRefused) {
    std::string message;
    Problem outside({5}, 3);
    outside.columns[3] = static_cast<int32_t>(kRows);
    EXPECT_EQ(attend(outside, &message), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(message.find("relative_columns[3]"), std::string::npos) << message;

    Problem short_span({5}, 5);
    short_span.args.relative_span = static_cast<int32_t>(kSpan - 1);  // columns hold 2 * kSpan + 1
    EXPECT_EQ(attend(short_span, &message), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(message.find("relative_columns"), std::string::npos) << message;

    Problem cross({5}, 6);
    cross.args.kv_batch = &cross.batch.batch;
    EXPECT_EQ(attend(cross, &message), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(message.find("cache-less self-attention"), std::string::npos) << message;
}

}  // namespace
