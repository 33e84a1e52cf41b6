// Jinja2's builtin filters (`x | name`) and tests (`x is name`), plus transformers' `tojson`.
#pragma once

#include <string_view>

#include "jinja/value.h"

namespace tfx::jinja {

using FilterFn = Value (*)(const Value& operand, const CallArgs& args);
using TestFn = bool (*)(const Value& operand, const CallArgs& args);

FilterFn find_filter(std::string_view name);  // nullptr when unknown
TestFn find_test(std::string_view name);      // nullptr when unknown

// Runtime error "No filter named ..." / "No test named ..." when unknown, as Jinja2 raises it.
Value call_filter(std::string_view name, const Value& operand, const CallArgs& args);
bool call_test(std::string_view name, const Value& operand, const CallArgs& args);

}  // namespace tfx::jinja
