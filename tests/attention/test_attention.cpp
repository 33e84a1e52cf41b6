// Attention kernels (ABI 2.0) against a plain reference computed here: the eager plugin and the
// frozen ABI 2.0 naive fixture, loaded straight from their libraries (dlopen and the descriptor)
// and called through their table's attend with host memory (what the CPU backend's device is).
//
// Every sequence's keys and values live in a dense [seq][pos][kv_heads][head_dim] array; the
// kernels see them through a paged cache whose blocks earlier calls filled, and the reference
// reads the dense array (rounded to the cache's dtype) with plain loops in double.
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "attention_plugin.h"
#include "tfx/sdk/error.hpp"
#include "tfx/sdk/half.hpp"
#include "tfx/sdk/tensor.hpp"
#include "tfx/tfx.h"

namespace {

using attention_test::AttentionPlugin;
using attention_test::plugin;
using tfx::sdk::kBF16;
using tfx::sdk::kF16;
using tfx::sdk::kF32;
using tfx::sdk::kI32;
using tfx::sdk::View;

// ---- a problem: sequences, their dense keys and values, and a paged cache holding them ----

// f32 as stored in a cache of `dtype` and read back.
float rounded(float x, tfx_dtype dtype) {
    if (dtype == kBF16) return tfx::sdk::bf16_to_f32(tfx::sdk::f32_to_bf16(x));
    if (dtype == kF16) return tfx::sdk::f16_to_f32(tfx::sdk::f32_to_f16(x));
    return x;
}

struct Settings {
    int64_t heads = 4, kv_heads = 4, dim = 16;
    bool causal = true;
    float softcap = 0.0f;
    int32_t window = 0;
    int32_t ahead = 0;  // window_ahead (ABI 2.3): non-causal, keys before pos + ahead only
    tfx_dtype kv = kF32;
    int32_t block_size = 4;
    tfx_device device = tfx::sdk::kHostDevice;  // of every tensor
    bool scatter = false;                       // blocks handed out in random order, with unused ones between
    uint32_t seed = 1;
};

// One part of a call: sequence `seq`'s positions [start, start + count), start = its context.
struct Part {
    int seq;
    int64_t start, count;
};

class Problem {
  public:
    // lengths: every sequence's total positions.
    Problem(Settings s, std::vector<int64_t> lengths) : s_(s), lengths_(std::move(lengths)) {
        std::mt19937 rng(s_.seed);
        std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
        for (int64_t n : lengths_) {
            auto fill = [&](int64_t count) {
                std::vector<float> x(static_cast<size_t>(count));
                for (float& e : x) e = uniform(rng);
                return x;
            };
            q_.push_back(fill(n * s_.heads * s_.dim));
            k_.push_back(fill(n * s_.kv_heads * s_.dim));
            v_.push_back(fill(n * s_.kv_heads * s_.dim));
        }
        // As read back from the cache.
        k_cached_ = k_;
        v_cached_ = v_;
        for (auto* x : {&k_cached_, &v_cached_}) {
            for (auto& row : *x) {
                for (float& e : row) e = rounded(e, s_.kv);
            }
        }
        // Blocks: each sequence gets enough for its length, in order or scattered over a pool
        // with spare blocks.
        int64_t needed = 0;
        for (int64_t n : lengths_) needed += (n + s_.block_size - 1) / s_.block_size;
        num_blocks_ = s_.scatter ? needed * 2 + 3 : needed;
        std::vector<int32_t> ids(static_cast<size_t>(num_blocks_));
        std::iota(ids.begin(), ids.end(), 0);
        if (s_.scatter) std::shuffle(ids.begin(), ids.end(), rng);
        size_t next = 0;
        for (int64_t n : lengths_) {
            std::vector<int32_t> blocks;
            for (int64_t b = 0; b < (n + s_.block_size - 1) / s_.block_size; ++b) blocks.push_back(ids[next++]);
            blocks_.push_back(blocks);
        }
        const size_t pool = static_cast<size_t>(num_blocks_ * s_.block_size * s_.kv_heads * s_.dim) * s_.kv.bits / 8;
        // Garbage in the pools: a kernel must read only what it wrote or earlier calls did.
        k_pool_.assign(pool, 0xff);
        v_pool_.assign(pool, 0xff);
        k_view_ = View(k_pool_.data(), s_.kv, {num_blocks_, s_.block_size, s_.kv_heads, s_.dim}, s_.device);
        v_view_ = View(v_pool_.data(), s_.kv, {num_blocks_, s_.block_size, s_.kv_heads, s_.dim}, s_.device);
        cache_ = {k_view_.get(), v_view_.get()};
    }

    Problem(const Problem&) = delete;
    Problem& operator=(const Problem&) = delete;

    const Settings& settings() const { return s_; }
    int64_t num_blocks() const { return num_blocks_; }
    std::vector<std::vector<int32_t>>& blocks() { return blocks_; }

    // The tensors and batch of one call; `args` points into it.
    struct Call {
        std::vector<float> q, k, v, out;
        std::vector<int32_t> seq_start, context_len, positions, block_table, slot_mapping;
        View q_view, k_view, v_view, out_view, block_table_view, slot_mapping_view;
        tfx_batch batch{};
        tfx_attention_args args{};
        Call() = default;
        Call(const Call&) = delete;
        Call& operator=(const Call&) = delete;
    };

