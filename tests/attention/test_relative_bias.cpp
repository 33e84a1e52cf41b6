// The relative position bias (ABI 2.6, tfx_attention_args.relative_bias: T5's bucketed bias,
// as a table by key position - query position, clamped to a span) in the eager plugin, against
// a reference computed here in double: bidirectional and causal prompts without a cache (a span
// shorter than the prompts, so distances clamp; prompts long enough for the tiled kernel, which
// hands biased calls to the per-token one), and decode steps reading earlier keys from a paged
// cache. Then the refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
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
using tfx::sdk::View;

constexpr int64_t kHeads = 4, kKvHeads = 2, kDim = 8, kSpan = 6;
constexpr int32_t kBlockSize = 4;

// Sequences of `length[s]` positions: every position's q, k and v, a bias table, and a paged
// cache that calls write their keys to.
class BiasProblem {
  public:
    BiasProblem(std::vector<int64_t> length, uint32_t seed) : length_(std::move(length)), rng_(seed) {
        for (const int64_t n : length_) {
            q_.push_back(random_floats(n * kHeads * kDim, rng_));
            k_.push_back(random_floats(n * kKvHeads * kDim, rng_));
            v_.push_back(random_floats(n * kKvHeads * kDim, rng_));
            columns_ = std::max(columns_, (n + kBlockSize - 1) / kBlockSize);
        }
        bias_ = random_floats((2 * kSpan + 1) * kHeads, rng_);
        for (float& b : bias_) b *= 4.0f;  // large beside the scores, so a misplaced entry shows
        bias_view_ = View(bias_.data(), kF32, {2 * kSpan + 1, kHeads});
        const int64_t blocks = columns_ * static_cast<int64_t>(length_.size());
        k_pool_.assign(static_cast<size_t>(blocks * kBlockSize * kKvHeads * kDim), NAN);
        v_pool_.assign(k_pool_.size(), NAN);
        k_pool_view_ = View(k_pool_.data(), kF32, {blocks, kBlockSize, kKvHeads, kDim});
        v_pool_view_ = View(v_pool_.data(), kF32, {blocks, kBlockSize, kKvHeads, kDim});
        cache_ = {k_pool_view_.get(), v_pool_view_.get()};
    }

    struct Call {
        std::vector<float> q, k, v, out;
        View q_view, k_view, v_view, out_view;
        Ragged batch;
        std::vector<int64_t> context, fresh;
        tfx_attention_args args{};
    };

    // Positions [context[s], context[s] + fresh[s]) of each sequence, as new tokens.
    std::unique_ptr<Call> call(const std::vector<int64_t>& context, const std::vector<int64_t>& fresh, bool causal,
                               bool cached) {
        auto c = std::make_unique<Call>();
        c->context = context;
        c->fresh = fresh;
        for (size_t s = 0; s < fresh.size(); ++s) {
            auto rows = [&](const std::vector<float>& all, int64_t width, std::vector<float>& out) {
                out.insert(out.end(), all.begin() + context[s] * width, all.begin() + (context[s] + fresh[s]) * width);
            };
            rows(q_[s], kHeads * kDim, c->q);
            rows(k_[s], kKvHeads * kDim, c->k);
            rows(v_[s], kKvHeads * kDim, c->v);
        }
        c->batch.build(context, fresh, cached, kBlockSize, columns_);
        const int64_t tokens = c->batch.batch.num_tokens;
        c->out.assign(c->q.size(), NAN);
        c->q_view = View(c->q.data(), kF32, {tokens, kHeads, kDim});
        c->k_view = View(c->k.data(), kF32, {tokens, kKvHeads, kDim});
        c->v_view = View(c->v.data(), kF32, {tokens, kKvHeads, kDim});
        c->out_view = View(c->out.data(), kF32, {tokens, kHeads, kDim});
        tfx_attention_args& a = c->args;
        a.struct_size = sizeof(tfx_attention_args);
        a.causal = causal ? 1 : 0;
        a.q = c->q_view.get();
        a.k = c->k_view.get();
        a.v = c->v_view.get();
        a.out = c->out_view.get();
        a.batch = &c->batch.batch;
        a.cache = cached ? &cache_ : nullptr;
        a.scale = 0.5f;
        a.relative_bias = bias_view_.get();
        a.relative_span = static_cast<int32_t>(kSpan);
        return c;
    }

