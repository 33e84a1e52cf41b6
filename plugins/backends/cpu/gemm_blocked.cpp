#include "gemm_blocked.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include <hwy/aligned_allocator.h>

#include "parallel.h"

namespace tfx::cpu {
namespace {

// The packed block, per calling thread (the threads of one call share it); grow-only.
void* packed_block(size_t bytes) {
    thread_local hwy::AlignedFreeUniquePtr<uint8_t[]> block;
    thread_local size_t capacity = 0;
    if (bytes > capacity) {
        block = hwy::AllocateAligned<uint8_t>(bytes);
        capacity = bytes;
    }
    return block.get();
}

int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

}  // namespace

void run_blocked(const BlockedKernels& kernels, const float* x, const MatvecWeight* ws, int count, int64_t m,
                 int64_t k) {
    if (m <= 0 || k <= 0) return;
    const int64_t tile_rows = kernels.tile_rows, width = kernels.width, step = kernels.column_step;
    // Even blocks: k = 576 is one block of 576 columns rather than 512 and 64.
    const int64_t kc_max = ceil_div(ceil_div(k, ceil_div(k, kernels.max_block_columns)), step) * step;
    const int64_t mc_max = ceil_div(ceil_div(m, ceil_div(m, kernels.max_block_rows)), width) * width;
    void* xp = packed_block(static_cast<size_t>(mc_max * kc_max) * kernels.packed_value_bytes);

    // Tiles numbered across the weights one after another; tile t of weight i covers output
    // features [t * tile_rows, ...) of it.
    std::vector<int64_t> first_tile(static_cast<size_t>(count) + 1, 0);
    int64_t work = 0;
    for (int i = 0; i < count; ++i) {
        first_tile[static_cast<size_t>(i) + 1] = first_tile[static_cast<size_t>(i)] + ceil_div(ws[i].n, tile_rows);
        work += ws[i].n;
    }
    const int64_t tiles = first_tile.back();
    const bool threaded = use_threads(work * k >= (int64_t{1} << 16));

    for (int64_t k0 = 0; k0 < k; k0 += kc_max) {
        const int64_t kc = std::min(kc_max, k - k0);
        for (int64_t m0 = 0; m0 < m; m0 += mc_max) {
            const int64_t mc = std::min(mc_max, m - m0), groups = ceil_div(mc, width);
            auto run_tile = [&](int64_t t) {
                const auto next = std::upper_bound(first_tile.begin(), first_tile.end(), t);
                const auto i = static_cast<size_t>(next - first_tile.begin() - 1);
                const int64_t r0 = (t - first_tile[i]) * tile_rows;
                kernels.multiply(xp, m0, mc, k0, kc, k0 == 0, &ws[i], k, r0, std::min(ws[i].n, r0 + tile_rows));
            };
            if (!threaded) {
                kernels.pack(x, k, m0, mc, k0, kc, 0, groups, xp);
                for (int64_t t = 0; t < tiles; ++t) run_tile(t);
                continue;
            }
#pragma omp parallel
            {
#pragma omp for schedule(static)
                for (int64_t g = 0; g < groups; ++g) kernels.pack(x, k, m0, mc, k0, kc, g, g + 1, xp);
#pragma omp for schedule(static)
                for (int64_t t = 0; t < tiles; ++t) run_tile(t);
            }
        }
    }
}

}  // namespace tfx::cpu
