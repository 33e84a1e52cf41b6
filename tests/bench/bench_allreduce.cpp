// Time per all-reduce of the sizes a tensor-parallel decoder sums (TensorParallelGroup, what
// --tp runs after each attention and MLP block: rows x hidden f32 values), across the ranks of
// one MPI job:
//   mpirun -np N bench_allreduce [repetitions]
// Not Google Benchmark: its iteration counts adapt per process, and every call here waits for all
// ranks, so each rank must make the same calls. Each size runs `repetitions` calls in 7 rounds;
// rank 0 prints the median round's time per call beside the same bytes copied by memcpy in this
// process (the limit a shared-memory transport moves data at), as a table.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/tensor_parallel.h"

namespace {

using Clock = std::chrono::steady_clock;

template <class F>
double median_seconds_per_call(int repetitions, F&& call) {
    std::vector<double> rounds;
    for (int round = 0; round < 7; ++round) {
        const auto start = Clock::now();
        for (int i = 0; i < repetitions; ++i) call();
        rounds.push_back(std::chrono::duration<double>(Clock::now() - start).count() / repetitions);
    }
    std::nth_element(rounds.begin(), rounds.begin() + 3, rounds.end());
    return rounds[3];
}

}  // namespace

int main(int argc, char** argv) {
    const int repetitions = argc > 1 ? std::max(1, std::atoi(argv[1])) : 200;
    int ranks = 0;
    if (const char* size = std::getenv("OMPI_COMM_WORLD_SIZE")) ranks = std::atoi(size);
    if (ranks < 2) {
        std::fprintf(stderr, "bench_allreduce: run it as `mpirun -np N bench_allreduce` with N >= 2\n");
        return 2;
    }
    tfx::TensorParallelGroup& group = tfx::TensorParallelGroup::join(ranks);
    if (group.rank() == 0) {
        std::printf("| values | bytes | us per all-reduce | GB/s gathered per rank | memcpy of those bytes (us) |\n");
        std::printf("|---|---|---|---|---|\n");
    }
    for (size_t count : {1u, 896u, 4u * 896, 16u * 896, 64u * 896, 512u * 896, 2048u * 896}) {
        std::vector<float> values(count, 1.0f);
        const double seconds = median_seconds_per_call(repetitions, [&] {
            std::fill(values.begin(), values.end(), 1.0f);
            group.all_reduce_sum(values.data(), values.size());
        });
        const size_t gathered = count * sizeof(float) * static_cast<size_t>(ranks - 1);
        std::vector<char> from(gathered), to(gathered);
        const double copy = median_seconds_per_call(repetitions, [&] {
            std::memcpy(to.data(), from.data(), gathered);
            asm volatile("" : : "r"(to.data()) : "memory");
        });
        if (values[0] != static_cast<float>(ranks)) {
            std::fprintf(stderr, "bench_allreduce: wrong sum %g on rank %d\n", values[0], group.rank());
            return 1;
        }
        if (group.rank() == 0) {
            std::printf("| %zu | %zu | %.1f | %.2f | %.2f |\n", count, count * sizeof(float), seconds * 1e6,
                        static_cast<double>(gathered) / seconds / 1e9, copy * 1e6);
        }
    }
    return 0;
}
