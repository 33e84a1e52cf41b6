#include "core/tensor_parallel.h"

#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "tfx/sdk/error.hpp"

#ifdef TFX_HAVE_MPI
#include <mpi.h>
#endif

namespace tfx {

#ifdef TFX_HAVE_MPI

namespace {

void check_mpi(int status, const char* call) {
    if (status == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(status, text, &length);
    throw sdk::Error(TFX_ERR_INTERNAL,
                     std::string("tensor parallelism: ") + call + " failed: " + std::string(text, length));
}

const TensorParallelGroup* joined_group = nullptr;

}  // namespace

const TensorParallelGroup* TensorParallelGroup::joined() {
    return joined_group;
}

void TensorParallelGroup::abort_job(int code) {
    if (joined_group != nullptr && joined_group->size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

TensorParallelGroup& TensorParallelGroup::join(int size) {
    static TensorParallelGroup* group = [] {
        int initialised = 0;
        MPI_Initialized(&initialised);
        if (!initialised) {
            int provided = 0;
            // Serialized: MPI is called by one thread at a time, not always the main one.
            check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
            // A clean exit finalises; a failing rank ends the job through abort_job instead.
            std::atexit([] {
                int finalised = 0;
                MPI_Finalized(&finalised);
                if (!finalised) MPI_Finalize();
            });
        }
        int rank = 0, ranks = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &ranks);
        return new TensorParallelGroup(rank, ranks);
    }();
    joined_group = group;
    if (group->size_ != size) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "--tp " + std::to_string(size) + ": this job has " + std::to_string(group->size_) +
                             " process(es); launch it as `mpirun -np " + std::to_string(size) + " tfx ... --tp " +
                             std::to_string(size) + "`");
    }
    return *group;
}

void TensorParallelGroup::all_reduce_sum(float* values, size_t count) {
    if (size_ == 1 || count == 0) return;
    if (count > static_cast<size_t>(std::numeric_limits<int>::max())) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "tensor parallelism: an all-reduce of " + std::to_string(count) +
                                                       " values is more than one MPI call takes");
    }
    thread_local std::vector<float> gathered;
    gathered.resize(count * static_cast<size_t>(size_));
    check_mpi(MPI_Allgather(values, static_cast<int>(count), MPI_FLOAT, gathered.data(), static_cast<int>(count),
                            MPI_FLOAT, MPI_COMM_WORLD),
              "MPI_Allgather");
    for (size_t i = 0; i < count; ++i) {
        float sum = gathered[i];
        for (int r = 1; r < size_; ++r) sum += gathered[static_cast<size_t>(r) * count + i];
        values[i] = sum;
    }
}

std::string TensorParallelGroup::share_from_first(std::string value) const {
    uint64_t size = value.size();
    check_mpi(MPI_Bcast(&size, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD), "MPI_Bcast");
    if (size > static_cast<uint64_t>(std::numeric_limits<int>::max())) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "tensor parallelism: " + std::to_string(size) +
                                                       " bytes are more than one MPI broadcast takes");
    }
    value.resize(size);
    check_mpi(MPI_Bcast(value.data(), static_cast<int>(size), MPI_CHAR, 0, MPI_COMM_WORLD), "MPI_Bcast");
    return value;
}

uint64_t TensorParallelGroup::share_from_first(uint64_t value) const {
    check_mpi(MPI_Bcast(&value, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD), "MPI_Bcast");
    return value;
}

#else

std::string TensorParallelGroup::share_from_first(std::string value) const {
    return value;
}

uint64_t TensorParallelGroup::share_from_first(uint64_t value) const {
    return value;
}

const TensorParallelGroup* TensorParallelGroup::joined() {
    return nullptr;
}

void TensorParallelGroup::abort_job(int) {}

TensorParallelGroup& TensorParallelGroup::join(int size) {
    throw sdk::Error(TFX_ERR_UNSUPPORTED, "--tp " + std::to_string(size) +
                                              ": this tfx was built without MPI (install libopenmpi-dev and rebuild)");
}

void TensorParallelGroup::all_reduce_sum(float*, size_t) {}

#endif

}  // namespace tfx
