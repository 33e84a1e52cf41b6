// Safetensors: validated header parsing (the bytes are untrusted), memory-mapped files,
// sharded checkpoints (model.safetensors.index.json) and a writer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "tfx/tensor.h"

namespace tfx::safetensors {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2 };

std::optional<DType> parse_dtype(std::string_view name);
std::string_view dtype_name(DType dtype);
std::size_t dtype_size(DType dtype);
tfx_dtype to_abi(DType dtype);

struct TensorInfo {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin;  // byte range relative to the start of the data section
    uint64_t end;
};

struct Header {
    std::vector<TensorInfo> tensors;
    std::map<std::string, std::string> metadata;
    uint64_t data_offset = 0;  // 8 + header length
};

// Largest header accepted (the reference implementation's bound).
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Validates everything the header claims against the file's bytes; throws sdk::Error with
// `file_name` and what is wrong.
Header parse_header(std::span<const uint8_t> file, std::string_view file_name);

class File {
  public:
    explicit File(const std::filesystem::path& path);
    const Header& header() const { return header_; }
    const TensorInfo* find(std::string_view name) const;
    const uint8_t* data(const TensorInfo& tensor) const {
        return map_.bytes().data() + header_.data_offset + tensor.begin;
    }
    const std::filesystem::path& path() const { return map_.path(); }
    void drop_resident_pages() const { map_.drop_resident_pages(); }

  private:
    MappedFile map_;
    Header header_;
    std::map<std::string, std::size_t, std::less<>> index_;
};

// All tensors of a model folder: model.safetensors, or the shards named by
// model.safetensors.index.json. Names removed by tied-weight saving (recorded in
// __metadata__ as "removed": "kept") resolve to the kept tensor.
class Checkpoint {
  public:
    static Checkpoint open(const std::filesystem::path& model_dir);

    struct Entry {
        const File* file;
        const TensorInfo* info;
    };
    std::optional<Entry> find(std::string_view name) const;
    std::vector<std::string> names() const;
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const std::vector<std::unique_ptr<File>>& files() const { return files_; }

  private:
    std::vector<std::unique_ptr<File>> files_;
    std::map<std::string, Entry, std::less<>> tensors_;
    std::map<std::string, std::string, std::less<>> aliases_;
    std::map<std::string, std::string> metadata_;
};

// n values of an f32, bf16 or f16 tensor as f32; throws naming the tensor for other dtypes.
std::vector<float> widened(const uint8_t* src, DType dtype, size_t n, const char* name);

// f32 values stored as `dtype` (F32, BF16 or F16; rounded to nearest even), as torch's .to()
// does; throws for other dtypes.
std::vector<uint8_t> narrowed(std::span<const float> values, DType dtype);

struct TensorToWrite {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::span<const uint8_t> bytes;
};

// Writes atomically (temporary file, then rename); the header is padded to 8 bytes.
void write(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
           const std::map<std::string, std::string>& metadata = {});

}  // namespace tfx::safetensors
