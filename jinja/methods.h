// Python methods of str, dict, list and tuple that templates call (`s.strip()`, `d.items()`).
#pragma once

#include <optional>
#include <string_view>

#include "jinja/value.h"

namespace tfx::jinja {

// The bound method `receiver.name`, or nullopt when the type has no such (safe) method.
// Methods that would mutate (list.append, dict.update, ...) are refused, as the immutable
// sandbox does: the attribute is then undefined.
std::optional<Value> find_method(const Value& receiver, std::string_view name);

}  // namespace tfx::jinja
