// Python semantics of operations on values, shared by the renderer, filters and tests:
// operators, attribute and item access, iteration, and argument binding for builtins.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jinja/ast.h"
#include "jinja/value.h"

namespace tfx::jinja {

[[noreturn]] void throw_runtime(const std::string& message);
// Jinja2's UndefinedError for an operation on an undefined value.
[[noreturn]] void throw_undefined(const Value& undefined);
const Value& require_defined(const Value& v);

// ---- operators (Python's) ----------------------------------------------------------------------
Value binary_op(ast::BinaryOp op, const Value& a, const Value& b);  // arithmetic only
Value unary_op(ast::UnaryOp op, const Value& v);
bool compare(ast::CompareOp op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);  // `item in container`
bool less_than(const Value& a, const Value& b);            // Python `<`; TypeError across types

// ---- access (Jinja's sandboxed environment.getattr / getitem) -----------------------------------
Value get_attr(const Value& object, std::string_view name);
Value get_item(const Value& object, const Value& key);
// object[start:stop:step]; raises (unlike get_item) when the object cannot be sliced.
Value slice(const Value& object, const std::optional<std::int64_t>& start, const std::optional<std::int64_t>& stop,
            const std::optional<std::int64_t>& step);

// ---- iteration ----------------------------------------------------------------------------------
std::vector<Value> iterate(const Value& v);  // list(v); consumes generators
std::int64_t py_len(const Value& v);         // len(v)
bool is_iterable(const Value& v);
Value make_generator(std::vector<Value> items);

// ---- calling builtins ---------------------------------------------------------------------------
// Binds call arguments to named parameters the way Python does.
class BoundArgs {
  public:
    BoundArgs(std::string_view function, const CallArgs& args, std::initializer_list<std::string_view> params,
              bool extra_positional_ok = false);

    bool has(std::size_t i) const { return values_[i] != nullptr; }
    const Value& get(std::size_t i) const;  // required parameter: TypeError when missing
    Value get_or(std::size_t i, Value fallback) const;
    std::optional<std::int64_t> int_or_none(std::size_t i) const;  // missing or None -> nullopt
    std::int64_t integer(std::size_t i, std::int64_t fallback) const;
    std::string string(std::size_t i, std::string fallback) const;  // str() of the argument
    bool boolean(std::size_t i, bool fallback) const;               // truthiness of the argument
    const std::vector<Value>& extra_positional() const { return extra_; }

  private:
    std::string function_;
    std::vector<std::string_view> names_;
    std::vector<const Value*> values_;
    std::vector<Value> extra_;
};

// An integer argument (bool counts); TypeError otherwise.
std::int64_t require_int(const Value& v, std::string_view what);

}  // namespace tfx::jinja
