// Leveled logging to stderr. The threshold comes from TFX_LOG_LEVEL (trace, debug, info,
// warn, error, off; default warn) and can be changed by the host application.
#pragma once

#include <string_view>

#include "tfx/host.h"

namespace tfx::log {

enum class Level { trace = 0, debug = 1, info = 2, warn = 3, error = 4, off = 5 };

Level threshold();
void set_threshold(Level level);
// Parses a level name; returns false for an unknown name.
bool parse_level(std::string_view name, Level& out);
void write(Level level, std::string_view source, std::string_view message);

inline void info(std::string_view m) {
    write(Level::info, "tfx", m);
}

}  // namespace tfx::log
