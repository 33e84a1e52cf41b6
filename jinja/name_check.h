// Jinja2 rejects unknown filter and test names when it compiles a template, except inside an
// `if` statement or an inline if-expression, where the error waits until the code runs.
#pragma once

#include "jinja/ast.h"

namespace tfx::jinja {

// Throws Error(ErrorKind::syntax) for the first unknown name outside such conditional code.
void check_filter_and_test_names(const ast::Template& tmpl);

}  // namespace tfx::jinja
