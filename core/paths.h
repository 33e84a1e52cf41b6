// Where this process and its library live, and the plugin search path built from them.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace tfx::paths {

std::filesystem::path executable_dir();
// The directory of libtfx itself (the install's lib dir, or build/lib).
std::filesystem::path library_dir();

// Plugin folders in search order, existing ones only, without duplicates:
// explicit (--plugin-path, colon-separated entries allowed), TFX_PLUGIN_PATH,
// <libdir>/tfx/plugins (install or build tree), <exe dir>/plugins. An explicit entry that
// is not a folder throws sdk::Error naming it; a TFX_PLUGIN_PATH one is skipped with a warning.
std::vector<std::filesystem::path> plugin_search_path(const std::vector<std::string>& explicit_paths);

// Splits a colon-separated list, dropping empty entries.
std::vector<std::string> split_path_list(const std::string& list);

}  // namespace tfx::paths
