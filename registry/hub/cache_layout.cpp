#include "registry/hub/cache_layout.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include "registry/hub/hub.h"
#include "registry/hub/names.h"

namespace tfx::hub {
namespace {

namespace fs = std::filesystem;

void make_dirs(const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw_io_error("create folder", dir, ec.value());
}

void write_file_atomically(const fs::path& path, const std::string& text) {
    make_dirs(path.parent_path());
    const fs::path temp = temporary_sibling(path);
    {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        out << text;
        out.flush();
        if (!out) {
            const int error = errno;
            std::error_code ignored;
            fs::remove(temp, ignored);
            throw_io_error("write", path, error);
        }
    }
    std::error_code ec;
    fs::rename(temp, path, ec);
    if (ec) {
        std::error_code ignored;
        fs::remove(temp, ignored);
        throw_io_error("write", path, ec.value());
    }
}

}  // namespace

fs::path temporary_sibling(const fs::path& path) {
    static std::atomic<unsigned long> counter{0};
    return path.parent_path() / ("." + path.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                                 std::to_string(counter.fetch_add(1)));
}

void throw_io_error(const std::string& action, const fs::path& path, int error_number) {
    if (error_number == ENOSPC || error_number == EDQUOT) {
        throw HubError(ErrorKind::DiskFull, "disk full: cannot " + action + " " + path.string() +
                                                " (free some space or point HF_HUB_CACHE at a larger disk)");
    }
    throw HubError(ErrorKind::Io, "cannot " + action + " " + path.string() + ": " + std::strerror(error_number));
}

RepoCache::RepoCache(const fs::path& cache_dir, const std::string& repo_id)
    : cache_dir_(cache_dir), folder_(repo_folder_name(repo_id)), root_(cache_dir / folder_) {}

fs::path RepoCache::blob(const std::string& etag) const {
    return root_ / "blobs" / etag;
}
fs::path RepoCache::snapshot(const std::string& commit) const {
    return root_ / "snapshots" / commit;
}
fs::path RepoCache::pointer(const std::string& commit, const std::string& file) const {
    return snapshot(commit) / file;
}
fs::path RepoCache::lock(const std::string& etag) const {
    return cache_dir_ / ".locks" / folder_ / (etag + ".lock");
}

std::optional<std::string> RepoCache::commit_for(const std::string& revision) const {
    if (is_commit_hash(revision)) return revision;
    std::ifstream in(root_ / "refs" / revision);
    std::string commit;
    if (!(in >> commit) || !is_commit_hash(commit)) return std::nullopt;  // absent or not written by a Hub client
    return commit;
}

void RepoCache::write_ref(const std::string& revision, const std::string& commit) const {
    if (revision == commit || commit_for(revision) == commit) return;  // also spares read-only caches a write
    write_file_atomically(root_ / "refs" / revision, commit);          // no newline, as Python writes it
}

bool RepoCache::has_file(const std::string& commit, const std::string& file) const {
    std::error_code ec;
    return fs::is_regular_file(pointer(commit, file), ec);
}

bool RepoCache::is_known_absent(const std::string& commit, const std::string& file) const {
    std::error_code ec;
    return fs::exists(root_ / ".no_exist" / commit / file, ec);
}

void RepoCache::mark_absent(const std::string& commit, const std::string& file) const {
    write_file_atomically(root_ / ".no_exist" / commit / file, "");
}

void RepoCache::link(const std::string& commit, const std::string& file, const std::string& etag) const {
    const fs::path link_path = pointer(commit, file);
    make_dirs(link_path.parent_path());
    const fs::path target = blob(etag).lexically_relative(link_path.parent_path());
    // Symlink under a temporary name, then rename over: the link is never missing or partial.
    const fs::path temp = temporary_sibling(link_path);
    std::error_code ec;
    fs::create_symlink(target, temp, ec);
    if (ec) throw_io_error("create symlink", link_path, ec.value());
    fs::rename(temp, link_path, ec);
    if (ec) {
        std::error_code ignored;
        fs::remove(temp, ignored);
        throw_io_error("create symlink", link_path, ec.value());
    }
}

}  // namespace tfx::hub
