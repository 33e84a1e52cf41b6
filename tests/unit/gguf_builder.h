// GGUF bytes for tests, written field by field as the format lays them out (little-endian
// values, strings as a u64 length then their bytes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tfx::test {

struct GgufBuilder {
    std::vector<uint8_t> bytes;
    template <class T>
    void put(T v) {
        const auto* p = reinterpret_cast<const uint8_t*>(&v);
        bytes.insert(bytes.end(), p, p + sizeof(T));
    }
    void str(const std::string& s) {
        put<uint64_t>(s.size());
        bytes.insert(bytes.end(), s.begin(), s.end());
    }
};

}  // namespace tfx::test
