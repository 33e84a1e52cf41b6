// Loops split across OpenMP threads only when that pays. `#pragma omp parallel if (false)`
// still starts a one-thread team, and when libgomp's pool holds idle threads from an earlier,
// wider region it wakes them to release them (a futex call each time): ~24 times a decode step
// of tinystories-656k at one thread (strace), all for ops of a few hundred elements. These
// helpers stay on the calling thread instead, without entering OpenMP at all.
#pragma once

#include <omp.h>

#include <cstdint>

namespace tfx::cpu {

// Whether work that is `large_enough` should use the threads: more than one is allowed here.
inline bool use_threads(bool large_enough) {
    return large_enough && omp_get_max_threads() > 1;
}

// body(i) for i in [0, count): statically split across the threads when use_threads(large_enough).
template <class Body>
void parallel_for(int64_t count, bool large_enough, Body&& body) {
    if (!use_threads(large_enough)) {
        for (int64_t i = 0; i < count; ++i) body(i);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) body(i);
}

}  // namespace tfx::cpu
