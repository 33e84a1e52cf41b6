// Operators, iteration and argument binding with Python's semantics.
#include <algorithm>
#include <cmath>
#include <limits>

#include "jinja/error.h"
#include "jinja/format.h"
#include "jinja/pyrepr.h"
#include "jinja/pystr.h"
#include "jinja/runtime.h"
#include "jinja/unicode.h"

namespace tfx::jinja {
namespace {

using ast::BinaryOp;
using ast::CompareOp;

const char* symbol(BinaryOp op) {
    switch (op) {
        case BinaryOp::add:
            return "+";
        case BinaryOp::sub:
            return "-";
        case BinaryOp::mul:
            return "*";
        case BinaryOp::div:
            return "/";
        case BinaryOp::floordiv:
            return "//";
        case BinaryOp::mod:
            return "%";
        case BinaryOp::pow:
            return "** or pow()";
        case BinaryOp::logical_and:
            return "and";
        case BinaryOp::logical_or:
            return "or";
    }
    return "?";
}

[[noreturn]] void unsupported(BinaryOp op, const Value& a, const Value& b) {
    throw_runtime(std::string("unsupported operand type(s) for ") + symbol(op) + ": '" + a.type_name() + "' and '" +
                  b.type_name() + "'");
}

[[noreturn]] void overflow() {
    throw_runtime("integer result too large");
}

// a op b on int64, or the "too large" error Python's big integers would not raise.
template <class Op>
std::int64_t checked(std::int64_t a, std::int64_t b, Op op) {
    std::int64_t r = 0;
    if (op(a, b, &r)) overflow();
    return r;
}
const auto add_ovf = [](std::int64_t a, std::int64_t b, std::int64_t* r) { return __builtin_add_overflow(a, b, r); };
const auto sub_ovf = [](std::int64_t a, std::int64_t b, std::int64_t* r) { return __builtin_sub_overflow(a, b, r); };
const auto mul_ovf = [](std::int64_t a, std::int64_t b, std::int64_t* r) { return __builtin_mul_overflow(a, b, r); };

Value python_floordiv_int(std::int64_t a, std::int64_t b) {
    if (b == 0) throw_runtime("integer division or modulo by zero");
    if (a == std::numeric_limits<std::int64_t>::min() && b == -1) overflow();
    std::int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return Value::integer(q);
}

Value python_mod_int(std::int64_t a, std::int64_t b) {
    if (b == 0) throw_runtime("integer division or modulo by zero");
    if (b == -1) return Value::integer(0);
    std::int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return Value::integer(r);
}

double python_mod_float(double a, double b) {
    double r = std::fmod(a, b);
    if (r != 0.0 && ((r < 0) != (b < 0))) r += b;
    if (r == 0.0) r = std::copysign(0.0, b);
    return r;
}

Value int_pow(std::int64_t base, std::int64_t exp) {
    if (exp < 0) {
        if (base == 0) throw_runtime("0.0 cannot be raised to a negative power");
        return Value::floating(std::pow(static_cast<double>(base), static_cast<double>(exp)));
    }
    std::int64_t result = 1;
    while (exp > 0) {
        if (exp & 1) result = checked(result, base, mul_ovf);
        exp >>= 1;
        if (exp > 0) base = checked(base, base, mul_ovf);
    }
    return Value::integer(result);
}

Value repeat_sequence(const Value& seq, std::int64_t times) {
    std::vector<Value> items;
    const auto& src = seq.seq().items;
    if (times > 0 && !src.empty()) {
        if (static_cast<std::size_t>(times) > kMaxStringBytes / src.size()) throw_runtime("sequence too long");
        charge_work(static_cast<std::size_t>(times) * src.size() * sizeof(Value));
        for (std::int64_t i = 0; i < times; ++i) items.insert(items.end(), src.begin(), src.end());
    }
    return Value::sequence(seq.seq().kind, std::move(items));
}

Value concatenate(const Value& a, const Value& b) {
    if (a.is_string() && b.is_string()) {
        check_string_size(a.str().size() + b.str().size());
        return Value::string(a.str() + b.str());
    }
    if (a.is_string()) throw_runtime("can only concatenate str (not \"" + b.type_name() + "\") to str");
    const bool same_kind = a.is_sequence() && b.is_sequence() && a.seq().kind == b.seq().kind;
    if (a.is_list_or_tuple() && same_kind) {
        std::vector<Value> items = a.seq().items;
        items.insert(items.end(), b.seq().items.begin(), b.seq().items.end());
        return Value::sequence(a.seq().kind, std::move(items));
    }
    if (a.is_list_or_tuple()) {
        throw_runtime("can only concatenate " + a.type_name() + " (not \"" + b.type_name() + "\") to " + a.type_name());
    }
    unsupported(BinaryOp::add, a, b);
}

bool sequences_less(const std::vector<Value>& a, const std::vector<Value>& b) {
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
        if (!py_equal(a[i], b[i])) return less_than(a[i], b[i]);
    }
    return a.size() < b.size();
}

[[noreturn]] void not_supported(const char* op, const Value& a, const Value& b) {
    throw_runtime(std::string("'") + op + "' not supported between instances of '" + a.type_name() + "' and '" +
                  b.type_name() + "'");
}

bool ordered(CompareOp op, const Value& a, const Value& b) {
    if (a.is_undefined()) throw_undefined(a);
    if (b.is_undefined()) throw_undefined(b);
    const char* sym = op == CompareOp::lt ? "<" : op == CompareOp::le ? "<=" : op == CompareOp::gt ? ">" : ">=";
    const bool comparable = (a.is_number() && b.is_number()) || (a.is_string() && b.is_string()) ||
                            (a.is_list_or_tuple() && b.is_sequence() && a.seq().kind == b.seq().kind);
    if (!comparable) not_supported(sym, a, b);
    switch (op) {
        case CompareOp::lt:
            return less_than(a, b);
        case CompareOp::gt:
            return less_than(b, a);
        case CompareOp::le:
            return less_than(a, b) || py_equal(a, b);
        default:
            return less_than(b, a) || py_equal(a, b);
    }
}

}  // namespace

