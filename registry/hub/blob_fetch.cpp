#include "registry/hub/blob_fetch.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <system_error>
#include <thread>
#include <vector>

#include "registry/hub/cache_layout.h"
#include "registry/hub/http_client.h"
#include "registry/hub/names.h"
#include "registry/hub/sha256.h"

namespace tfx::hub {
namespace {

namespace fs = std::filesystem;

// Attempts in a row that may end without a single new byte before giving up.
constexpr int kStalledAttempts = 5;
// Stalls (HF_HUB_DOWNLOAD_TIMEOUT seconds without a byte) in a row, with no byte between them,
// before giving up: one fresh connection is worth trying, but waiting the timeout out
// kStalledAttempts times would multiply it.
constexpr int kStallsWithoutProgress = 2;

// The .incomplete file, written through a plain descriptor so that ENOSPC is seen as such.
class PartialFile {
  public:
    explicit PartialFile(const fs::path& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) throw_io_error("create", path, errno);
    }
    ~PartialFile() {
        if (fd_ >= 0) ::close(fd_);
    }
    PartialFile(const PartialFile&) = delete;
    PartialFile& operator=(const PartialFile&) = delete;

    std::uint64_t size() const {
        struct stat st {};
        if (::fstat(fd_, &st) != 0) throw_io_error("stat", path_, errno);
        return static_cast<std::uint64_t>(st.st_size);
    }

    void truncate() {
        if (::ftruncate(fd_, 0) != 0) throw_io_error("truncate", path_, errno);
    }

    void append(const char* data, std::size_t size) {
        if (::lseek(fd_, 0, SEEK_END) < 0) throw_io_error("seek in", path_, errno);
        while (size > 0) {
            const ssize_t written = ::write(fd_, data, size);
            if (written < 0) {
                if (errno == EINTR) continue;
                throw_io_error("write", path_, errno);
            }
            data += written;
            size -= static_cast<std::size_t>(written);
        }
    }

    // Feeds the first `bytes` bytes to `hash`: what an earlier attempt already stored.
    void hash_prefix(Sha256& hash, std::uint64_t bytes) const {
        std::vector<char> buffer(1 << 20);
        std::uint64_t offset = 0;
        while (offset < bytes) {
            const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), bytes - offset));
            const ssize_t got = ::pread(fd_, buffer.data(), want, static_cast<off_t>(offset));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) throw_io_error("read", path_, got < 0 ? errno : EIO);
            hash.update(buffer.data(), static_cast<std::size_t>(got));
            offset += static_cast<std::uint64_t>(got);
        }
    }

    void sync_and_close() {
        if (::fsync(fd_) != 0) throw_io_error("flush", path_, errno);
        const int fd = fd_;
        fd_ = -1;
        if (::close(fd) != 0) throw_io_error("close", path_, errno);
    }

  private:
    fs::path path_;
    int fd_ = -1;
};

void check_free_space(const fs::path& dir, std::uint64_t needed) {
    struct statvfs st {};
    if (::statvfs(dir.c_str(), &st) != 0) return;  // unknown: the writes will tell
    const std::uint64_t free_bytes = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
    if (free_bytes < needed) {
        throw HubError(ErrorKind::DiskFull, "disk full: " + std::to_string(needed) + " bytes are needed in " +
                                                dir.string() + " but only " + std::to_string(free_bytes) +
                                                " are free (free some space or point HF_HUB_CACHE at a larger disk)");
    }
}

// "bytes 100-199/200" -> 100.
std::uint64_t content_range_start(const std::string& value) {
    std::uint64_t start = 0;
    std::size_t i = value.find(' ');
    for (i = (i == std::string::npos ? value.size() : i + 1); i < value.size() && value[i] >= '0' && value[i] <= '9';
         ++i) {
        start = start * 10 + static_cast<std::uint64_t>(value[i] - '0');
    }
    return start;
}

}  // namespace

