// Python's str() and repr() of values: what `{{ x }}` prints.
#pragma once

#include <string>
#include <string_view>

#include "jinja/value.h"

namespace tfx::jinja {

std::string float_repr(double d);             // repr(float): shortest round-trip form
std::string string_repr(std::string_view s);  // repr(str): quoted and escaped
std::string py_repr(const Value& v);
std::string py_str(const Value& v);  // str(); an undefined value prints as ""

// Marks a container as being printed, as CPython's Py_ReprEnter does: printing it again from
// inside itself is a cycle (shown as "[...]", "{...}"). Also bounds the nesting of printing,
// which namespaces could otherwise make arbitrarily deep.
class ReprScope {
  public:
    explicit ReprScope(const void* container);
    ~ReprScope();
    ReprScope(const ReprScope&) = delete;
    ReprScope& operator=(const ReprScope&) = delete;
    bool cycle() const { return cycle_; }

  private:
    bool cycle_ = false;
};

}  // namespace tfx::jinja
