// Cross-attention (ABI 2.4, tfx_attention_args.kv_batch) in the eager plugin against a
// reference computed here in double: each decoder sequence's query tokens attend to every
// position of its own encoder sequence, with no mask. The encoder's keys and values come as
// the call's k and v (no cache), or are written to a paged cache by a first call and read
// back by later calls that pass kv_batch with no new tokens, as a decoder's steps do.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "attention_plugin.h"
#include "ragged_batch.h"
#include "tfx/sdk/half.hpp"
#include "tfx/sdk/tensor.hpp"
#include "tfx/tfx.h"

namespace {

using attention_test::expect_near;
using attention_test::plugin;
using attention_test::Ragged;
using attention_test::random_floats;
using tfx::sdk::kBF16;
using tfx::sdk::kF32;
using tfx::sdk::kI32;
using tfx::sdk::View;

struct Shape {
    int64_t heads = 4, kv_heads = 2, dim = 16;
    tfx_dtype kv = kF32;
    int32_t block_size = 4;
};

float as_cached(float x, tfx_dtype dtype) {
    return dtype == kBF16 ? tfx::sdk::bf16_to_f32(tfx::sdk::f32_to_bf16(x)) : x;
}

// Encoder sequences of `encoder[s]` positions and their keys and values, and the paged cache
// that holds them once written.
class CrossProblem {
  public:
    CrossProblem(Shape shape, std::vector<int64_t> encoder, uint32_t seed)
        : s_(shape), encoder_(std::move(encoder)), rng_(seed) {
        for (const int64_t n : encoder_) {
            k_.push_back(random_floats(n * s_.kv_heads * s_.dim, rng_));
            v_.push_back(random_floats(n * s_.kv_heads * s_.dim, rng_));
            columns_ = std::max(columns_, (n + s_.block_size - 1) / s_.block_size);
        }
        const int64_t blocks = columns_ * static_cast<int64_t>(encoder_.size());
        const size_t bytes = static_cast<size_t>(blocks * s_.block_size * s_.kv_heads * s_.dim * s_.kv.bits / 8);
        k_pool_.assign(bytes, 0xff);
        v_pool_.assign(bytes, 0xff);
        k_pool_view_ = View(k_pool_.data(), s_.kv, {blocks, s_.block_size, s_.kv_heads, s_.dim});
        v_pool_view_ = View(v_pool_.data(), s_.kv, {blocks, s_.block_size, s_.kv_heads, s_.dim});
        cache_ = {k_pool_view_.get(), v_pool_view_.get()};
    }

    struct Call {
        std::vector<float> q, k, v, out;
        View q_view, k_view, v_view, out_view;
        Ragged queries, keys;
        tfx_attention_args args{};
    };

    // Queries[s] new decoder tokens for each sequence; the encoder's keys as the call's k and
    // v (`write`: all of them, to the cache when `cached`), or already cached (no new keys).
    std::unique_ptr<Call> call(const std::vector<int64_t>& queries, bool cached, bool write) {
        auto c = std::make_unique<Call>();
        int64_t query_tokens = 0;
        for (const int64_t n : queries) query_tokens += n;
        c->q = random_floats(query_tokens * s_.heads * s_.dim, rng_);
        c->out.assign(c->q.size(), NAN);
        std::vector<int64_t> decoder_context(queries.size(), 3), none(queries.size(), 0);
        c->queries.build(decoder_context, queries, false, s_.block_size, columns_);
        c->keys.build(write ? none : encoder_, write ? encoder_ : none, cached, s_.block_size, columns_);
        if (write) {
            for (size_t s = 0; s < encoder_.size(); ++s) {
                c->k.insert(c->k.end(), k_[s].begin(), k_[s].end());
                c->v.insert(c->v.end(), v_[s].begin(), v_[s].end());
            }
        }
        const int64_t key_tokens = c->keys.batch.num_tokens;
        c->q_view = View(c->q.data(), kF32, {query_tokens, s_.heads, s_.dim});
        c->k_view = View(c->k.data(), kF32, {key_tokens, s_.kv_heads, s_.dim});
        c->v_view = View(c->v.data(), kF32, {key_tokens, s_.kv_heads, s_.dim});
        c->out_view = View(c->out.data(), kF32, {query_tokens, s_.heads, s_.dim});
        tfx_attention_args& a = c->args;
        a.struct_size = sizeof(tfx_attention_args);
        a.causal = 0;
        a.q = c->q_view.get();
        a.k = c->k_view.get();
        a.v = c->v_view.get();
        a.out = c->out_view.get();
        a.batch = &c->queries.batch;
        a.kv_batch = &c->keys.batch;
        a.cache = cached ? &cache_ : nullptr;
        a.scale = 1.0f / std::sqrt(static_cast<float>(s_.dim));
        return c;
    }