void throw_runtime(const std::string& message) {
    throw Error(ErrorKind::runtime, message);
}

void throw_undefined(const Value& undefined) {
    const std::string& hint = undefined.is_undefined() ? undefined.undefined_hint() : std::string();
    throw_runtime(hint.empty() ? "undefined value" : hint);
}

const Value& require_defined(const Value& v) {
    if (v.is_undefined()) throw_undefined(v);
    return v;
}

Value binary_op(BinaryOp op, const Value& a, const Value& b) {
    if (a.is_undefined()) throw_undefined(a);
    if (op == BinaryOp::mod && a.is_string()) return Value::string(percent_format(a.str(), b));
    if (b.is_undefined()) throw_undefined(b);
    const bool ints = a.is_integral() && b.is_integral();
    const bool numbers = a.is_number() && b.is_number();
    switch (op) {
        case BinaryOp::add:
            if (ints) return Value::integer(checked(a.as_int(), b.as_int(), add_ovf));
            if (numbers) return Value::floating(a.as_double() + b.as_double());
            return concatenate(a, b);
        case BinaryOp::sub:
            if (ints) return Value::integer(checked(a.as_int(), b.as_int(), sub_ovf));
            if (numbers) return Value::floating(a.as_double() - b.as_double());
            break;
        case BinaryOp::mul:
            if (ints) return Value::integer(checked(a.as_int(), b.as_int(), mul_ovf));
            if (numbers) return Value::floating(a.as_double() * b.as_double());
            if (a.is_string() && b.is_integral()) return Value::string(pystr::repeat(a.str(), b.as_int()));
            if (b.is_string() && a.is_integral()) return Value::string(pystr::repeat(b.str(), a.as_int()));
            if (a.is_list_or_tuple() && b.is_integral()) return repeat_sequence(a, b.as_int());
            if (b.is_list_or_tuple() && a.is_integral()) return repeat_sequence(b, a.as_int());
            break;
        case BinaryOp::div:
            if (numbers) {
                if (b.as_double() == 0.0) throw_runtime("division by zero");
                return Value::floating(a.as_double() / b.as_double());
            }
            break;
        case BinaryOp::floordiv:
            if (ints) return python_floordiv_int(a.as_int(), b.as_int());
            if (numbers) {
                if (b.as_double() == 0.0) throw_runtime("float floor division by zero");
                const double m = python_mod_float(a.as_double(), b.as_double());
                return Value::floating(std::round((a.as_double() - m) / b.as_double()));
            }
            break;
        case BinaryOp::mod:
            if (ints) return python_mod_int(a.as_int(), b.as_int());
            if (numbers) {
                if (b.as_double() == 0.0) throw_runtime("float modulo");
                return Value::floating(python_mod_float(a.as_double(), b.as_double()));
            }
            break;
        case BinaryOp::pow:
            if (ints) return int_pow(a.as_int(), b.as_int());
            if (numbers) {
                const double x = a.as_double();
                const double y = b.as_double();
                if (x == 0.0 && y < 0) throw_runtime("0.0 cannot be raised to a negative power");
                if (x < 0 && y != std::floor(y)) throw_runtime("complex results are not supported");
                const double r = std::pow(x, y);
                if (std::isinf(r) && std::isfinite(x) && std::isfinite(y))
                    throw_runtime("Numerical result out of range");
                return Value::floating(r);
            }
            break;
        case BinaryOp::logical_and:
        case BinaryOp::logical_or:
            break;
    }
    unsupported(op, a, b);
}

