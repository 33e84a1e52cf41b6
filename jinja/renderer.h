// Walks a parsed template and produces its output: Jinja2's scoping (a new scope per loop
// iteration, macro and block; `set` writes the innermost scope), loop contexts, macros and
// call blocks, and the render limits.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "jinja/ast.h"
#include "jinja/jinja.h"

namespace tfx::jinja {

std::string render_template(const ast::Template& tmpl, const nlohmann::ordered_json& context,
                            const RenderOptions& options);

}  // namespace tfx::jinja
