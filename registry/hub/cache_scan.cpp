// list_cache() and remove_from_cache(): the cache as folders, read without the network.
#include <algorithm>
#include <fstream>
#include <map>
#include <system_error>

#include "registry/hub/cache_layout.h"
#include "registry/hub/hub.h"
#include "registry/hub/names.h"

namespace tfx::hub {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kModelPrefix = "models--";

// Bytes of the regular files under `dir`, symlinks not followed: what deleting it frees.
std::uint64_t disk_usage(const fs::path& dir) {
    std::uint64_t total = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        std::error_code size_ec;
        if (it->is_regular_file(size_ec) && !it->is_symlink(size_ec)) {
            const auto size = it->file_size(size_ec);
            if (!size_ec) total += size;
        }
    }
    return total;
}

// "models--org--name" -> "org/name"; nullopt for anything that is not a model repo folder.
std::optional<std::string> repo_id_of(const std::string& folder) {
    if (!folder.starts_with(kModelPrefix)) return std::nullopt;
    std::string id = folder.substr(kModelPrefix.size());
    if (const std::size_t sep = id.find("--"); sep != std::string::npos) id.replace(sep, 2, "/");
    if (!is_valid_repo_id(id)) return std::nullopt;
    return id;
}

CachedRepo scan_repo(const std::string& repo_id, const fs::path& root) {
    CachedRepo repo{repo_id, root, disk_usage(root), {}};
    std::map<std::string, std::vector<std::string>> refs_by_commit;
    std::error_code ec;
    const fs::path refs = root / "refs";
    for (auto it = fs::recursive_directory_iterator(refs, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        std::error_code file_ec;
        if (!it->is_regular_file(file_ec)) continue;
        std::ifstream in(it->path());
        std::string commit;
        if (in >> commit) refs_by_commit[commit].push_back(it->path().lexically_relative(refs).generic_string());
    }
    for (auto it = fs::directory_iterator(root / "snapshots", ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        const std::string commit = it->path().filename().string();
        CachedRevision revision{commit, refs_by_commit[commit], it->path(), 0};
        std::sort(revision.refs.begin(), revision.refs.end());
        std::error_code walk_ec;
        for (auto file = fs::recursive_directory_iterator(it->path(), walk_ec);
             !walk_ec && file != fs::recursive_directory_iterator(); file.increment(walk_ec)) {
            std::error_code type_ec;
            if (!file->is_directory(type_ec)) ++revision.files;
        }
        repo.revisions.push_back(std::move(revision));
    }
    std::sort(repo.revisions.begin(), repo.revisions.end(),
              [](const CachedRevision& a, const CachedRevision& b) { return a.commit < b.commit; });
    return repo;
}

}  // namespace

std::vector<CachedRepo> list_cache(const std::optional<fs::path>& cache_dir) {
    const fs::path dir = cache_dir.value_or(hub_cache_dir());
    std::vector<CachedRepo> repos;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        std::error_code type_ec;
        if (!it->is_directory(type_ec)) continue;
        if (auto id = repo_id_of(it->path().filename().string())) repos.push_back(scan_repo(*id, it->path()));
    }
    std::sort(repos.begin(), repos.end(),
              [](const CachedRepo& a, const CachedRepo& b) { return a.repo_id < b.repo_id; });
    return repos;
}

std::uint64_t remove_from_cache(const std::string& repo_id, const std::optional<fs::path>& cache_dir) {
    check_repo_id(repo_id);  // the id becomes a path to delete: no traversal
    const fs::path dir = cache_dir.value_or(hub_cache_dir());
    const RepoCache cache(dir, repo_id);
    std::error_code ec;
    if (!fs::is_directory(cache.root(), ec)) {
        throw HubError(ErrorKind::RepoNotFound, repo_id + " is not in the cache (" + dir.string() + ")");
    }
    const std::uint64_t freed = disk_usage(cache.root());
    fs::remove_all(cache.root(), ec);
    if (ec) throw_io_error("remove", cache.root(), ec.value());
    fs::remove_all(dir / ".locks" / cache.root().filename(),
                   ec);  // only lock files: failing here harms nothing
    return freed;
}

}  // namespace tfx::hub
