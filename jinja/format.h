// Python string formatting: `fmt % args` (also the `format` filter) and str.format().
#pragma once

#include <string>
#include <string_view>

#include "jinja/value.h"

namespace tfx::jinja {

// args: a tuple supplies several values, a dict supplies %(name)s, anything else is one value.
std::string percent_format(std::string_view fmt, const Value& args);
std::string str_format(std::string_view fmt, const CallArgs& args);

}  // namespace tfx::jinja