    // A call over `parts` (with the cache unless `with_cache` is false).
    std::unique_ptr<Call> call(const std::vector<Part>& parts, bool with_cache = true) {
        auto c = std::make_unique<Call>();
        const int64_t qrow = s_.heads * s_.dim, kvrow = s_.kv_heads * s_.dim;
        int64_t columns = 1, max_context = 0;
        for (const Part& p : parts) {
            columns = std::max<int64_t>(columns, static_cast<int64_t>(blocks_[p.seq].size()));
            max_context = std::max(max_context, p.start + p.count);
        }
        c->seq_start.push_back(0);
        for (const Part& p : parts) {
            auto append = [&](std::vector<float>& to, const std::vector<float>& from, int64_t row) {
                to.insert(to.end(), from.begin() + p.start * row, from.begin() + (p.start + p.count) * row);
            };
            append(c->q, q_[p.seq], qrow);
            append(c->k, k_[p.seq], kvrow);
            append(c->v, v_[p.seq], kvrow);
            for (int64_t i = 0; i < p.count; ++i) {
                const int64_t pos = p.start + i;
                c->positions.push_back(static_cast<int32_t>(pos));
                c->slot_mapping.push_back(
                    static_cast<int32_t>(blocks_[p.seq][pos / s_.block_size] * s_.block_size + pos % s_.block_size));
            }
            c->seq_start.push_back(static_cast<int32_t>(c->positions.size()));
            c->context_len.push_back(static_cast<int32_t>(p.start));
            for (int64_t b = 0; b < columns; ++b) {
                c->block_table.push_back(b < static_cast<int64_t>(blocks_[p.seq].size()) ? blocks_[p.seq][b] : -1);
            }
        }
        const auto tokens = static_cast<int64_t>(c->positions.size());
        const auto seqs = static_cast<int64_t>(parts.size());
        c->out.assign(static_cast<size_t>(tokens * qrow), NAN);
        c->q_view = View(c->q.data(), kF32, {tokens, s_.heads, s_.dim}, s_.device);
        c->k_view = View(c->k.data(), kF32, {tokens, s_.kv_heads, s_.dim}, s_.device);
        c->v_view = View(c->v.data(), kF32, {tokens, s_.kv_heads, s_.dim}, s_.device);
        c->out_view = View(c->out.data(), kF32, {tokens, s_.heads, s_.dim}, s_.device);
        c->block_table_view = View(c->block_table.data(), kI32, {seqs, columns}, s_.device);
        c->slot_mapping_view = View(c->slot_mapping.data(), kI32, {tokens}, s_.device);

        tfx_batch& b = c->batch;
        b.struct_size = sizeof(tfx_batch);
        b.num_tokens = static_cast<int32_t>(tokens);
        b.num_seqs = static_cast<int32_t>(seqs);
        b.block_size = with_cache ? s_.block_size : 0;
        b.max_blocks_per_seq = with_cache ? static_cast<int32_t>(columns) : 0;
        b.max_context_len = static_cast<int32_t>(max_context);
        b.seq_start = c->seq_start.data();
        b.context_len = c->context_len.data();
        b.positions = c->positions.data();
        b.block_table = with_cache ? c->block_table_view.get() : nullptr;
        b.slot_mapping = with_cache ? c->slot_mapping_view.get() : nullptr;

        tfx_attention_args& a = c->args;
        a.struct_size = sizeof(tfx_attention_args);
        a.causal = s_.causal ? 1 : 0;
        a.q = c->q_view.get();
        a.k = c->k_view.get();
        a.v = c->v_view.get();
        a.out = c->out_view.get();
        a.batch = &c->batch;
        a.cache = with_cache ? &cache_ : nullptr;
        a.scale = 1.0f / std::sqrt(static_cast<float>(s_.dim));
        a.softcap = s_.softcap;
        a.sliding_window = s_.window;
        a.window_ahead = s_.ahead;
        return c;
    }

    // Whether the token at `pos` attends to the key at `j`.
    bool seen(int64_t pos, int64_t j) const {
        return !(s_.causal && j > pos) && !(s_.window > 0 && j <= pos - s_.window) &&
               !(s_.ahead > 0 && j >= pos + s_.ahead);
    }

    // The expected output of `parts` (keys and values rounded to the cache's dtype when cached).
    std::vector<float> reference(const std::vector<Part>& parts, bool with_cache = true) const {
        std::vector<float> out;
        const int64_t group = s_.heads / s_.kv_heads, dim = s_.dim;
        const auto& key_rows = with_cache ? k_cached_ : k_;
        const auto& value_rows = with_cache ? v_cached_ : v_;
        for (const Part& p : parts) {
            const int64_t keys = p.start + p.count;
            for (int64_t pos = p.start; pos < keys; ++pos) {
                for (int64_t h = 0; h < s_.heads; ++h) {
                    const float* q = &q_[p.seq][static_cast<size_t>((pos * s_.heads + h) * dim)];
                    std::vector<double> weight(static_cast<size_t>(keys), 0.0);
                    double max = -INFINITY;
                    for (int64_t j = 0; j < keys; ++j) {
                        if (!seen(pos, j)) continue;
                        const float* k = &key_rows[p.seq][static_cast<size_t>((j * s_.kv_heads + h / group) * dim)];
                        double score = 0.0;
                        for (int64_t d = 0; d < dim; ++d) score += double{q[d]} * k[d];
                        score /= std::sqrt(static_cast<double>(dim));
                        if (s_.softcap > 0.0f) score = s_.softcap * std::tanh(score / s_.softcap);
                        weight[static_cast<size_t>(j)] = score;
                        max = std::max(max, score);
                    }
                    double sum = 0.0;
                    for (int64_t j = 0; j < keys; ++j) {
                        weight[static_cast<size_t>(j)] =
                            seen(pos, j) ? std::exp(weight[static_cast<size_t>(j)] - max) : 0.0;
                        sum += weight[static_cast<size_t>(j)];
                    }
                    for (int64_t d = 0; d < dim; ++d) {
                        double acc = 0.0;
                        for (int64_t j = 0; j < keys; ++j) {
                            const float v =
                                value_rows[p.seq][static_cast<size_t>((j * s_.kv_heads + h / group) * dim + d)];
                            acc += weight[static_cast<size_t>(j)] * v;
                        }
                        out.push_back(static_cast<float>(acc / sum));
                    }
                }
            }
        }
        return out;
    }

