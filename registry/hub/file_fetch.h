// One file of a repo at one revision, through the resolve protocol: a HEAD request to
// {endpoint}/{repo}/resolve/{revision}/{file} gives the commit (X-Repo-Commit), the blob's
// name (X-Linked-Etag or ETag), its size (X-Linked-Size or Content-Length) and where its
// bytes are (a redirect to a CDN for LFS files); then the blob is fetched if the cache
// lacks it and linked into snapshots/{commit}/.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "registry/hub/cache_layout.h"
#include "registry/hub/http_client.h"

namespace tfx::hub {

enum class FileState { Present, Absent, Unknown };

struct FetchContext {
    HttpClient& http;
    const RepoCache& cache;
    std::string endpoint;
    std::string repo_id;
    std::function<void(const Progress&)> on_progress;
    std::uint64_t bytes_downloaded = 0;
};

struct FetchedFile {
    FileState state;     // Present or Absent (the Hub said the repo lacks it)
    std::string commit;  // what the revision resolved to; empty if the Hub did not say
};

// Throws HubError for every answer other than "here it is" and "no such file".
FetchedFile fetch_file(FetchContext& context, const std::string& revision, const std::string& file);

}  // namespace tfx::hub
