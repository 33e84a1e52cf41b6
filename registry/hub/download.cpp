// download() and resolve_model(): the cache first, the Hub when the cache cannot answer.
#include <system_error>

#include "registry/hub/cache_layout.h"
#include "registry/hub/environment.h"
#include "registry/hub/file_fetch.h"
#include "registry/hub/http_client.h"
#include "registry/hub/hub.h"
#include "registry/hub/model_files.h"
#include "registry/hub/names.h"

namespace tfx::hub {
namespace {

namespace fs = std::filesystem;

// The cache alone: a file is there, known absent (.no_exist), or unknown.
class CacheSource : public FileSource {
  public:
    CacheSource(const RepoCache& cache, std::string commit) : cache_(cache), commit_(std::move(commit)) {}
    FileState get(const std::string& file) override {
        if (cache_.has_file(commit_, file)) return FileState::Present;
        return cache_.is_known_absent(commit_, file) ? FileState::Absent : FileState::Unknown;
    }
    fs::path path(const std::string& file) const override { return cache_.pointer(commit_, file); }

  private:
    const RepoCache& cache_;
    std::string commit_;
};

// The Hub. The first answer pins the commit, so every later file comes from the same one
// even if the branch moves meanwhile (and files already in that snapshot need no request).
class HubSource : public FileSource {
  public:
    HubSource(FetchContext& context, std::string revision) : context_(context), revision_(std::move(revision)) {}
    FileState get(const std::string& file) override {
        const FetchedFile fetched = fetch_file(context_, commit_.empty() ? revision_ : commit_, file);
        if (commit_.empty()) commit_ = fetched.commit;
        return fetched.state;
    }
    fs::path path(const std::string& file) const override { return context_.cache.pointer(commit_, file); }
    const std::string& commit() const { return commit_; }

  private:
    FetchContext& context_;
    std::string revision_;
    std::string commit_;
};

struct Request {
    RepoRef ref;
    std::string label;  // "org/name@revision", for messages
    fs::path cache_dir;
    RepoCache cache;
    FileFilter filter;
};

DownloadResult make_result(const Request& request, const std::string& commit, ModelFiles files) {
    DownloadResult result;
    result.repo_id = request.ref.id;
    result.revision = request.ref.revision;
    result.commit = commit;
    result.snapshot = request.cache.snapshot(commit);
    result.files = std::move(files.present);
    result.absent = std::move(files.absent);
    return result;
}

// What the cache alone can give. `missing` names the first file it cannot vouch for: a
// required one, or (unless `optional_may_be_missing`) an optional one the Hub was never
// asked about.
struct CacheAnswer {
    std::optional<DownloadResult> result;
    std::string missing;
};

CacheAnswer look_in_cache(const Request& request, bool optional_may_be_missing) {
    const std::optional<std::string> commit = request.cache.commit_for(request.ref.revision);
    if (!commit) return {std::nullopt, "config.json"};
    CacheSource source(request.cache, *commit);
    ModelFiles files = collect_model_files(source, request.filter, request.label);
    if (files.unknown_required) return {std::nullopt, *files.unknown_required};
    if (!files.unknown_optional.empty() && !optional_may_be_missing)
        return {std::nullopt, files.unknown_optional.front()};
    files.absent.insert(files.absent.end(), files.unknown_optional.begin(), files.unknown_optional.end());
    return {make_result(request, *commit, std::move(files)), ""};
}

std::string cache_state(const Request& request, const std::string& missing) {
    std::error_code ec;
    if (!fs::exists(request.cache.root(), ec)) {
        return "the cache holds no copy of " + request.ref.id + " (looked in " + request.cache_dir.string() + ")";
    }
    const std::optional<std::string> commit = request.cache.commit_for(request.ref.revision);
    if (!commit) {
        return "the cache has " + request.ref.id + " but not revision '" + request.ref.revision + "' (looked in " +
               request.cache.root().string() + ")";
    }
    return "the cached copy of " + request.label + " (commit " + *commit + ") lacks " + missing;
}

DownloadResult from_hub(const Request& request, const HubOptions& options) {
    const std::string endpoint = options.endpoint.value_or(env::endpoint());
    HttpClient http(endpoint, options.token ? options.token : env::token());
    FetchContext context{http, request.cache, endpoint, request.ref.id, options.on_progress};
    HubSource source(context, request.ref.revision);
    ModelFiles files = collect_model_files(source, request.filter, request.label);
    if (source.commit().empty()) {
        throw HubError(ErrorKind::FileNotFound, "none of the requested files exist in " + request.label);
    }
    DownloadResult result = make_result(request, source.commit(), std::move(files));
    result.bytes_downloaded = context.bytes_downloaded;
    result.used_network = true;
    return result;
}

}  // namespace

DownloadResult download(const std::string& repo, const HubOptions& options) {
    const RepoRef ref = parse_repo_ref(repo, options.revision.value_or(""));
    const fs::path cache_dir = options.cache_dir.value_or(hub_cache_dir());
    const std::string label = ref.id + "@" + ref.revision;
    const Request request{ref, label, cache_dir, RepoCache(cache_dir, ref.id),
                          FileFilter(options.include, options.exclude)};

    if (options.offline || env::offline()) {
        CacheAnswer cached = look_in_cache(request, true);
        if (cached.result) return std::move(*cached.result);
        throw HubError(ErrorKind::Offline, "offline mode is on (HF_HUB_OFFLINE or --offline) and " + cached.missing +
                                               " of " + label +
                                               " is not in the cache: " + cache_state(request, cached.missing) +
                                               ". Download it once with the network on.");
    }
    if (!options.check_for_updates) {
        CacheAnswer cached = look_in_cache(request, false);
        if (cached.result) return std::move(*cached.result);
    }
    try {
        return from_hub(request, options);
    } catch (const HubError& error) {
        if (error.kind() != ErrorKind::Network) throw;
        // The Hub is unreachable: a cached snapshot still serves, as in huggingface_hub.
        CacheAnswer cached = look_in_cache(request, true);
        if (cached.result) {
            cached.result->warnings.push_back(std::string(error.what()) + "; using the cached snapshot " +
                                              cached.result->commit);
            return std::move(*cached.result);
        }
        throw HubError(ErrorKind::Network, std::string(error.what()) + ". Is the network up? Also, " +
                                               cache_state(request, cached.missing) + ".");
    }
}

fs::path resolve_model(const std::string& id_or_path, const HubOptions& options) {
    std::error_code ec;
    if (fs::is_directory(id_or_path, ec)) return id_or_path;
    if (id_or_path.starts_with('/') || id_or_path.starts_with("./") || id_or_path.starts_with("../") ||
        id_or_path.starts_with('~')) {
        throw HubError(ErrorKind::InvalidArgument, id_or_path + ": no such model folder");
    }
    try {
        return download(id_or_path, options).snapshot;
    } catch (const HubError& error) {
        if (error.kind() != ErrorKind::RepoNotFound) throw;
        throw HubError(ErrorKind::RepoNotFound,
                       std::string(error.what()) + "; nor is there a local folder '" + id_or_path + "'");
    }
}

}  // namespace tfx::hub
