// Downloads one blob safely: into {blob}.incomplete, resuming whatever an earlier attempt
// left there with a Range request, checking the size and, for LFS files (whose ETag is their
// sha256), the hash, and only then renaming it to {blob}. Nothing named {blob} ever exists
// unless it is complete and verified.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "registry/hub/hub.h"

namespace tfx::hub {

class HttpClient;

struct BlobSource {
    std::string url;     // where the bytes are (the Hub's redirect target, if any)
    std::string etag;    // the blob's name; a sha256 for LFS files
    std::uint64_t size;  // X-Linked-Size or Content-Length
};

// Call with the blob's lock held. `progress` names the repo and file for `on_progress`
// (which may be empty). Returns the bytes transferred.
std::uint64_t fetch_blob(HttpClient& http, const BlobSource& source, const std::filesystem::path& blob,
                         Progress progress, const std::function<void(const Progress&)>& on_progress);

}  // namespace tfx::hub
