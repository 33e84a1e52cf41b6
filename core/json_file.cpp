#include "core/json_file.h"

#include "core/mapped_file.h"

namespace tfx {

// Through MappedFile: a FIFO or device named like a JSON file is refused instead of read
// forever, and the text is copied once.
std::string read_text_file(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        throw sdk::Error(TFX_ERR_NOT_FOUND, path.string() + ": cannot read: no such file");
    }
    MappedFile file(path);
    const auto bytes = file.bytes();
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

sdk::Config load_json_file(const std::filesystem::path& path) {
    if (!std::filesystem::exists(path)) {
        throw sdk::Error(TFX_ERR_NOT_FOUND, path.string() + ": file not found");
    }
    return sdk::Config::parse(read_text_file(path), path.string());
}

std::optional<sdk::Config> load_optional_json_file(const std::filesystem::path& path) {
    if (!std::filesystem::exists(path)) return std::nullopt;
    return load_json_file(path);
}

}  // namespace tfx
