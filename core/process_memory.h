// This process's resident memory (Linux /proc), for load logs and benchmarks.
#pragma once

#include <cstdint>
#include <optional>

namespace tfx {

// Bytes of this process's memory resident in RAM now; nullopt where /proc cannot tell.
std::optional<uint64_t> resident_bytes();

}  // namespace tfx
