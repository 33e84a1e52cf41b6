// Last-resort reporting for plugin code that takes the process down. A fault in plugin code
// cannot be survived in process (its memory may be corrupt), but it must never be silent:
// fatal-signal handlers and an atexit hook name the plugin (name, path) and what the host was
// doing with it, then let the process die as it would have. The plugin is found from the phase
// marker (CallScope, set around host calls into a plugin) and from the addresses on the stack
// (the code ranges of every plugin loaded in this process).
#pragma once

#include <filesystem>
#include <string_view>

namespace tfx::plugin_guard {

// Installs, once, the handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT (chained to
// the previous ones, on an alternate stack for the installing thread) and the atexit hook.
void install();

// Records the code range of a library dlopen()ed from `path` (its handle), for blame.
void register_library(void* handle, std::string_view name, const std::filesystem::path& path);

// The process is a probe child: the reporters stay silent (the parent reports what happened).
void set_probe_child();
bool is_probe_child();

// Marks a host call into a plugin ("create()", "forward", ...) for the reporters, for the
// scope's life, on this thread. Calls nest; the innermost one is reported. It keeps views, no
// copies: name, path and phase must outlive the scope (a plugin record's fields, a literal).
class CallScope {
  public:
    CallScope(std::string_view name, const std::filesystem::path& path, std::string_view phase) noexcept;
    ~CallScope();
    CallScope(const CallScope&) = delete;
    CallScope& operator=(const CallScope&) = delete;

  private:
    bool pushed_ = false;
};

}  // namespace tfx::plugin_guard