    // Sequence `seq`'s position `pos` as stored in the cache (k or v, widened to f32).
    std::vector<float> cached(bool keys, int seq, int64_t pos) const {
        const std::vector<uint8_t>& pool = keys ? k_pool_ : v_pool_;
        const int64_t slot = blocks_[seq][pos / s_.block_size] * s_.block_size + pos % s_.block_size;
        std::vector<float> row;
        for (int64_t i = 0; i < s_.kv_heads * s_.dim; ++i) {
            const int64_t e = slot * s_.kv_heads * s_.dim + i;
            if (s_.kv == kF32) {
                row.push_back(reinterpret_cast<const float*>(pool.data())[e]);
            } else {
                const uint16_t h = reinterpret_cast<const uint16_t*>(pool.data())[e];
                row.push_back(s_.kv == kBF16 ? tfx::sdk::bf16_to_f32(h) : tfx::sdk::f16_to_f32(h));
            }
        }
        return row;
    }
    const std::vector<uint8_t>& pool_bytes(bool keys) const { return keys ? k_pool_ : v_pool_; }
    tfx_kv_layer& cache() { return cache_; }
    std::vector<float> dense(bool keys, int seq, int64_t pos) const {
        const std::vector<float>& x = keys ? k_cached_[seq] : v_cached_[seq];
        const int64_t row = s_.kv_heads * s_.dim;
        return std::vector<float>(x.begin() + pos * row, x.begin() + (pos + 1) * row);
    }

  private:
    Settings s_;
    std::vector<int64_t> lengths_;
    std::vector<std::vector<float>> q_, k_, v_, k_cached_, v_cached_;
    int64_t num_blocks_ = 0;
    std::vector<std::vector<int32_t>> blocks_;
    std::vector<uint8_t> k_pool_, v_pool_;
    View k_view_, v_view_;
    tfx_kv_layer cache_{};
};

void expect_near(const std::vector<float>& got, const std::vector<float>& want, float tolerance = 2e-5f) {
    ASSERT_EQ(got.size(), want.size());
    int reported = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (!(std::fabs(got[i] - want[i]) <= tolerance) && reported++ < 8) {
            ADD_FAILURE() << "element " << i << ": got " << got[i] << ", want " << want[i];
        }
    }
}

// ---- both kernels, the same semantics ----

class Attention : public testing::TestWithParam<std::string> {
  protected:
    const AttentionPlugin& kernel() const { return plugin(GetParam()); }

    // Runs the calls in order (each must succeed) and checks every call's output.
    void check_calls(Problem& problem, const std::vector<std::vector<Part>>& calls, bool with_cache = true) {
        for (const auto& parts : calls) {
            auto c = problem.call(parts, with_cache);
            std::string message;
            ASSERT_EQ(kernel().attend(c->args, &message), TFX_OK) << message;
            expect_near(c->out, problem.reference(parts, with_cache));
        }
    }

    // A call that must be refused as an invalid argument, with a message.
    void expect_refused(const Problem::Call& c) {
        std::string message;
        EXPECT_EQ(kernel().attend(c.args, &message), TFX_ERR_INVALID_ARGUMENT);
        EXPECT_FALSE(message.empty());
    }
};

TEST_P(Attention, SingleSequencePrefill) {
    Problem problem({}, {11});
    check_calls(problem, {{{0, 0, 11}}});
}

TEST_P(Attention, PrefillThenDecodeSteps) {
    Problem problem({.heads = 2, .kv_heads = 2, .dim = 8, .block_size = 3}, {9});
    check_calls(problem, {{{0, 0, 5}}, {{0, 5, 1}}, {{0, 6, 1}}, {{0, 7, 2}}});
}

// Three sequences of different lengths, some prefilling and some decoding in the same call, on
// cache blocks an earlier call filled.
TEST_P(Attention, RaggedBatchMixesPrefillAndDecode) {
    Problem problem({.heads = 4, .kv_heads = 2, .dim = 16, .block_size = 4}, {13, 6, 21});
    check_calls(problem, {{{0, 0, 12}, {2, 0, 9}}, {{0, 12, 1}, {1, 0, 6}, {2, 9, 12}}});
}

TEST_P(Attention, ScatteredBlockTables) {
    Problem problem({.heads = 4, .kv_heads = 4, .dim = 8, .block_size = 2, .scatter = true, .seed = 7}, {17, 3, 10});
    check_calls(problem, {{{0, 0, 8}, {1, 0, 2}, {2, 0, 5}}, {{1, 2, 1}, {0, 8, 9}, {2, 5, 1}}});
}

