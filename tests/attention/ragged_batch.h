// A ragged batch built from host arrays for the attention tests (tfx_batch and its block
// table and slot mapping), random inputs, and the comparison with a reference.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "tfx/sdk/tensor.hpp"
#include "tfx/tfx.h"

namespace attention_test {

// A ragged batch's host arrays and device views; `batch` points into them.
struct Ragged {
    std::vector<int32_t> seq_start{0}, context_len, positions, block_table, slot_mapping;
    tfx::sdk::View block_table_view, slot_mapping_view;
    tfx_batch batch{};

    // Sequences of `fresh[s]` new tokens after `context[s]` cached ones; with a cache, each
    // sequence's blocks are the `columns` consecutive blocks from s * columns (one pool).
    void build(const std::vector<int64_t>& context, const std::vector<int64_t>& fresh, bool cached, int32_t block_size,
               int64_t columns) {
        int64_t max_context = 0;
        for (size_t s = 0; s < fresh.size(); ++s) {
            for (int64_t i = 0; i < fresh[s]; ++i) {
                const int64_t pos = context[s] + i;
                positions.push_back(static_cast<int32_t>(pos));
                const int64_t block = static_cast<int64_t>(s) * columns + pos / block_size;
                slot_mapping.push_back(static_cast<int32_t>(block * block_size + pos % block_size));
            }
            seq_start.push_back(static_cast<int32_t>(positions.size()));
            context_len.push_back(static_cast<int32_t>(context[s]));
            for (int64_t c = 0; c < columns; ++c) block_table.push_back(static_cast<int32_t>(s * columns + c));
            max_context = std::max(max_context, context[s] + fresh[s]);
        }
        const auto tokens = static_cast<int64_t>(positions.size()), seqs = static_cast<int64_t>(fresh.size());
        block_table_view = tfx::sdk::View(block_table.data(), tfx::sdk::kI32, {seqs, columns});
        slot_mapping_view = tfx::sdk::View(slot_mapping.data(), tfx::sdk::kI32, {tokens});
        batch.struct_size = sizeof(tfx_batch);
        batch.num_tokens = static_cast<int32_t>(tokens);
        batch.num_seqs = static_cast<int32_t>(seqs);
        batch.block_size = cached ? block_size : 0;
        batch.max_blocks_per_seq = cached ? static_cast<int32_t>(columns) : 0;
        batch.max_context_len = static_cast<int32_t>(max_context);
        batch.seq_start = seq_start.data();
        batch.context_len = context_len.data();
        batch.positions = positions.data();
        batch.block_table = cached ? block_table_view.get() : nullptr;
        batch.slot_mapping = cached ? slot_mapping_view.get() : nullptr;
    }
};

inline std::vector<float> random_floats(int64_t n, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = u(rng);
    return v;
}

// Every element within 2e-5 of the reference's (the first 8 misses reported).
inline void expect_near(const std::vector<float>& got, const std::vector<float>& want) {
    ASSERT_EQ(got.size(), want.size());
    int reported = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (!(std::fabs(got[i] - want[i]) <= 2e-5f) && reported++ < 8) {
            ADD_FAILURE() << "element " << i << ": got " << got[i] << ", want " << want[i];
        }
    }
}

}  // namespace attention_test
