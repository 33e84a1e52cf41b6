#include "core/process_memory.h"

#include <unistd.h>

#include <fstream>

namespace tfx {

std::optional<uint64_t> resident_bytes() {
    // statm: size, then resident, in pages.
    std::ifstream statm("/proc/self/statm");
    uint64_t size = 0, resident = 0;
    if (!(statm >> size >> resident)) return std::nullopt;
    const long page = ::sysconf(_SC_PAGESIZE);
    return page > 0 ? std::optional<uint64_t>(resident * static_cast<uint64_t>(page)) : std::nullopt;
}

}  // namespace tfx