TEST_P(Attention, GroupedQueryHeads) {
    Problem problem({.heads = 8, .kv_heads = 2, .dim = 32, .block_size = 8, .seed = 3}, {19, 25});
    check_calls(problem, {{{0, 0, 16}, {1, 0, 24}}, {{0, 16, 3}, {1, 24, 1}}});
}

TEST_P(Attention, SlidingWindow) {
    Problem problem({.heads = 2, .kv_heads = 1, .dim = 16, .window = 5, .block_size = 4, .seed = 4}, {23, 9});
    check_calls(problem, {{{0, 0, 17}, {1, 0, 2}}, {{0, 17, 6}, {1, 2, 7}}});
}

TEST_P(Attention, Softcap) {
    // Scaled scores reach about ±1: a cap of 0.3 bends most of them.
    Problem problem({.heads = 4, .kv_heads = 2, .dim = 64, .softcap = 0.3f, .block_size = 16, .seed = 5}, {30});
    check_calls(problem, {{{0, 0, 20}}, {{0, 20, 10}}});
}

TEST_P(Attention, NonCausalWithoutCache) {
    Problem problem({.heads = 4, .kv_heads = 4, .dim = 16, .causal = false, .seed = 6}, {7, 12, 1});
    check_calls(problem, {{{0, 0, 7}, {1, 0, 12}, {2, 0, 1}}}, false);
}

TEST_P(Attention, CausalWithoutCache) {
    Problem problem({.heads = 4, .kv_heads = 2, .dim = 16, .seed = 8}, {5, 9});
    check_calls(problem, {{{0, 0, 5}, {1, 0, 9}}}, false);
}

TEST_P(Attention, NonCausalWithCache) {
    Problem problem({.heads = 2, .kv_heads = 2, .dim = 8, .causal = false, .block_size = 4, .seed = 9}, {10, 6});
    check_calls(problem, {{{0, 0, 4}}, {{0, 4, 6}, {1, 0, 6}}});
}

TEST_P(Attention, Bf16CacheRoundsKeysAndValues) {
    Problem problem({.heads = 4, .kv_heads = 2, .dim = 16, .kv = kBF16, .block_size = 4, .scatter = true, .seed = 10},
                    {14, 5});
    check_calls(problem, {{{0, 0, 9}}, {{0, 9, 5}, {1, 0, 5}}});
    for (int64_t pos = 0; pos < 14; ++pos) {
        EXPECT_EQ(problem.cached(true, 0, pos), problem.dense(true, 0, pos)) << "k, position " << pos;
        EXPECT_EQ(problem.cached(false, 0, pos), problem.dense(false, 0, pos)) << "v, position " << pos;
    }
}

TEST_P(Attention, F16CacheRoundsKeysAndValues) {
    Problem problem({.heads = 4, .kv_heads = 1, .dim = 16, .window = 6, .kv = kF16, .block_size = 3, .seed = 11},
                    {12, 8});
    check_calls(problem, {{{1, 0, 3}}, {{0, 0, 11}, {1, 3, 1}}, {{0, 11, 1}, {1, 4, 4}}});
    for (int64_t pos = 0; pos < 8; ++pos) {
        EXPECT_EQ(problem.cached(true, 1, pos), problem.dense(true, 1, pos)) << "k, position " << pos;
        EXPECT_EQ(problem.cached(false, 1, pos), problem.dense(false, 1, pos)) << "v, position " << pos;
    }
}

TEST_P(Attention, LongDecodeBatch) {
    Problem problem({.heads = 4, .kv_heads = 2, .dim = 64, .kv = kBF16, .block_size = 16, .scatter = true, .seed = 12},
                    {700, 301, 1});
    check_calls(problem, {{{0, 0, 699}, {1, 0, 300}}, {{0, 699, 1}, {1, 300, 1}, {2, 0, 1}}});
}

// Narrow cache rows (a kv head's part under 128 bytes): the eager kernel's decode items take
// the heads of several kv heads and read whole rows. Groups of 2 (eight heads in one item), 1
// and 3 (items whose heads straddle a kv head), f32 and bf16, contexts past a block of 16
// keys at a time, in a batch of three decode steps.
TEST_P(Attention, DecodeStepsOfNarrowRows) {
    struct Shape {
        int64_t heads, kv_heads, dim;
        tfx_dtype kv;
    };
    for (const Shape& shape : {Shape{8, 4, 16, kF32}, Shape{4, 4, 8, kF32}, Shape{6, 2, 16, kF32},
                               Shape{8, 4, 16, kBF16}, Shape{6, 2, 8, kBF16}}) {
        SCOPED_TRACE(testing::Message() << shape.heads << " heads, " << shape.kv_heads << " kv heads, dim " << shape.dim
                                        << (shape.kv == kBF16 ? ", bf16" : ", f32"));
        Problem problem({.heads = shape.heads,
                         .kv_heads = shape.kv_heads,
                         .dim = shape.dim,
                         .kv = shape.kv,
                         .block_size = 16,
                         .scatter = true,
                         .seed = 44},
                        {90, 37, 5});
        check_calls(problem, {{{0, 0, 88}, {1, 0, 35}, {2, 0, 3}},
                              {{0, 88, 1}, {1, 35, 1}, {2, 3, 1}},
                              {{0, 89, 1}, {1, 36, 1}, {2, 4, 1}}});
    }
}

