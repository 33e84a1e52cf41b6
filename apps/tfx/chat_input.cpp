#include "apps/tfx/chat_input.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>

namespace tfx::cli {
namespace {

volatile std::sig_atomic_t g_sigint = 0;
int g_wake_read = -1;
int g_wake_write = -1;
struct sigaction g_previous {};
bool g_installed = false;

extern "C" void tfx_chat_on_sigint(int) {
    g_sigint = 1;
    if (g_wake_write >= 0) {
        const int saved = errno;
        const char byte = 1;
        [[maybe_unused]] const ssize_t n = write(g_wake_write, &byte, 1);  // non-blocking: a full pipe is fine
        errno = saved;
    }
}

}  // namespace

ChatInterrupts::ChatInterrupts() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
        g_wake_read = fds[0];
        g_wake_write = fds[1];
    }
    g_sigint = 0;
    struct sigaction action {};
    action.sa_handler = tfx_chat_on_sigint;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    g_installed = sigaction(SIGINT, &action, &g_previous) == 0;
}

ChatInterrupts::~ChatInterrupts() {
    if (g_installed) sigaction(SIGINT, &g_previous, nullptr);
    g_installed = false;
    if (g_wake_read >= 0) close(g_wake_read);
    if (g_wake_write >= 0) close(g_wake_write);
    g_wake_read = g_wake_write = -1;
}

bool ChatInterrupts::pending() const {
    return g_sigint != 0;
}

void ChatInterrupts::clear() {
    g_sigint = 0;
    char drain[64];
    while (g_wake_read >= 0 && ::read(g_wake_read, drain, sizeof drain) > 0) {
    }
}

int ChatInterrupts::wake_fd() const {
    return g_wake_read;
}

LineStatus LineReader::read(std::string& line) {
    for (;;) {
        if (const size_t newline = buffer_.find('\n'); newline != std::string::npos) {
            line = buffer_.substr(0, newline);
            buffer_.erase(0, newline + 1);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            return LineStatus::kLine;
        }
        if (eof_) {
            if (buffer_.empty()) return LineStatus::kEnd;
            line = std::move(buffer_);
            buffer_.clear();
            if (!line.empty() && line.back() == '\r') line.pop_back();
            return LineStatus::kLine;
        }
        if (interrupts_.pending()) return LineStatus::kInterrupted;
        pollfd fds[2] = {{fd_, POLLIN, 0}, {interrupts_.wake_fd(), POLLIN, 0}};
        const nfds_t count = interrupts_.wake_fd() >= 0 ? 2 : 1;
        if (poll(fds, count, -1) < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error(std::string("reading the input: ") + std::strerror(errno));
        }
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) == 0) continue;  // woken by SIGINT
        char chunk[4096];
        const ssize_t n = ::read(fd_, chunk, sizeof chunk);
        if (n > 0) {
            buffer_.append(chunk, static_cast<size_t>(n));
        } else if (n == 0) {
            eof_ = true;
        } else if (errno != EINTR && errno != EAGAIN) {
            if (errno == EIO) {  // the terminal went away (hang-up)
                eof_ = true;
                continue;
            }
            throw std::runtime_error(std::string("reading the input: ") + std::strerror(errno));
        }
    }
}

}  // namespace tfx::cli
