// The one exception type the engine throws.
#pragma once

#include <stdexcept>
#include <string>

namespace tfx::jinja {

enum class ErrorKind {
    syntax,   // the template does not parse
    raised,   // the template called raise_exception(message); what() is that message verbatim
    runtime,  // rendering failed (undefined value used, type error, limit exceeded, ...)
};

class Error : public std::runtime_error {
  public:
    Error(ErrorKind kind, const std::string& message, int line = 0, int column = 0)
        : std::runtime_error(message), kind_(kind), line_(line), column_(column) {}

    ErrorKind kind() const noexcept { return kind_; }
    // 1-based position in the template source; 0 when unknown.
    int line() const noexcept { return line_; }
    int column() const noexcept { return column_; }

  private:
    ErrorKind kind_;
    int line_;
    int column_;
};

}  // namespace tfx::jinja
