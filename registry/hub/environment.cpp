#include "registry/hub/environment.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "registry/hub/hub.h"

namespace tfx::hub {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> get(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
}

std::string trim(const std::string& text) {
    const auto is_space = [](unsigned char c) { return std::isspace(c) != 0; };
    auto begin = std::find_if_not(text.begin(), text.end(), is_space);
    auto end = std::find_if_not(text.rbegin(), std::string::const_reverse_iterator(begin), is_space).base();
    return std::string(begin, end);
}

fs::path expand_home(const std::string& path) {
    if (path == "~" || path.starts_with("~/")) {
        const auto home = get("HOME");
        if (!home) throw HubError(ErrorKind::InvalidArgument, "cannot expand '" + path + "': HOME is not set");
        return fs::path(*home) / path.substr(std::min<std::size_t>(2, path.size()));
    }
    return path;
}

fs::path hf_home() {
    if (auto home = get("HF_HOME")) return expand_home(*home);
    if (auto xdg = get("XDG_CACHE_HOME")) return expand_home(*xdg) / "huggingface";
    return expand_home("~/.cache") / "huggingface";
}

long seconds(const char* name) {
    constexpr long fallback = 10;
    const auto text = get(name);
    if (!text) return fallback;
    // Python accepts fractions ("2.5"); libcurl takes whole seconds, so round up.
    double value = 0;
    std::istringstream in(*text);
    if (!(in >> value) || value <= 0) {
        throw HubError(ErrorKind::InvalidArgument,
                       std::string(name) + "='" + *text + "': expected a positive number of seconds");
    }
    return std::max(1L, static_cast<long>(value + 0.999));
}

}  // namespace

fs::path hub_cache_dir() {
    if (auto dir = get("HF_HUB_CACHE")) return expand_home(*dir);
    if (auto dir = get("HUGGINGFACE_HUB_CACHE")) return expand_home(*dir);
    return hf_home() / "hub";
}

namespace env {

std::string endpoint() {
    std::string url = get("HF_ENDPOINT").value_or("https://huggingface.co");
    while (url.ends_with('/')) url.pop_back();
    return url;
}

std::optional<std::string> token() {
    for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
        if (auto value = get(name)) {
            std::string t = trim(*value);
            if (!t.empty()) return t;
        }
    }
    const fs::path file = get("HF_TOKEN_PATH") ? expand_home(*get("HF_TOKEN_PATH")) : hf_home() / "token";
    std::ifstream in(file);
    if (!in) return std::nullopt;
    std::stringstream text;
    text << in.rdbuf();
    std::string t = trim(text.str());
    if (t.empty()) return std::nullopt;
    return t;
}

bool offline() {
    auto value = get("HF_HUB_OFFLINE");
    if (!value) return false;
    std::string v = trim(*value);
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return v == "1" || v == "true" || v == "yes" || v == "on";
}

long etag_timeout_seconds() {
    return seconds("HF_HUB_ETAG_TIMEOUT");
}
long download_timeout_seconds() {
    return seconds("HF_HUB_DOWNLOAD_TIMEOUT");
}

}  // namespace env
}  // namespace tfx::hub