std::uint64_t fetch_blob(HttpClient& http, const BlobSource& source, const fs::path& blob, Progress progress,
                         const std::function<void(const Progress&)>& on_progress) {
    const fs::path incomplete = blob.string() + ".incomplete";
    const bool lfs = is_sha256(source.etag);
    PartialFile file(incomplete);
    std::uint64_t have = file.size();
    if (have > source.size) {
        file.truncate();
        have = 0;
    }
    Sha256 hash;
    if (lfs) file.hash_prefix(hash, have);
    check_free_space(incomplete.parent_path(), source.size - have);

    progress.bytes = progress.resumed_from = have;
    progress.total = source.size;
    progress.done = false;
    const auto report = [&] {
        if (on_progress) on_progress(progress);
    };
    report();

    auto restart = [&] {
        file.truncate();
        have = 0;
        hash = Sha256();
        progress.bytes = progress.resumed_from = 0;
    };
    BodySink sink;
    sink.begin = [&](const HttpResponse& response) {
        const std::string range = response.header("content-range");
        if (response.status == 206 && !range.empty() && content_range_start(range) != have) {
            throw HubError(ErrorKind::Protocol, response.url + " answered a Range request for byte " +
                                                    std::to_string(have) + " with '" + range + "'");
        }
        if (response.status != 206 && have > 0) restart();  // the server ignored the Range: it sends everything
    };
    sink.write = [&](const char* data, std::size_t size) {
        if (size > source.size - have) {
            throw HubError(ErrorKind::Integrity, progress.file + ": the server sent more than the " +
                                                     std::to_string(source.size) + " bytes the Hub announced");
        }
        file.append(data, size);
        if (lfs) hash.update(data, size);
        have += size;
        progress.bytes = have;
        report();
    };

    std::uint64_t transferred = 0;
    for (int stalled = 0, stalls = 0; have < source.size;) {
        const std::uint64_t before = have;
        std::string failure;
        bool stall = false;
        try {
            const HttpResponse response = http.get(source.url, have, sink);
            if (response.status == 416) {
                restart();  // our partial file does not fit the server's: start over
                failure = "the server refused to resume at byte " + std::to_string(before);
            } else if (response.status == 401 || response.status == 403) {
                throw HubError(ErrorKind::Unauthorized, "the download of " + progress.file + " was refused (HTTP " +
                                                            std::to_string(response.status) + " from " + response.url +
                                                            ")");
            } else if (response.status != 200 && response.status != 206) {
                throw HubError(response.status >= 500 ? ErrorKind::Network : ErrorKind::Protocol,
                               "the download of " + progress.file + " failed: HTTP " + std::to_string(response.status) +
                                   " from " + response.url);
            } else if (have < source.size) {
                failure = "the server sent " + std::to_string(have) + " of " + std::to_string(source.size) + " bytes";
            }
        } catch (const TransferStalled& e) {
            failure = e.what();
            stall = true;
        } catch (const TransferInterrupted& e) {
            failure = e.what();
        }
        transferred += have > before ? have - before : 0;
        if (have >= source.size) break;
        stalled = have > before ? 0 : stalled + 1;
        // A stall comes after the attempt's last byte, so one that follows progress counts too.
        stalls = stall ? (have > before ? 1 : stalls + 1) : (have > before ? 0 : stalls);
        if (stalled == kStalledAttempts || stalls == kStallsWithoutProgress) {
            const std::string gave_up = stalls == kStallsWithoutProgress
                                            ? std::to_string(kStallsWithoutProgress) + " stalls in a row"
                                            : std::to_string(kStalledAttempts) + " attempts without progress";
            throw HubError(ErrorKind::Network, progress.file + ": " + failure + "; gave up after " + gave_up +
                                                   ". The " + std::to_string(have) + " bytes received are kept in " +
                                                   incomplete.string() + " and the next run resumes from there");
        }
        if (stalled > 0) std::this_thread::sleep_for(std::chrono::milliseconds(250 * stalled));
    }

    if (lfs) {
        const std::string digest = hash.hex_digest();
        if (digest != source.etag) {
            std::error_code ignored;
            fs::remove(incomplete, ignored);  // resuming a corrupt file would only corrupt it again
            throw HubError(ErrorKind::Integrity, progress.file + ": sha256 " + digest + " does not match the Hub's " +
                                                     source.etag +
                                                     "; the download was discarded, run the command again");
        }
    }
    file.sync_and_close();
    std::error_code ec;
    fs::rename(incomplete, blob, ec);
    if (ec) throw_io_error("move into place", blob, ec.value());
    return transferred;
}

}  // namespace tfx::hub