    // out for the call's queries: softmax(scale q·k) v over every position of the sequence's
    // encoder (keys and values as the cache holds them when `cached`).
    std::vector<float> reference(const Call& c, bool cached) const {
        std::vector<float> out;
        const int64_t group = s_.heads / s_.kv_heads, dim = s_.dim;
        const tfx_dtype stored = cached ? s_.kv : kF32;
        for (int32_t s = 0; s < c.queries.batch.num_seqs; ++s) {
            const int64_t n = encoder_[static_cast<size_t>(s)];
            for (int32_t t = c.queries.seq_start[s]; t < c.queries.seq_start[s + 1]; ++t) {
                for (int64_t h = 0; h < s_.heads; ++h) {
                    const float* q = c.q.data() + (t * s_.heads + h) * dim;
                    auto key = [&](int64_t j, int64_t d) {
                        return double{as_cached(k_[s][(j * s_.kv_heads + h / group) * dim + d], stored)};
                    };
                    auto value = [&](int64_t j, int64_t d) {
                        return double{as_cached(v_[s][(j * s_.kv_heads + h / group) * dim + d], stored)};
                    };
                    std::vector<double> w(static_cast<size_t>(n));
                    double top = -INFINITY, sum = 0.0;
                    for (int64_t j = 0; j < n; ++j) {
                        double dot = 0.0;
                        for (int64_t d = 0; d < dim; ++d) dot += double{q[d]} * key(j, d);
                        w[static_cast<size_t>(j)] = dot * c.args.scale;
                        top = std::max(top, w[static_cast<size_t>(j)]);
                    }
                    for (double& x : w) sum += (x = std::exp(x - top));
                    for (int64_t d = 0; d < dim; ++d) {
                        double acc = 0.0;
                        for (int64_t j = 0; j < n; ++j) acc += w[static_cast<size_t>(j)] * value(j, d);
                        out.push_back(static_cast<float>(acc / sum));
                    }
                }
            }
        }
        return out;
    }

  private:
    Shape s_;
    std::vector<int64_t> encoder_;
    std::mt19937 rng_;
    std::vector<std::vector<float>> k_, v_;
    int64_t columns_ = 1;
    std::vector<uint8_t> k_pool_, v_pool_;
    View k_pool_view_, v_pool_view_;
    tfx_kv_layer cache_{};
};

int32_t attend(const CrossProblem::Call& c, std::string* message) {
    return plugin("EagerAttention").attend(c.args, message);
}

// Encoders of different lengths, one of them longer than a query run's tiles; decoder runs of
// one token (a step) and of many (a prompt: the tiled path).
TEST(CrossAttention, QueriesSeeEveryPositionOfTheirOwnEncoder) {
    CrossProblem problem({.heads = 6, .kv_heads = 2, .dim = 24}, {7, 45, 1}, 1);
    for (const std::vector<int64_t>& queries : {std::vector<int64_t>{1, 1, 1}, {20, 1, 17}, {0, 33, 2}}) {
        auto c = problem.call(queries, false, true);
        std::string message;
        ASSERT_EQ(attend(*c, &message), TFX_OK) << message;
        expect_near(c->out, problem.reference(*c, false));
    }
}

// The first call writes the encoder's keys and values to the cache; later calls read them
// with no new keys, as a decoder's steps after the first do.
TEST(CrossAttention, KeysWrittenOnceAreReadFromTheCache) {
    for (const tfx_dtype kv : {kF32, kBF16}) {
        CrossProblem problem({.heads = 4, .kv_heads = 4, .dim = 16, .kv = kv, .block_size = 5}, {12, 30}, 2);
        auto first = problem.call({4, 18}, true, true);
        std::string message;
        ASSERT_EQ(attend(*first, &message), TFX_OK) << message;
        expect_near(first->out, problem.reference(*first, true));
        for (const std::vector<int64_t>& queries : {std::vector<int64_t>{1, 1}, {16, 1}}) {
            auto step = problem.call(queries, true, false);
            ASSERT_EQ(step->args.k->shape[0], 0);
            ASSERT_EQ(attend(*step, &message), TFX_OK) << message;
            expect_near(step->out, problem.reference(*step, true));
        }
    }
}

TEST(CrossAttention, MasksAndMismatchedBatchesAreRefused) {
    CrossProblem problem({}, {5, 6}, 3);
    std::string message;
    auto causal = problem.call({2, 2}, false, true);
    causal->args.causal = 1;
    EXPECT_EQ(attend(*causal, &message), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(message.find("cross-attention"), std::string::npos) << message;

    auto fewer = problem.call({2, 2}, false, true);
    fewer->keys.batch.num_seqs = 1;
    fewer->keys.seq_start[1] = fewer->keys.batch.num_tokens;
    EXPECT_EQ(attend(*fewer, &message), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(message.find("kv_batch.num_seqs"), std::string::npos) << message;

    auto rows = problem.call({2, 2}, false, true);
    rows->keys.batch.num_tokens -= 1;
    EXPECT_EQ(attend(*rows, &message), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(message.find("kv_batch.num_tokens"), std::string::npos) << message;

    auto uncached_context = problem.call({1, 1}, false, false);
    EXPECT_EQ(attend(*uncached_context, &message), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(message.find("kv_batch.context_len"), std::string::npos) << message;
}

}  // namespace
