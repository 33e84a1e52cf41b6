// Tensor parallelism across the processes of one MPI job (mpirun -np N tfx ... --tp N), the way
// transformers' tp_plan runs under torchrun: every rank runs the same command (SPMD), holds
// 1/N of each sharded weight, and the model plugin sums its partial results through
// all_reduce_sum. Built when CMake finds MPI (TFX_HAVE_MPI); otherwise join() explains that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tfx {

class TensorParallelGroup {
  public:
    // The job's group of `size` ranks (MPI initialised on the first call, finalised at exit).
    // Throws naming --tp when the job has another number of processes, or MPI is absent.
    static TensorParallelGroup& join(int size);

    // The group this process joined, or null (no --tp).
    static const TensorParallelGroup* joined();
    // Ends every rank of the job with `code` once this one has failed (MPI_Abort), so that no
    // rank waits forever for a sum its peer will never join; returns when no group was joined.
    static void abort_job(int code);

    int rank() const { return rank_; }
    int size() const { return size_; }
    // values[0 .. count) = their sum over the ranks, the same bits on every rank: the ranks'
    // parts are gathered and added in rank order, whatever algorithm MPI picks, so that
    // greedy and seeded sampling choose the same token everywhere.
    void all_reduce_sum(float* values, size_t count);
    // Rank 0's value on every rank: what only rank 0 can know (stdin, which mpirun hands to rank
    // 0 alone; a freshly drawn sampling seed), so that every rank runs the same command.
    std::string share_from_first(std::string value) const;
    uint64_t share_from_first(uint64_t value) const;

  private:
    TensorParallelGroup(int rank, int size) : rank_(rank), size_(size) {}
    int rank_, size_;
};

}  // namespace tfx
