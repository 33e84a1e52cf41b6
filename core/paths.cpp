#include "core/paths.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "core/log.h"
#include "tfx/sdk/error.hpp"

namespace tfx::paths {

std::filesystem::path executable_dir() {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::filesystem::path() : exe.parent_path();
}

std::filesystem::path library_dir() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&library_dir), &info) == 0 || info.dli_fname == nullptr) return {};
    std::error_code ec;
    auto lib = std::filesystem::canonical(info.dli_fname, ec);
    return ec ? std::filesystem::path() : lib.parent_path();
}

std::vector<std::string> split_path_list(const std::string& list) {
    std::vector<std::string> out;
    std::stringstream in(list);
    for (std::string item; std::getline(in, item, ':');) {
        if (!item.empty()) out.push_back(item);
    }
    return out;
}

std::vector<std::filesystem::path> plugin_search_path(const std::vector<std::string>& explicit_paths) {
    std::vector<std::filesystem::path> candidates;
    for (const auto& p : explicit_paths) {
        for (const auto& item : split_path_list(p)) {
            std::error_code ec;
            if (!std::filesystem::is_directory(item, ec)) {
                throw sdk::Error(TFX_ERR_NOT_FOUND,
                                 "--plugin-path " + item + ": " +
                                     (std::filesystem::exists(item, ec) ? "not a folder" : "no such folder"));
            }
            candidates.emplace_back(item);
        }
    }
    if (const char* env = std::getenv("TFX_PLUGIN_PATH")) {
        for (const auto& item : split_path_list(env)) {
            std::error_code ec;
            if (!std::filesystem::is_directory(item, ec)) {
                log::write(log::Level::warn, "plugins", "TFX_PLUGIN_PATH entry " + item + " is not a folder; skipped");
                continue;
            }
            candidates.emplace_back(item);
        }
    }
    if (auto lib = library_dir(); !lib.empty()) candidates.push_back(lib / "tfx" / "plugins");
    if (auto exe = executable_dir(); !exe.empty()) candidates.push_back(exe / "plugins");

    std::vector<std::filesystem::path> out;
    for (const auto& c : candidates) {
        std::error_code ec;
        auto canonical = std::filesystem::canonical(c, ec);
        if (ec || !std::filesystem::is_directory(canonical)) continue;
        if (std::find(out.begin(), out.end(), canonical) == out.end()) out.push_back(canonical);
    }
    return out;
}

}  // namespace tfx::paths