TEST_P(Attention, BadBlockIndexIsRefused) {
    Problem problem({}, {6});
    auto c = problem.call({{0, 0, 6}});
    c->block_table[1] = static_cast<int32_t>(problem.num_blocks());
    expect_refused(*c);
    c->block_table[1] = -3;
    expect_refused(*c);
}

TEST_P(Attention, ContextWithoutCacheIsRefused) {
    Problem problem({}, {6});
    auto c = problem.call({{0, 2, 4}}, false);
    expect_refused(*c);
}

TEST_P(Attention, EmptySequencesInTheBatch) {
    Problem problem({.heads = 2, .kv_heads = 1, .dim = 8, .block_size = 2, .seed = 13}, {5, 4, 3});
    check_calls(problem, {{{0, 0, 4}, {1, 0, 0}, {2, 0, 3}}, {{0, 4, 0}, {1, 0, 4}, {2, 3, 0}}});
}

// Prompts long enough for the eager kernel's tiled path (16 new tokens or more): head_dims that
// fill no whole vector, one, or several and a remainder; a prompt's runs of tokens ending
// inside cache blocks; a later chunk of a prompt after its cached start.
TEST_P(Attention, LongPromptsAtManyHeadDims) {
    for (const int64_t dim : {8, 20, 40, 64, 80, 128}) {
        SCOPED_TRACE("head_dim " + std::to_string(dim));
        Problem problem({.heads = 6,
                         .kv_heads = 2,
                         .dim = dim,
                         .block_size = 5,
                         .scatter = true,
                         .seed = static_cast<uint32_t>(30 + dim)},
                        {83, 40});
        check_calls(problem, {{{0, 0, 37}, {1, 0, 17}}, {{0, 37, 46}, {1, 17, 23}}});
    }
}

// A window far shorter than the prompt: most tiles see none of most key blocks.
TEST_P(Attention, LongPromptInASlidingWindow) {
    Problem problem({.heads = 4, .kv_heads = 1, .dim = 32, .window = 7, .block_size = 8, .seed = 40}, {100});
    check_calls(problem, {{{0, 0, 60}}, {{0, 60, 40}}});
}

TEST_P(Attention, LongPromptsNonCausal) {
    Problem uncached({.heads = 4, .kv_heads = 4, .dim = 24, .causal = false, .seed = 41}, {50, 16, 15});
    check_calls(uncached, {{{0, 0, 50}, {1, 0, 16}, {2, 0, 15}}}, false);
    Problem cached({.heads = 8, .kv_heads = 2, .dim = 16, .causal = false, .kv = kF16, .block_size = 6, .seed = 42},
                   {70});
    check_calls(cached, {{{0, 0, 30}}, {{0, 30, 40}}});
}

// More query heads to a kv head than the tiled path puts in one item.
TEST_P(Attention, LongPromptOfAWideGroup) {
    Problem problem({.heads = 50, .kv_heads = 1, .dim = 8, .kv = kBF16, .block_size = 16, .seed = 43}, {33});
    check_calls(problem, {{{0, 0, 33}}});
}

INSTANTIATE_TEST_SUITE_P(Kernels, Attention, testing::Values("EagerAttention", "NaiveAttention"),
                         [](const testing::TestParamInfo<std::string>& p) { return p.param; });

// ---- the eager plugin: its manifest, messages and checks ----

TEST(EagerAttention, DescriptorAndManifest) {
    const tfx_plugin_descriptor& d = plugin("EagerAttention").descriptor();
    EXPECT_STREQ(d.name, "eager");
    EXPECT_EQ(d.abi_major, TFX_ABI_MAJOR);
    const std::string manifest = d.manifest_json;
    EXPECT_NE(manifest.find("\"kv_dtypes\""), std::string::npos) << manifest;
    EXPECT_NE(manifest.find("\"guarded\""), std::string::npos) << manifest;
}

TEST(NaiveAttention, DescriptorIsAbi20) {
    const tfx_plugin_descriptor& d = plugin("NaiveAttention").descriptor();
    EXPECT_STREQ(d.name, "abi-2.0-naive");
    EXPECT_EQ(d.abi_major, 2);
    EXPECT_EQ(d.abi_minor, 0);
}

// Each case breaks one thing in a valid call; eager refuses it naming the field, and writes
// nothing to the cache.
struct Breakage {
    const char* name;
    const char* expected;  // in the message, after "attention: "
    void (*apply)(Problem::Call& c);
};

class EagerAttentionRefuses : public testing::TestWithParam<Breakage> {};

TEST_P(EagerAttentionRefuses, NamingTheField) {
    Problem problem({.heads = 4, .kv_heads = 2, .dim = 8, .kv = kBF16, .block_size = 2, .seed = 14}, {6, 5});
    auto c = problem.call({{0, 0, 4}, {1, 0, 5}});
    GetParam().apply(*c);
    const std::vector<uint8_t> k_before = problem.pool_bytes(true), v_before = problem.pool_bytes(false);
    std::string message;
    EXPECT_NE(plugin("EagerAttention").attend(c->args, &message), TFX_OK);
    EXPECT_EQ(message.rfind("attention: ", 0), 0u) << message;
    EXPECT_NE(message.find(GetParam().expected), std::string::npos) << message;
    EXPECT_TRUE(problem.pool_bytes(true) == k_before && problem.pool_bytes(false) == v_before)
        << "a refused call wrote to the cache";
}