Value unary_op(ast::UnaryOp op, const Value& v) {
    switch (op) {
        case ast::UnaryOp::logical_not:
            return Value::boolean(!v.truthy());
        case ast::UnaryOp::negate:
        case ast::UnaryOp::plus: {
            if (v.is_undefined()) throw_undefined(v);
            const bool neg = op == ast::UnaryOp::negate;
            if (v.is_integral()) {
                if (neg && v.as_int() == std::numeric_limits<std::int64_t>::min()) overflow();
                return Value::integer(neg ? -v.as_int() : v.as_int());
            }
            if (v.is_float()) return Value::floating(neg ? -v.as_double() : v.as_double());
            throw_runtime(std::string("bad operand type for unary ") + (neg ? "-" : "+") + ": '" + v.type_name() + "'");
        }
    }
    return v;
}

bool less_than(const Value& a, const Value& b) {
    if (a.is_undefined()) throw_undefined(a);
    if (b.is_undefined()) throw_undefined(b);
    if (a.is_number() && b.is_number()) {
        if (a.is_integral() && b.is_integral()) return a.as_int() < b.as_int();
        return a.as_double() < b.as_double();
    }
    if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 order is code point order
    if (a.is_list_or_tuple() && b.is_sequence() && a.seq().kind == b.seq().kind) {
        return sequences_less(a.seq().items, b.seq().items);
    }
    not_supported("<", a, b);
}

bool compare(CompareOp op, const Value& a, const Value& b) {
    switch (op) {
        case CompareOp::eq:
            return py_equal(a, b);
        case CompareOp::ne:
            return !py_equal(a, b);
        case CompareOp::in:
            return contains(b, a);
        case CompareOp::not_in:
            return !contains(b, a);
        default:
            return ordered(op, a, b);
    }
}

bool contains(const Value& container, const Value& item) {
    switch (container.kind()) {
        case Value::Kind::undefined:
            return false;
        case Value::Kind::string:
            if (!item.is_string()) {
                throw_runtime("'in <string>' requires string as left operand, not " + item.type_name());
            }
            return container.str().find(item.str()) != std::string::npos;
        case Value::Kind::dict:
            if (!is_hashable(item)) throw_runtime("unhashable type: '" + item.type_name() + "'");
            return container.dict().find(item) != nullptr;
        case Value::Kind::sequence: {
            const Sequence& s = container.seq();
            if (s.kind == SeqKind::generator) {  // consumes up to and including the match
                while (s.consumed < s.items.size()) {
                    if (py_equal(s.items[s.consumed++], item)) return true;
                }
                return false;
            }
            return std::any_of(s.items.begin(), s.items.end(), [&](const Value& x) { return py_equal(x, item); });
        }
        default:
            throw_runtime("argument of type '" + container.type_name() + "' is not iterable");
    }
}

