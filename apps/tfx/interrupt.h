// Ctrl-C for commands that stream: while an InterruptScope is alive, the first SIGINT only sets
// a flag that the command polls (it stops generating, flushes what it printed and throws
// Interrupted, which main turns into exit status 130); a second SIGINT kills at once.
// Header-only so that any subcommand can use it without a new translation unit.
#pragma once

#include <signal.h>

#include <csignal>
#include <stdexcept>

namespace tfx::cli {

// Exit status of a command stopped by Ctrl-C, as shells report it (128 + SIGINT).
inline constexpr int kInterruptedExitCode = 130;

// Thrown once an interrupted command has flushed its output.
struct Interrupted : std::runtime_error {
    Interrupted() : std::runtime_error("interrupted") {}
};

inline volatile std::sig_atomic_t& interrupt_flag() {
    static volatile std::sig_atomic_t flag = 0;
    return flag;
}

// True once SIGINT arrived inside an InterruptScope.
inline bool interrupted() {
    return interrupt_flag() != 0;
}

extern "C" inline void tfx_cli_on_sigint(int) {
    interrupt_flag() = 1;
}

// With `also_sigterm`, SIGTERM is caught the same way (commands that must clean up what they
// were writing, such as tfx convert).
class InterruptScope {
  public:
    explicit InterruptScope(bool also_sigterm = false) {
        interrupt_flag() = 0;
        struct sigaction action {};
        action.sa_handler = tfx_cli_on_sigint;
        sigemptyset(&action.sa_mask);
        action.sa_flags = SA_RESETHAND;  // the second Ctrl-C gets the default action: terminate
        installed_int_ = sigaction(SIGINT, &action, &previous_int_) == 0;
        if (also_sigterm) installed_term_ = sigaction(SIGTERM, &action, &previous_term_) == 0;
    }
    ~InterruptScope() {
        if (installed_int_) sigaction(SIGINT, &previous_int_, nullptr);
        if (installed_term_) sigaction(SIGTERM, &previous_term_, nullptr);
    }
    InterruptScope(const InterruptScope&) = delete;
    InterruptScope& operator=(const InterruptScope&) = delete;

  private:
    struct sigaction previous_int_ {
    }, previous_term_{};
    bool installed_int_ = false, installed_term_ = false;
};

}  // namespace tfx::cli