// Pools that do not match k: head_dim 16 instead of 8.
tfx_kv_layer* wrong_pools() {
    static std::vector<float> data(64 * 2 * 2 * 16);
    static View k(data.data(), kF32, {64, 2, 2, 16}), v(data.data(), kF32, {64, 2, 2, 16});
    static tfx_kv_layer layer{k.get(), v.get()};
    return &layer;
}
tfx_kv_layer* i32_pools() {
    static std::vector<int32_t> data(64 * 2 * 2 * 8);
    static View k(data.data(), kI32, {64, 2, 2, 8}), v(data.data(), kI32, {64, 2, 2, 8});
    static tfx_kv_layer layer{k.get(), v.get()};
    return &layer;
}

const Breakage kBreakages[] = {
    {"BlockIndexPastThePool", "block_table[0, 1]", [](Problem::Call& c) { c.block_table[1] = 1000; }},
    {"NegativeBlockIndex", "block_table[1, 2]",
     [](Problem::Call& c) { c.block_table[static_cast<size_t>(c.batch.max_blocks_per_seq) + 2] = -1; }},
    {"SlotPastThePool", "slot_mapping[6]", [](Problem::Call& c) { c.slot_mapping[6] = 1 << 20; }},
    {"SlotOffItsBlock", "slot_mapping[3]", [](Problem::Call& c) { c.slot_mapping[3] ^= 1; }},
    {"ContextWithoutCache", "context_len[1]",
     [](Problem::Call& c) {
         c.args.cache = nullptr;
         c.context_len[1] = 2;
     }},
    {"NegativeContext", "context_len[0]", [](Problem::Call& c) { c.context_len[0] = -1; }},
    {"SeqStartNotEndingAtNumTokens", "seq_start[num_seqs]", [](Problem::Call& c) { c.seq_start[2] = 8; }},
    {"SeqStartDecreasing", "seq_start must not decrease", [](Problem::Call& c) { c.seq_start[1] = 10; }},
    {"SeqStartNotFromZero", "seq_start[0]", [](Problem::Call& c) { c.seq_start[0] = 1; }},
    {"NumTokensDisagreesWithQ", "num_tokens", [](Problem::Call& c) { c.batch.num_tokens = 8; }},
    {"MaxContextTooSmall", "max_context_len", [](Problem::Call& c) { c.batch.max_context_len = 4; }},
    {"TooFewBlockColumns", "max_blocks_per_seq",
     [](Problem::Call& c) {
         c.batch.max_blocks_per_seq = 2;
         c.block_table_view.get()->shape[1] = 2;
     }},
    {"BlockTableShape", "block_table", [](Problem::Call& c) { c.block_table_view.get()->shape[0] = 3; }},
    {"BlockTableDtype", "block_table", [](Problem::Call& c) { c.block_table_view.get()->dtype = kF32; }},
    {"SlotMappingMissing", "slot_mapping", [](Problem::Call& c) { c.batch.slot_mapping = nullptr; }},
    {"HeadsNotAMultipleOfKvHeads", "multiple of kv_heads",
     [](Problem::Call& c) {
         c.k_view.get()->shape[1] = 3;
         c.v_view.get()->shape[1] = 3;
     }},
    {"VShapeDiffersFromK", "v must be", [](Problem::Call& c) { c.v_view.get()->shape[2] = 4; }},
    {"OutShapeDiffersFromQ", "out must be", [](Problem::Call& c) { c.out_view.get()->shape[1] = 2; }},
    {"QNotF32", "q must be", [](Problem::Call& c) { c.q_view.get()->dtype = kBF16; }},
    {"QStrided", "q must be",
     [](Problem::Call& c) {
         c.q_view.with_strides({1, 9, 36});
     }},
    {"PoolsOfAnotherHeadDim", "cache.k", [](Problem::Call& c) { c.args.cache = wrong_pools(); }},
    {"PoolsOfI32", "cache.k dtype i32", [](Problem::Call& c) { c.args.cache = i32_pools(); }},
    {"PoolBlockSizeDisagrees", "cache.k", [](Problem::Call& c) { c.batch.block_size = 4; }},
    {"TensorOnAnotherDevice", "same device",
     [](Problem::Call& c) {
         c.out_view.get()->device = {TFX_DEVICE_CUDA, 0};
     }},
    {"ArgsStructTooSmall", "tfx_attention_args.struct_size",
     [](Problem::Call& c) { c.args.struct_size = static_cast<uint32_t>(offsetof(tfx_attention_args, softcap)); }},
    {"BatchStructTooSmall", "tfx_batch.struct_size",
     [](Problem::Call& c) { c.batch.struct_size = static_cast<uint32_t>(offsetof(tfx_batch, block_table)); }},
    {"BatchMissing", "batch is missing", [](Problem::Call& c) { c.args.batch = nullptr; }},
};

INSTANTIATE_TEST_SUITE_P(Breakages, EagerAttentionRefuses, testing::ValuesIn(kBreakages),
                         [](const testing::TestParamInfo<Breakage>& p) { return std::string(p.param.name); });

