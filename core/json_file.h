// Reading JSON files (config.json, generation_config.json, tokenizer_config.json, ...) with
// errors that name the file and, through sdk::Config, the field.
#pragma once

#include <filesystem>
#include <optional>

#include "tfx/sdk/config.hpp"

namespace tfx {

// Throws sdk::Error naming the path when the file is missing, unreadable or not a JSON object.
sdk::Config load_json_file(const std::filesystem::path& path);
// Like load_json_file, but an absent file gives nullopt.
std::optional<sdk::Config> load_optional_json_file(const std::filesystem::path& path);
std::string read_text_file(const std::filesystem::path& path);

}  // namespace tfx
