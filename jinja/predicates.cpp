// Jinja2's builtin tests: `x is defined`, `x is string`, `x is divisibleby 3`, ...
#include <algorithm>
#include <string>
#include <utility>

#include "jinja/builtins.h"
#include "jinja/pyrepr.h"
#include "jinja/pystr.h"
#include "jinja/runtime.h"

namespace tfx::jinja {
namespace {

const Value& only_arg(std::string_view test, const CallArgs& args) {
    BoundArgs a(test, args, {"other"});
    return a.get(0);
}

void no_args(std::string_view test, const CallArgs& args) {
    BoundArgs(test, args, {});
}

bool remainder_is(const Value& v, std::int64_t remainder) {
    return py_equal(binary_op(ast::BinaryOp::mod, v, Value::integer(2)), Value::integer(remainder));
}

bool test_defined(const Value& v, const CallArgs& a) {
    return no_args("defined", a), !v.is_undefined();
}
bool test_undefined(const Value& v, const CallArgs& a) {
    return no_args("undefined", a), v.is_undefined();
}
bool test_none(const Value& v, const CallArgs& a) {
    return no_args("none", a), v.is_none();
}
bool test_boolean(const Value& v, const CallArgs& a) {
    return no_args("boolean", a), v.is_bool();
}
bool test_true(const Value& v, const CallArgs& a) {
    return no_args("true", a), v.is_bool() && v.as_bool();
}
bool test_false(const Value& v, const CallArgs& a) {
    return no_args("false", a), v.is_bool() && !v.as_bool();
}
bool test_integer(const Value& v, const CallArgs& a) {
    return no_args("integer", a), v.is_int();
}
bool test_float(const Value& v, const CallArgs& a) {
    return no_args("float", a), v.is_float();
}
bool test_number(const Value& v, const CallArgs& a) {
    return no_args("number", a), v.is_number();
}
bool test_string(const Value& v, const CallArgs& a) {
    return no_args("string", a), v.is_string();
}
bool test_mapping(const Value& v, const CallArgs& a) {
    return no_args("mapping", a), v.is_dict();
}
bool test_iterable(const Value& v, const CallArgs& a) {
    return no_args("iterable", a), is_iterable(v);
}
bool test_escaped(const Value&, const CallArgs& a) {
    return no_args("escaped", a), false;
}

bool test_sequence(const Value& v, const CallArgs& a) {
    no_args("sequence", a);  // anything with len() and [] (a dict too, and Undefined)
    return v.is_undefined() || v.is_string() || v.is_dict() || (v.is_sequence() && v.seq().subscriptable());
}

bool test_callable(const Value& v, const CallArgs& a) {
    no_args("callable", a);
    return v.is_undefined() || (v.is_object() && v.obj().is_callable());
}

bool test_odd(const Value& v, const CallArgs& a) {
    return no_args("odd", a), remainder_is(v, 1);
}
bool test_even(const Value& v, const CallArgs& a) {
    return no_args("even", a), remainder_is(v, 0);
}

bool test_divisibleby(const Value& v, const CallArgs& args) {
    BoundArgs a("divisibleby", args, {"num"});
    const Value r = binary_op(ast::BinaryOp::mod, v, a.get(0));
    return py_equal(r, Value::integer(0));
}

bool test_lower(const Value& v, const CallArgs& a) {
    return no_args("lower", a), pystr::islower(py_str(v));
}
bool test_upper(const Value& v, const CallArgs& a) {
    return no_args("upper", a), pystr::isupper(py_str(v));
}
bool test_sameas(const Value& v, const CallArgs& a) {
    return v.same_object(only_arg("sameas", a));
}
bool test_in(const Value& v, const CallArgs& a) {
    return contains(only_arg("in", a), v);
}
bool test_eq(const Value& v, const CallArgs& a) {
    return compare(ast::CompareOp::eq, v, only_arg("eq", a));
}
bool test_ne(const Value& v, const CallArgs& a) {
    return compare(ast::CompareOp::ne, v, only_arg("ne", a));
}
bool test_lt(const Value& v, const CallArgs& a) {
    return compare(ast::CompareOp::lt, v, only_arg("lt", a));
}
bool test_le(const Value& v, const CallArgs& a) {
    return compare(ast::CompareOp::le, v, only_arg("le", a));
}
bool test_gt(const Value& v, const CallArgs& a) {
    return compare(ast::CompareOp::gt, v, only_arg("gt", a));
}
bool test_ge(const Value& v, const CallArgs& a) {
    return compare(ast::CompareOp::ge, v, only_arg("ge", a));
}

bool test_filter(const Value& v, const CallArgs& a) {
    no_args("filter", a);
    return v.is_string() && find_filter(v.str()) != nullptr;
}

bool test_test(const Value& v, const CallArgs& a) {
    no_args("test", a);
    return v.is_string() && find_test(v.str()) != nullptr;
}

constexpr std::pair<std::string_view, TestFn> kTests[] = {
    {"defined", test_defined},
    {"undefined", test_undefined},
    {"none", test_none},
    {"boolean", test_boolean},
    {"true", test_true},
    {"false", test_false},
    {"integer", test_integer},
    {"float", test_float},
    {"number", test_number},
    {"string", test_string},
    {"mapping", test_mapping},
    {"iterable", test_iterable},
    {"sequence", test_sequence},
    {"callable", test_callable},
    {"escaped", test_escaped},
    {"odd", test_odd},
    {"even", test_even},
    {"divisibleby", test_divisibleby},
    {"lower", test_lower},
    {"upper", test_upper},
    {"sameas", test_sameas},
    {"in", test_in},
    {"eq", test_eq},
    {"equalto", test_eq},
    {"==", test_eq},
    {"ne", test_ne},
    {"!=", test_ne},
    {"lt", test_lt},
    {"lessthan", test_lt},
    {"<", test_lt},
    {"le", test_le},
    {"<=", test_le},
    {"gt", test_gt},
    {"greaterthan", test_gt},
    {">", test_gt},
    {"ge", test_ge},
    {">=", test_ge},
    {"filter", test_filter},
    {"test", test_test},
};

}  // namespace

TestFn find_test(std::string_view name) {
    for (const auto& [n, fn] : kTests) {
        if (n == name) return fn;
    }
    return nullptr;
}

bool call_test(std::string_view name, const Value& operand, const CallArgs& args) {
    const TestFn fn = find_test(name);
    if (fn == nullptr) throw_runtime("No test named '" + std::string(name) + "' found.");
    return fn(operand, args);
}

}  // namespace tfx::jinja
