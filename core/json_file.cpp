#include "core/json_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace tfx {

std::string read_text_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw sdk::Error(std::filesystem::exists(path) ? TFX_ERR_IO : TFX_ERR_NOT_FOUND,
                         path.string() + ": cannot read: " + std::strerror(errno));
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
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
