#include "registry/hub/names.h"

#include <algorithm>

#include "registry/hub/hub.h"

namespace tfx::hub {
namespace {

bool is_word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool is_lower_hex(std::string_view text, std::size_t length) {
    return text.size() == length && std::all_of(text.begin(), text.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

// Hub rule: word characters, '-' and '.', starting and ending with a word character.
bool is_valid_name_part(std::string_view part) {
    if (part.empty() || !is_word_char(part.front()) || !is_word_char(part.back())) return false;
    return std::all_of(part.begin(), part.end(), [](char c) { return is_word_char(c) || c == '-' || c == '.'; });
}

// True when `path` splits on '/' into parts that are neither empty, "." nor "..".
bool has_plain_parts(std::string_view path) {
    std::size_t start = 0;
    while (true) {
        const std::size_t slash = path.find('/', start);
        const std::string_view part =
            path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
        if (part.empty() || part == "." || part == "..") return false;
        if (slash == std::string_view::npos) return true;
        start = slash + 1;
    }
}

bool has_control_or_backslash(std::string_view text) {
    return std::any_of(text.begin(), text.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f || c == '\\';
    });
}

}  // namespace

bool is_valid_repo_id(std::string_view id) {
    if (id.empty() || id.size() > 96) return false;
    if (id.find("--") != std::string_view::npos || id.find("..") != std::string_view::npos) return false;
    const std::size_t slash = id.find('/');
    if (slash == std::string_view::npos) return is_valid_name_part(id);
    return is_valid_name_part(id.substr(0, slash)) && is_valid_name_part(id.substr(slash + 1));
}

void check_repo_id(const std::string& id) {
    if (!is_valid_repo_id(id)) {
        throw HubError(ErrorKind::InvalidArgument,
                       "'" + id +
                           "' is not a Hub repo id: expected 'org/name' (letters, digits, '-', '_', '.'; "
                           "no '--' or '..'; at most 96 characters) or an existing local folder");
    }
}

void check_revision(const std::string& revision) {
    const bool ok = !revision.empty() && revision.size() <= 255 && !has_control_or_backslash(revision) &&
                    revision.find_first_of(" :*?\"<>|") == std::string::npos && has_plain_parts(revision);
    if (!ok)
        throw HubError(ErrorKind::InvalidArgument,
                       "'" + revision + "' is not a valid revision (branch, tag or commit)");
}

void check_repo_file(const std::string& file, const std::string& where) {
    if (file.empty() || file.size() > 1024 || has_control_or_backslash(file) || !has_plain_parts(file)) {
        throw HubError(ErrorKind::InvalidArgument,
                       where + ": '" + file + "' is not a safe file path inside a repo (relative, no '..', no '\\')");
    }
}

RepoRef parse_repo_ref(const std::string& text, const std::string& revision) {
    RepoRef ref{text, revision};
    if (const std::size_t at = text.find('@'); at != std::string::npos) {
        ref.id = text.substr(0, at);
        const std::string pinned = text.substr(at + 1);
        if (!revision.empty() && revision != pinned) {
            throw HubError(ErrorKind::InvalidArgument,
                           "'" + text + "' pins revision '" + pinned + "' but '" + revision + "' was also asked for");
        }
        ref.revision = pinned;
    }
    if (ref.revision.empty()) ref.revision = "main";
    check_repo_id(ref.id);
    check_revision(ref.revision);
    return ref;
}

bool is_commit_hash(std::string_view text) {
    return is_lower_hex(text, 40);
}
bool is_sha256(std::string_view text) {
    return is_lower_hex(text, 64);
}

bool is_safe_etag(std::string_view etag) {
    return !etag.empty() && etag.size() <= 128 && etag.front() != '.' &&
           std::all_of(etag.begin(), etag.end(), [](char c) { return is_word_char(c) || c == '-' || c == '.'; });
}

std::string repo_folder_name(const std::string& repo_id) {
    std::string name = "models--" + repo_id;
    if (const std::size_t slash = name.find('/'); slash != std::string::npos) name.replace(slash, 1, "--");
    return name;
}

std::string url_quote(std::string_view text, bool keep_slash) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (char c : text) {
        if (is_word_char(c) || c == '-' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            out += c;
        } else {
            const auto u = static_cast<unsigned char>(c);
            out += '%';
            out += hex[u >> 4];
            out += hex[u & 0x0f];
        }
    }
    return out;
}

}  // namespace tfx::hub
