// One model repo's folder in the Hub cache, in huggingface_hub's layout (see hub.h). Every
// write is atomic (a temporary name, then rename), so a reader, or a crash, never sees a
// half-written ref or a missing snapshot link.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace tfx::hub {

class RepoCache {
  public:
    RepoCache(const std::filesystem::path& cache_dir, const std::string& repo_id);

    const std::filesystem::path& root() const { return root_; }
    std::filesystem::path blob(const std::string& etag) const;
    std::filesystem::path snapshot(const std::string& commit) const;
    std::filesystem::path pointer(const std::string& commit, const std::string& file) const;
    std::filesystem::path lock(const std::string& etag) const;

    // The commit a revision stands for, from the cache alone: the revision itself when it is
    // a commit hash, else refs/{revision} when that holds a valid commit hash.
    std::optional<std::string> commit_for(const std::string& revision) const;
    // Records refs/{revision} = commit (nothing to record when the revision is the commit).
    void write_ref(const std::string& revision, const std::string& commit) const;

    // snapshots/{commit}/{file} leads to an existing file.
    bool has_file(const std::string& commit, const std::string& file) const;
    // .no_exist/{commit}/{file}: the Hub said the repo lacks it at that commit.
    bool is_known_absent(const std::string& commit, const std::string& file) const;
    void mark_absent(const std::string& commit, const std::string& file) const;
    // Points snapshots/{commit}/{file} at ../../blobs/{etag} (relative, as Python does).
    void link(const std::string& commit, const std::string& file, const std::string& etag) const;

  private:
    std::filesystem::path cache_dir_;
    std::string folder_;  // models--org--name
    std::filesystem::path root_;
};

// A name beside `path` that no other thread or process uses: for write-then-rename.
std::filesystem::path temporary_sibling(const std::filesystem::path& path);

// Throws HubError(DiskFull) for ENOSPC/EDQUOT, HubError(Io) otherwise.
[[noreturn]] void throw_io_error(const std::string& action, const std::filesystem::path& path, int error_number);

}  // namespace tfx::hub
