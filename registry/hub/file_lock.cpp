#include "registry/hub/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "registry/hub/hub.h"

namespace tfx::hub {

FileLock::FileLock(const std::filesystem::path& path) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
        throw HubError(ErrorKind::Io, "cannot open lock file " + path.string() + ": " + std::strerror(errno));
    }
    while (::flock(fd_, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        const int error = errno;
        ::close(fd_);
        throw HubError(ErrorKind::Io, "cannot lock " + path.string() + ": " + std::strerror(error));
    }
}

FileLock::~FileLock() {
    // Closing releases the lock. The file stays: unlinking it could let a third process
    // lock a fresh inode while a second one still waits on the old one.
    ::close(fd_);
}

}  // namespace tfx::hub
