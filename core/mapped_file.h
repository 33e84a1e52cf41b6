// A read-only memory mapping of a whole file (RAII). Checkpoints are mapped, never copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>

namespace tfx {

class MappedFile {
  public:
    explicit MappedFile(const std::filesystem::path& path);  // throws sdk::Error naming the file
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
    const std::filesystem::path& path() const { return path_; }
    // Gives the pages read so far back to the page cache: this process's resident memory no
    // longer counts them, and a later read maps them in again from the file.
    void drop_resident_pages() const;

  private:
    std::filesystem::path path_;
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace tfx