std::vector<Value> iterate(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::undefined:
            return {};
        case Value::Kind::string: {
            std::vector<Value> chars;
            for (char32_t c : unicode::decode(v.str())) {
                std::string s;
                unicode::append_utf8(s, c);
                chars.push_back(Value::string(std::move(s)));
            }
            return chars;
        }
        case Value::Kind::sequence: {
            const Sequence& s = v.seq();
            if (s.kind != SeqKind::generator) return s.items;
            std::vector<Value> rest(s.items.begin() + static_cast<std::ptrdiff_t>(s.consumed), s.items.end());
            s.consumed = s.items.size();
            return rest;
        }
        case Value::Kind::dict: {
            std::vector<Value> keys;
            for (const auto& entry : v.dict().entries) keys.push_back(entry.first);
            return keys;
        }
        default:
            throw_runtime("'" + v.type_name() + "' object is not iterable");
    }
}

std::int64_t py_len(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::undefined:
            return 0;
        case Value::Kind::string:
            return static_cast<std::int64_t>(unicode::length(v.str()));
        case Value::Kind::dict:
            return static_cast<std::int64_t>(v.dict().entries.size());
        case Value::Kind::sequence:
            if (v.seq().has_len()) return static_cast<std::int64_t>(v.seq().items.size());
            break;
        default:
            break;
    }
    throw_runtime("object of type '" + v.type_name() + "' has no len()");
}

bool is_iterable(const Value& v) {
    return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_dict();
}

Value make_generator(std::vector<Value> items) {
    return Value::sequence(SeqKind::generator, std::move(items));
}

BoundArgs::BoundArgs(std::string_view function, const CallArgs& args, std::initializer_list<std::string_view> params,
                     bool extra_positional_ok)
    : function_(function), names_(params), values_(params.size(), nullptr) {
    for (std::size_t i = 0; i < args.positional.size(); ++i) {
        if (i < values_.size()) {
            values_[i] = &args.positional[i];
        } else if (extra_positional_ok) {
            extra_.push_back(args.positional[i]);
        } else {
            throw_runtime(function_ + "() takes at most " + std::to_string(values_.size()) + " argument(s) (" +
                          std::to_string(args.positional.size()) + " given)");
        }
    }
    for (const auto& [key, value] : args.keyword) {
        const auto it = std::find(names_.begin(), names_.end(), key);
        if (it == names_.end()) throw_runtime(function_ + "() got an unexpected keyword argument '" + key + "'");
        const auto i = static_cast<std::size_t>(it - names_.begin());
        if (values_[i] != nullptr) throw_runtime(function_ + "() got multiple values for argument '" + key + "'");
        values_[i] = &value;
    }
}

const Value& BoundArgs::get(std::size_t i) const {
    if (values_[i] == nullptr) {
        throw_runtime(function_ + "() missing required argument '" + std::string(names_[i]) + "'");
    }
    return *values_[i];
}

Value BoundArgs::get_or(std::size_t i, Value fallback) const {
    return values_[i] ? *values_[i] : std::move(fallback);
}

std::optional<std::int64_t> BoundArgs::int_or_none(std::size_t i) const {
    if (values_[i] == nullptr || values_[i]->is_none()) return std::nullopt;
    return require_int(*values_[i], names_[i]);
}

std::int64_t BoundArgs::integer(std::size_t i, std::int64_t fallback) const {
    return values_[i] ? require_int(*values_[i], names_[i]) : fallback;
}

std::string BoundArgs::string(std::size_t i, std::string fallback) const {
    return values_[i] ? py_str(*values_[i]) : std::move(fallback);
}

bool BoundArgs::boolean(std::size_t i, bool fallback) const {
    return values_[i] ? values_[i]->truthy() : fallback;
}

std::int64_t require_int(const Value& v, std::string_view what) {
    if (v.is_undefined()) throw_undefined(v);
    if (!v.is_integral()) {
        throw_runtime("'" + v.type_name() + "' object cannot be interpreted as an integer (" + std::string(what) + ")");
    }
    return v.as_int();
}

}  // namespace tfx::jinja
