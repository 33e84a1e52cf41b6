// The CPU backend as a library (target tfx_cpu_backend_impl): the cpu plugin exports it, and
// other plugins (the tests' guarded backend) hold an instance and call its ops table.
//
//   tfx::cpu::CpuBackend cpu(host);                         // host may be NULL
//   const tfx_backend_ops& ops = tfx::cpu::CpuBackend::ops();
//   ops.linear(&cpu, x, w, nullptr, y, &error);             // self is the CpuBackend*
#pragma once

#include <cstdint>
#include <memory>

#include "tfx/backend.h"
#include "tfx/host.h"

namespace tfx::cpu {

class CpuBackendImpl;

class CpuBackend {
  public:
    // Reads the host's "num_threads" option when host is non-NULL. Throws sdk::Error.
    explicit CpuBackend(const tfx_host_services* host);
    ~CpuBackend();
    CpuBackend(const CpuBackend&) = delete;
    CpuBackend& operator=(const CpuBackend&) = delete;

    // How well the CPU backend fits this machine (the descriptor's score).
    static int32_t score();
    // The ABI 2.0 ops table (static storage); every op's self is a CpuBackend*.
    static const tfx_backend_ops& ops();

    CpuBackendImpl& impl() { return *impl_; }

  private:
    std::unique_ptr<CpuBackendImpl> impl_;
};

}  // namespace tfx::cpu
