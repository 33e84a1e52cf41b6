// Editing a GGUF file's bytes for tests: a tensor's ggml type changed in its header entry, its
// blocks rewritten in place (smaller blocks fit where the old ones were).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tfx::test {

inline std::vector<char> file_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

inline void write_bytes(const std::filesystem::path& path, const std::vector<char>& bytes) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The type field of a 2-D tensor's header entry: after its name, the u32 dimension count and
// two u64 dimensions.
inline void retype_2d(std::vector<char>& bytes, const std::string& name, uint32_t ggml_type) {
    const auto at = std::search(bytes.begin(), bytes.end(), name.begin(), name.end());
    ASSERT_NE(at, bytes.end()) << name;
    std::memcpy(&*(at + static_cast<long>(name.size()) + 4 + 16), &ggml_type, 4);
}

// Points a 2-D tensor's header entry at new blocks appended to the file (for a type whose blocks
// are larger than the old ones); the data section's alignment (32 in the shared files) is kept.
inline void append_blocks_2d(std::vector<char>& bytes, const std::string& name, uint64_t data_offset,
                             uint64_t block_bytes) {
    const auto at = std::search(bytes.begin(), bytes.end(), name.begin(), name.end());
    ASSERT_NE(at, bytes.end()) << name;
    bytes.resize((bytes.size() + 31) / 32 * 32);
    const uint64_t offset = bytes.size() - data_offset;
    std::memcpy(&*(at + static_cast<long>(name.size()) + 4 + 16 + 4), &offset, 8);
    bytes.resize(bytes.size() + block_bytes);
}

}  // namespace tfx::test
