// Names that come from users, servers and index files, checked before they become paths or
// URLs: repo ids, revisions, file paths inside a repo, commit hashes and ETags.
#pragma once

#include <string>
#include <string_view>

namespace tfx::hub {

struct RepoRef {
    std::string id;        // "org/name" (or a legacy one-part "name")
    std::string revision;  // "main" unless given
};

// "org/name" or "org/name@revision"; `revision` (when not empty) must agree with the "@".
// Throws HubError(InvalidArgument) naming what is wrong.
RepoRef parse_repo_ref(const std::string& text, const std::string& revision);

bool is_valid_repo_id(std::string_view id);
void check_repo_id(const std::string& id);
void check_revision(const std::string& revision);
// A relative path inside a repo: '/'-separated, no empty, "." or ".." parts, no backslash.
void check_repo_file(const std::string& file, const std::string& where);

bool is_commit_hash(std::string_view text);  // 40 lowercase hex digits
bool is_sha256(std::string_view text);       // 64 lowercase hex digits: the ETag of an LFS file
// An ETag usable as a blob file name: quotes stripped, then letters, digits, '-', '_', '.'.
bool is_safe_etag(std::string_view etag);

// "models--org--name", the repo's folder in the cache.
std::string repo_folder_name(const std::string& repo_id);

// Percent-encodes everything but unreserved characters, keeping '/' when `keep_slash`.
std::string url_quote(std::string_view text, bool keep_slash);

}  // namespace tfx::hub
