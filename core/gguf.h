// GGUF files (llama.cpp's single-file model format, versions 2 and 3): the header, the
// metadata and the tensor table, validated against the file's bytes before anything is used:
// every length and count within the file, known value and tensor types, row sizes a whole
// number of blocks, tensor data aligned, inside the data section and without overflow.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"

namespace tfx::gguf {

// ggml's tensor types (the numbers stored in the file).
enum class Type : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
};

struct TypeTraits {
    std::string_view name;  // "Q4_0"
    int64_t block;          // values a block
    int64_t block_bytes;    // bytes a block
};
// The traits of a known type; nullopt for a number this reader does not know.
std::optional<TypeTraits> traits_of(uint32_t type);

struct Tensor {
    std::string name;
    Type type;
    std::vector<int64_t> ne;  // GGUF order: ne[0] is the row length (the fastest dimension)
    uint64_t offset;          // from the start of the data section
    uint64_t bytes;
    int64_t rows() const;  // the product of ne[1..]
};

struct Header {
    uint32_t version = 0;
    std::map<std::string, nlohmann::json, std::less<>> metadata;  // by key; arrays as JSON arrays
    std::vector<Tensor> tensors;
    uint64_t alignment = 32;
    uint64_t data_offset = 0;  // the data section's start in the file
};

// Limits on what a header may claim, so a hostile file cannot make the reader allocate without
// bound before the bytes that would back the claim are checked.
inline constexpr uint64_t kMaxTensors = 1u << 20;
inline constexpr uint64_t kMaxMetadata = 1u << 20;
inline constexpr int kMaxDims = 4;

// Parses and validates `file`; throws sdk::Error whose message starts with `file_name` and says
// which field or tensor is wrong and what was expected.
Header parse(std::span<const uint8_t> file, std::string_view file_name);

class File {
  public:
    explicit File(const std::filesystem::path& path);
    const Header& header() const { return header_; }
    const Tensor* find(std::string_view name) const;
    const uint8_t* data(const Tensor& t) const { return map_.bytes().data() + header_.data_offset + t.offset; }
    const std::filesystem::path& path() const { return map_.path(); }
    void drop_resident_pages() const { map_.drop_resident_pages(); }
    // A metadata value, or nullptr when absent.
    const nlohmann::json* meta(std::string_view key) const;

  private:
    MappedFile map_;
    Header header_;
    std::map<std::string, size_t, std::less<>> index_;
};

// Whether a path names a GGUF file (by its magic number; false for anything unreadable).
bool is_gguf(const std::filesystem::path& path);

}  // namespace tfx::gguf