    // out = softmax(scale q·k + bias[clamp(j - i) + span, h]) v over the keys a token sees: every
    // position of the call's (and earlier calls') tokens, or those up to its own when causal.
    std::vector<float> reference(const Call& c) const {
        std::vector<float> out;
        const int64_t group = kHeads / kKvHeads;
        for (size_t s = 0; s < c.fresh.size(); ++s) {
            for (int64_t i = c.context[s]; i < c.context[s] + c.fresh[s]; ++i) {
                const int64_t last = c.args.causal != 0 ? i : c.context[s] + c.fresh[s] - 1;
                for (int64_t h = 0; h < kHeads; ++h) {
                    const int64_t kv = h / group;
                    std::vector<double> w;
                    double top = -INFINITY, sum = 0.0;
                    for (int64_t j = 0; j <= last; ++j) {
                        double dot = 0.0;
                        for (int64_t d = 0; d < kDim; ++d) {
                            dot += double{q_[s][(i * kHeads + h) * kDim + d]} * k_[s][(j * kKvHeads + kv) * kDim + d];
                        }
                        const int64_t at = std::clamp(j - i, -kSpan, kSpan) + kSpan;
                        w.push_back(dot * c.args.scale + bias_[static_cast<size_t>(at * kHeads + h)]);
                        top = std::max(top, w.back());
                    }
                    for (double& x : w) sum += (x = std::exp(x - top));
                    for (int64_t d = 0; d < kDim; ++d) {
                        double acc = 0.0;
                        for (int64_t j = 0; j <= last; ++j) {
                            acc += w[static_cast<size_t>(j)] * v_[s][(j * kKvHeads + kv) * kDim + d];
                        }
                        out.push_back(static_cast<float>(acc / sum));
                    }
                }
            }
        }
        return out;
    }

  private:
    std::vector<int64_t> length_;
    std::mt19937 rng_;
    std::vector<std::vector<float>> q_, k_, v_;
    std::vector<float> bias_;
    View bias_view_;
    int64_t columns_ = 1;
    std::vector<float> k_pool_, v_pool_;
    View k_pool_view_, v_pool_view_;
    tfx_kv_layer cache_{};
};

int32_t attend(const BiasProblem::Call& c, std::string* message) {
    return plugin("EagerAttention").attend(c.args, message);
}

TEST(RelativeBiasAttention, PromptsAddTheBiasOfEachKeysDistance) {
    BiasProblem problem({5, 21}, 1);
    for (const bool causal : {false, true}) {
        SCOPED_TRACE(causal ? "causal" : "bidirectional");
        auto c = problem.call({0, 0}, {5, 21}, causal, false);
        std::string message;
        ASSERT_EQ(attend(*c, &message), TFX_OK) << message;
        expect_near(c->out, problem.reference(*c));
    }
}

// A prompt written to the cache, then steps of one and of three tokens reading it: the query's
// position counts its sequence's context.
TEST(RelativeBiasAttention, StepsReadEarlierKeysFromTheCache) {
    BiasProblem problem({12, 19}, 2);
    std::string message;
    auto prompt = problem.call({0, 0}, {8, 15}, true, true);
    ASSERT_EQ(attend(*prompt, &message), TFX_OK) << message;
    expect_near(prompt->out, problem.reference(*prompt));
    auto step = problem.call({8, 15}, {1, 3}, true, true);
    ASSERT_EQ(attend(*step, &message), TFX_OK) << message;
    expect_near(step->out, problem.reference(*step));
}

TEST(RelativeBiasAttention, AMisshapenTableOrSpanIsRefused) {
    BiasProblem problem({5}, 3);
    std::string message;
    auto no_span = problem.call({0}, {5}, false, false);
    no_span->args.relative_span = 0;
    EXPECT_EQ(attend(*no_span, &message), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(message.find("relative_span"), std::string::npos) << message;

    auto wider = problem.call({0}, {5}, false, false);
    wider->args.relative_span = static_cast<int32_t>(kSpan + 1);  // the table holds 2 * kSpan + 1 rows
    EXPECT_EQ(attend(*wider, &message), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(message.find("relative_bias"), std::string::npos) << message;

    auto cross = problem.call({0}, {5}, false, false);
    cross->args.kv_batch = &cross->batch.batch;
    EXPECT_EQ(attend(*cross, &message), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(message.find("self-attention"), std::string::npos) << message;
}

}  // namespace