// Tensors of a backend whose memory is host-addressable inside run_kernel only (the guarded
// test backend's TFX_DEVICE_EXT): the kernel reads them like any other.
TEST(EagerAttention, RunsOnAnyDeviceItIsHandedInsideRunKernel) {
    Problem problem({.heads = 4, .kv_heads = 2, .dim = 8, .block_size = 4, .device = {TFX_DEVICE_EXT, 0}}, {9});
    auto c = problem.call({{0, 0, 9}});
    std::string message;
    ASSERT_EQ(plugin("EagerAttention").attend(c->args, &message), TFX_OK) << message;
    expect_near(c->out, problem.reference({{0, 0, 9}}));
}

// ABI 2.3's window ahead: with sliding_window, a non-causal token sees keys on both sides
// within a band (ModernBERT's local attention), with and without a cache; one-sided too.
TEST(EagerAttention, NonCausalWindowOnBothSides) {
    for (const auto& [window, ahead] : {std::pair{4, 4}, std::pair{0, 3}, std::pair{6, 2}}) {
        SCOPED_TRACE("window " + std::to_string(window) + ", ahead " + std::to_string(ahead));
        Problem uncached(
            {.heads = 4, .kv_heads = 2, .dim = 16, .causal = false, .window = window, .ahead = ahead, .seed = 21},
            {13, 5});
        auto c = uncached.call({{0, 0, 13}, {1, 0, 5}}, false);
        std::string message;
        ASSERT_EQ(plugin("EagerAttention").attend(c->args, &message), TFX_OK) << message;
        expect_near(c->out, uncached.reference({{0, 0, 13}, {1, 0, 5}}, false));
        Problem cached({.heads = 2,
                        .kv_heads = 2,
                        .dim = 8,
                        .causal = false,
                        .window = window,
                        .ahead = ahead,
                        .block_size = 4,
                        .seed = 22},
                       {11});
        auto all = cached.call({{0, 0, 11}});
        ASSERT_EQ(plugin("EagerAttention").attend(all->args, &message), TFX_OK) << message;
        expect_near(all->out, cached.reference({{0, 0, 11}}));
    }
}

// A window ahead is for non-causal attention only.
// The same windows over prompts long enough for the tiled path.
TEST(EagerAttention, LongNonCausalPromptsWindowOnBothSides) {
    for (const auto& [window, ahead] : {std::pair{9, 5}, std::pair{0, 17}}) {
        SCOPED_TRACE("window " + std::to_string(window) + ", ahead " + std::to_string(ahead));
        Problem problem({.heads = 6,
                         .kv_heads = 3,
                         .dim = 32,
                         .causal = false,
                         .window = window,
                         .ahead = ahead,
                         .block_size = 8,
                         .seed = 44},
                        {75, 20});
        auto c = problem.call({{0, 0, 75}, {1, 0, 20}});
        std::string message;
        ASSERT_EQ(plugin("EagerAttention").attend(c->args, &message), TFX_OK) << message;
        expect_near(c->out, problem.reference({{0, 0, 75}, {1, 0, 20}}));
    }
}

