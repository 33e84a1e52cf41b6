// transformers' `tojson` filter: Python json.dumps(x, ensure_ascii=False, indent=None,
// separators=None, sort_keys=False) with those four options settable.
#pragma once

#include <optional>
#include <string>

#include "jinja/value.h"

namespace tfx::jinja {

struct JsonOptions {
    bool ensure_ascii = false;
    std::optional<std::string> indent;  // json.dumps(indent=N) is N spaces; a string is used as is
    std::optional<std::pair<std::string, std::string>> separators;  // (item, key)
    bool sort_keys = false;
};

std::string to_json(const Value& value, const JsonOptions& options);

}  // namespace tfx::jinja
