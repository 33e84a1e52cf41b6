// Python's datetime.strftime in the C locale (what strftime_now() returns).
#pragma once

#include <string>
#include <string_view>

#include "jinja/jinja.h"

namespace tfx::jinja {

std::string strftime(const DateTime& t, std::string_view format);

}  // namespace tfx::jinja
