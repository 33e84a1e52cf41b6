// The Hugging Face Hub client: turns "org/name[@revision]" into a snapshot folder of the
// on-disk cache that Python's huggingface_hub uses too, downloading only what a model needs.
//
// Cache layout (shared with huggingface_hub, so either tool finds the other's downloads):
//   {cache}/models--{org}--{name}/blobs/{etag}                 file contents
//   {cache}/models--{org}--{name}/snapshots/{commit}/{file}    -> ../../blobs/{etag}
//   {cache}/models--{org}--{name}/refs/{revision}              the commit, no newline
//   {cache}/models--{org}--{name}/.no_exist/{commit}/{file}    empty: the repo lacks {file}
//   {cache}/.locks/models--{org}--{name}/{etag}.lock           flock while a blob downloads
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace tfx::hub {

enum class ErrorKind {
    InvalidArgument,   // a malformed repo id, revision, file name or pattern
    Unauthorized,      // 401/403: gated or private repo, token missing or rejected
    RepoNotFound,      // no such repo on the Hub (or not in the cache, for remove)
    RevisionNotFound,  // no such branch, tag or commit
    FileNotFound,      // a file the model needs is not in the repo
    Offline,           // offline mode is on and the cache lacks a needed file
    Network,           // the endpoint cannot be reached or answers 5xx
    DiskFull,
    Integrity,  // a downloaded file has the wrong size or sha256
    Protocol,   // the server's answer is not what the Hub sends
    Io,         // another local file system failure
};

// Every failure carries a kind to branch on and a message a user can act on.
class HubError : public std::runtime_error {
  public:
    HubError(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const noexcept { return kind_; }

  private:
    ErrorKind kind_;
};

// One file's transfer: reported when it starts, as bytes arrive and when it is verified.
struct Progress {
    std::string repo_id;
    std::string file;                // path inside the repo
    std::uint64_t bytes = 0;         // on disk so far, resumed bytes included
    std::uint64_t total = 0;         // expected size
    std::uint64_t resumed_from = 0;  // bytes already on disk when this transfer began
    bool done = false;               // complete, verified and linked into the snapshot
};

struct HubOptions {
    // Branch, tag or commit; "main" unless this or the id's "@revision" says otherwise.
    std::optional<std::string> revision;
    // Never touch the network. HF_HUB_OFFLINE=1 (or true/yes/on) turns it on as well.
    bool offline = false;
    // Ask the Hub even when the cached snapshot is complete (e.g. a branch may have moved).
    // Off by default so that a cached model starts without a single request.
    bool check_for_updates = false;
    // fnmatch patterns on repo paths. Given any, they filter the files a model needs, every
    // file becomes optional, and an include without wildcards also names an extra file.
    std::vector<std::string> include, exclude;
    std::function<void(const Progress&)> on_progress;
    // Overrides of the environment: HF_HUB_CACHE / HF_HOME, HF_ENDPOINT, HF_TOKEN.
    std::optional<std::filesystem::path> cache_dir;
    std::optional<std::string> endpoint;
    std::optional<std::string> token;
};

struct DownloadResult {
    std::string repo_id;
    std::string revision;             // as asked ("main", a tag, a commit)
    std::string commit;               // what it resolved to
    std::filesystem::path snapshot;   // {cache}/models--org--name/snapshots/{commit}
    std::vector<std::string> files;   // present in the snapshot
    std::vector<std::string> absent;  // wanted, but the repo (or the offline cache) lacks them
    std::uint64_t bytes_downloaded = 0;
    bool used_network = false;
    std::vector<std::string> warnings;  // e.g. the Hub was unreachable and the cache was used
};

struct CachedRevision {
    std::string commit;
    std::vector<std::string> refs;  // branches and tags pointing at it
    std::filesystem::path snapshot;
    std::size_t files = 0;
};

struct CachedRepo {
    std::string repo_id;
    std::filesystem::path path;      // {cache}/models--org--name
    std::uint64_t size_on_disk = 0;  // blobs, counted once however many snapshots share them
    std::vector<CachedRevision> revisions;
};

// HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// ${XDG_CACHE_HOME:-~/.cache}/huggingface/hub: the same rule as huggingface_hub.
std::filesystem::path hub_cache_dir();

// A local folder is returned as is. Anything else must be a Hub id "org/name[@revision]":
// its snapshot folder after making sure the model's files are there (see download()).
std::filesystem::path resolve_model(const std::string& id_or_path, const HubOptions& options = {});

// Makes the snapshot of `repo` ("org/name[@revision]") hold the files a model needs:
// config.json, generation_config.json, model.safetensors or model.safetensors.index.json
// and its shards, tokenizer.json, tokenizer_config.json, special_tokens_map.json.
// config.json and the weights are required; the others are optional.
DownloadResult download(const std::string& repo, const HubOptions& options = {});

// The model repos in the cache, sorted by id.
std::vector<CachedRepo> list_cache(const std::optional<std::filesystem::path>& cache_dir = {});

// Deletes a model repo from the cache; returns the bytes freed.
std::uint64_t remove_from_cache(const std::string& repo_id, const std::optional<std::filesystem::path>& cache_dir = {});

}  // namespace tfx::hub
