// An exclusive flock(2) on a lock file, held for the object's lifetime. huggingface_hub's
// filelock takes the same kind of lock on the same path, so tfx and Python processes (and
// threads, since each lock opens its own file description) wait for each other.
#pragma once

#include <filesystem>

namespace tfx::hub {

class FileLock {
  public:
    explicit FileLock(const std::filesystem::path& path);  // blocks until the lock is ours
    ~FileLock();
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

  private:
    int fd_ = -1;
};

}  // namespace tfx::hub
