#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace tfx::log {
namespace {

Level initial_threshold() {
    Level level = Level::warn;
    if (const char* env = std::getenv("TFX_LOG_LEVEL"); env != nullptr && !parse_level(env, level)) {
        std::fprintf(stderr,
                     "[tfx warn] TFX_LOG_LEVEL='%s' is not one of trace, debug, info, "
                     "warn, error, off; using warn\n",
                     env);
    }
    return level;
}

std::atomic<Level>& current() {
    static std::atomic<Level> level{initial_threshold()};
    return level;
}

const char* level_name(Level level) {
    switch (level) {
        case Level::trace:
            return "trace";
        case Level::debug:
            return "debug";
        case Level::info:
            return "info";
        case Level::warn:
            return "warn";
        case Level::error:
            return "error";
        case Level::off:
            break;
    }
    return "off";
}

}  // namespace

Level threshold() {
    return current().load(std::memory_order_relaxed);
}
void set_threshold(Level level) {
    current().store(level, std::memory_order_relaxed);
}

bool parse_level(std::string_view name, Level& out) {
    for (int i = 0; i <= static_cast<int>(Level::off); ++i) {
        if (name == level_name(static_cast<Level>(i))) {
            out = static_cast<Level>(i);
            return true;
        }
    }
    return false;
}

void write(Level level, std::string_view source, std::string_view message) {
    if (level < threshold() || level == Level::off) return;
    static std::mutex mutex;  // keeps lines from different threads whole
    std::lock_guard lock(mutex);
    std::fprintf(stderr, "[%.*s %s] %.*s\n", static_cast<int>(source.size()), source.data(), level_name(level),
                 static_cast<int>(message.size()), message.data());
}

}  // namespace tfx::log
