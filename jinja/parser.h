// Builds the syntax tree from tokens, following Jinja2's grammar and operator precedence.
#pragma once

#include <string_view>

#include "jinja/ast.h"

namespace tfx::jinja {

// Throws Error(ErrorKind::syntax) with the line and column of the offending token.
ast::Template parse_template(std::string_view source);

}  // namespace tfx::jinja