TEST(EagerAttention, WindowAheadWithCausalIsRefused) {
    Problem problem({.ahead = 3}, {6});
    auto c = problem.call({{0, 0, 6}});
    std::string message;
    EXPECT_EQ(plugin("EagerAttention").attend(c->args, &message), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(message.find("window_ahead"), std::string::npos) << message;
}

// Work is split over threads; every (token, head) is computed the same way whatever the split.
TEST(EagerAttention, RepeatedCallsGiveIdenticalResults) {
    Problem problem({.heads = 8, .kv_heads = 2, .dim = 64, .kv = kF16, .block_size = 16, .scatter = true, .seed = 15},
                    {300, 200});
    auto prefill = problem.call({{0, 0, 299}, {1, 0, 150}});
    ASSERT_EQ(plugin("EagerAttention").attend(prefill->args), TFX_OK);
    auto first = problem.call({{0, 299, 1}, {1, 150, 50}});
    ASSERT_EQ(plugin("EagerAttention").attend(first->args), TFX_OK);
    auto second = problem.call({{0, 299, 1}, {1, 150, 50}});
    ASSERT_EQ(plugin("EagerAttention").attend(second->args), TFX_OK);
    EXPECT_TRUE(first->out == second->out);
    expect_near(second->out, problem.reference({{0, 299, 1}, {1, 150, 50}}));
}

// The two kernels agree closely on a larger problem (the reference test's tolerance aside).
TEST(EagerAttention, AgreesWithNaiveAttention) {
    Settings s{.heads = 8,
               .kv_heads = 4,
               .dim = 32,
               .softcap = 30.0f,
               .window = 100,
               .kv = kBF16,
               .block_size = 8,
               .scatter = true,
               .seed = 16};
    Problem eager(s, {260, 90}), naive(s, {260, 90});
    const std::vector<std::vector<Part>> calls = {{{0, 0, 200}, {1, 0, 89}}, {{0, 200, 60}, {1, 89, 1}}};
    for (const auto& parts : calls) {
        auto a = eager.call(parts), b = naive.call(parts);
        ASSERT_EQ(plugin("EagerAttention").attend(a->args), TFX_OK);
        ASSERT_EQ(plugin("NaiveAttention").attend(b->args), TFX_OK);
        expect_near(a->out, b->out, 1e-5f);
    }
}

#ifdef TFX_GUARDED_BACKEND_PLUGIN
// The guarded test backend: its memory is PROT_NONE except inside its own ops, run_kernel
// included, so a kernel that read its tensors anywhere else would crash.
class GuardedBackend {
  public:
    GuardedBackend() {
        void* handle = dlopen(TFX_GUARDED_BACKEND_PLUGIN, RTLD_NOW | RTLD_LOCAL);  // kept loaded
        if (handle == nullptr) throw std::runtime_error(dlerror());
        auto entry = reinterpret_cast<tfx_plugin_entry_fn>(dlsym(handle, TFX_PLUGIN_ENTRY_SYMBOL));
        if (entry == nullptr) throw std::runtime_error("the guarded backend has no entry");
        descriptor_ = entry();
        if (descriptor_->abi_major != TFX_ABI_MAJOR || descriptor_->kind != TFX_KIND_BACKEND) {
            throw std::runtime_error("the guarded backend is not a backend of this ABI");
        }
        services_.struct_size = sizeof(tfx_host_services);
        services_.abi_major = TFX_ABI_MAJOR;
        services_.abi_minor = TFX_ABI_MINOR;
        services_.option = [](void*, const char*) -> const char* { return nullptr; };
        services_.device = kDevice;
        tfx_error error = tfx::sdk::empty_error();
        tfx::sdk::check(descriptor_->create(&services_, &self_, &error), error);
        ops_ = static_cast<const tfx_backend_ops*>(descriptor_->get_table());
    }
    ~GuardedBackend() {
        for (void* p : allocations_) ops_->release(self_, p);
        descriptor_->destroy(self_);
    }
    GuardedBackend(const GuardedBackend&) = delete;
    GuardedBackend& operator=(const GuardedBackend&) = delete;

    static constexpr tfx_device kDevice{TFX_DEVICE_EXT, 0};

    // Moves t's data to device memory holding the same bytes.
    void to_device(tfx_tensor* t) {
        int64_t count = 1;
        for (int32_t i = 0; i < t->ndim; ++i) count *= t->shape[i];
        void* data = nullptr;
        tfx_error error = tfx::sdk::empty_error();
        tfx::sdk::check(ops_->alloc(self_, static_cast<uint64_t>(count) * t->dtype.bits / 8, &data, &error), error);
        allocations_.push_back(data);
        tfx_tensor device = *t;
        device.data = data;
        device.byte_offset = 0;
        device.device = kDevice;
        tfx::sdk::check(ops_->upload(self_, static_cast<char*>(t->data) + t->byte_offset, &device, &error), error);
        *t = device;
    }
    void to_host(const tfx_tensor* t, void* host) {
        tfx_error error = tfx::sdk::empty_error();
        tfx::sdk::check(ops_->download(self_, t, host, &error), error);
    }

    // attend run as a kernel of the backend; the status, and the message in *message.
    int32_t attend(const AttentionPlugin& plugin, const tfx_attention_args& args, std::string* message) {
        struct Context {
            const AttentionPlugin* plugin;
            const tfx_attention_args* args;
            std::string message;
        } context{&plugin, &args, {}};
        auto kernel = [](void* ctx, tfx_error* error) -> int32_t {
            auto* c = static_cast<Context*>(ctx);
            const int32_t status = c->plugin->attend(*c->args, &c->message);
            if (status != TFX_OK) tfx::sdk::fill_error(error, status, c->message.c_str());
            return status;
        };
        tfx_error error = tfx::sdk::empty_error();
        const int32_t status = ops_->run_kernel(self_, kernel, &context, &error);
        *message = status == TFX_OK ? "" : error.message;
        return status;
    }

  private:
    const tfx_plugin_descriptor* descriptor_ = nullptr;
    tfx_host_services services_{};
    void* self_ = nullptr;
    const tfx_backend_ops* ops_ = nullptr;
    std::vector<void*> allocations_;
};

// Every tensor in the guarded backend's memory, the kernel run through its run_kernel: a prefill
// then a ragged decode on the blocks it filled, and a refused call.
TEST(EagerAttention, RunsInsideTheGuardedBackendsRunKernel) {
    GuardedBackend backend;
    Problem problem({.heads = 4, .kv_heads = 2, .dim = 16, .kv = kBF16, .block_size = 4, .scatter = true, .seed = 17},
                    {10, 7});
    backend.to_device(problem.cache().k);
    backend.to_device(problem.cache().v);
    for (const std::vector<Part>& parts : {std::vector<Part>{{0, 0, 6}}, std::vector<Part>{{0, 6, 4}, {1, 0, 7}}}) {
        auto c = problem.call(parts);
        for (View* v : {&c->q_view, &c->k_view, &c->v_view, &c->out_view, &c->block_table_view, &c->slot_mapping_view})
            backend.to_device(v->get());
        std::string message;
        ASSERT_EQ(backend.attend(plugin("EagerAttention"), c->args, &message), TFX_OK) << message;
        backend.to_host(c->out_view.get(), c->out.data());
        expect_near(c->out, problem.reference(parts));
    }
    auto bad = problem.call({{1, 7, 0}, {0, 0, 10}});
    bad->block_table[1] = 99;
    for (View* v :
         {&bad->q_view, &bad->k_view, &bad->v_view, &bad->out_view, &bad->block_table_view, &bad->slot_mapping_view})
        backend.to_device(v->get());
    std::string message;
    EXPECT_EQ(backend.attend(plugin("EagerAttention"), bad->args, &message), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(message.find("block_table[0, 1] = 99"), std::string::npos) << message;
}
#endif

}  // namespace
