#include "jinja/pyrepr.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <system_error>

#include "jinja/error.h"
#include "jinja/unicode.h"

namespace tfx::jinja {
namespace {

constexpr std::size_t kMaxReprNesting = 200;
thread_local std::vector<const void*> repr_active;  // containers being printed, outermost first

void append_hex_escape(std::string& out, char prefix, char32_t c, int digits) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\%c%0*x", prefix, digits, static_cast<unsigned>(c));
    out += buf;
}

std::string join_reprs(const std::vector<Value>& items) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += ", ";
        out += py_repr(items[i]);
    }
    return out;
}

std::string sequence_repr(const Sequence& s) {
    const ReprScope scope(&s);
    if (scope.cycle()) {
        return s.kind == SeqKind::tuple ? "(...)" : s.kind == SeqKind::list ? "[...]" : "...";
    }
    switch (s.kind) {
        case SeqKind::list:
            return "[" + join_reprs(s.items) + "]";
        case SeqKind::tuple:
            return "(" + join_reprs(s.items) + (s.items.size() == 1 ? ",)" : ")");
        case SeqKind::range:
            return "range(" + std::to_string(s.range_start) + ", " + std::to_string(s.range_stop) +
                   (s.range_step == 1 ? ")" : ", " + std::to_string(s.range_step) + ")");
        case SeqKind::generator:
            return "<generator object>";
        case SeqKind::dict_keys:
            return "dict_keys([" + join_reprs(s.items) + "])";
        case SeqKind::dict_values:
            return "dict_values([" + join_reprs(s.items) + "])";
        case SeqKind::dict_items:
            return "dict_items([" + join_reprs(s.items) + "])";
    }
    return "";
}

}  // namespace

ReprScope::ReprScope(const void* container) {
    cycle_ = std::find(repr_active.begin(), repr_active.end(), container) != repr_active.end();
    if (cycle_) return;
    if (repr_active.size() >= kMaxReprNesting) {
        throw Error(ErrorKind::runtime, "maximum recursion depth exceeded while getting the repr of an object");
    }
    repr_active.push_back(container);
}

ReprScope::~ReprScope() {
    if (!cycle_) repr_active.pop_back();
}

std::string float_repr(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    const std::string_view sci(buf, static_cast<std::size_t>(res.ptr - buf));
    // sci is "[-]D[.DDD]e[+-]XX": collect the digits and the decimal exponent.
    const bool negative = sci.front() == '-';
    const std::size_t e_pos = sci.find('e');
    std::string digits;
    for (char c : sci.substr(negative ? 1 : 0, e_pos - (negative ? 1 : 0))) {
        if (c != '.') digits += c;
    }
    int exponent = 0;
    std::from_chars(sci.data() + e_pos + (sci[e_pos + 1] == '+' ? 2 : 1), sci.data() + sci.size(), exponent);
    const int point = exponent + 1;  // digits before the decimal point in positional notation
    const int n = static_cast<int>(digits.size());
    std::string out = negative ? "-" : "";
    if (point <= -4 || point > 16) {  // CPython's repr switches to exponent notation here
        out += digits[0];
        if (n > 1) out += "." + digits.substr(1);
        char exp_buf[16];
        std::snprintf(exp_buf, sizeof exp_buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
        out += exp_buf;
    } else if (point <= 0) {
        out += "0." + std::string(static_cast<std::size_t>(-point), '0') + digits;
    } else if (point >= n) {
        out += digits + std::string(static_cast<std::size_t>(point - n), '0') + ".0";
    } else {
        out += digits.substr(0, static_cast<std::size_t>(point)) + "." + digits.substr(static_cast<std::size_t>(point));
    }
    return out;
}

std::string string_repr(std::string_view s) {
    const bool has_single = s.find('\'') != std::string_view::npos;
    const bool has_double = s.find('"') != std::string_view::npos;
    const char quote = has_single && !has_double ? '"' : '\'';
    std::string out(1, quote);
    for (char32_t c : unicode::decode(s)) {
        if (c == static_cast<char32_t>(quote) || c == U'\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == U'\t') {
            out += "\\t";
        } else if (c == U'\n') {
            out += "\\n";
        } else if (c == U'\r') {
            out += "\\r";
        } else if (c < 0x20 || c == 0x7F) {
            append_hex_escape(out, 'x', c, 2);
        } else if (c < 0x7F || unicode::is_printable(c)) {
            unicode::append_utf8(out, c);
        } else if (c <= 0xFF) {
            append_hex_escape(out, 'x', c, 2);
        } else if (c <= 0xFFFF) {
            append_hex_escape(out, 'u', c, 4);
        } else {
            append_hex_escape(out, 'U', c, 8);
        }
    }
    out += quote;
    return out;
}

std::string py_repr(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::undefined:
            return "Undefined";
        case Value::Kind::string:
            return string_repr(v.str());
        case Value::Kind::sequence:
            return sequence_repr(v.seq());
        case Value::Kind::dict: {
            const ReprScope scope(&v.dict());
            if (scope.cycle()) return "{...}";
            std::string out = "{";
            bool first = true;
            for (const auto& [key, value] : v.dict().entries) {
                if (!first) out += ", ";
                first = false;
                out += py_repr(key) + ": " + py_repr(value);
            }
            return out + "}";
        }
        default:
            return py_str(v);
    }
}

std::string py_str(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::undefined:
            return "";
        case Value::Kind::none:
            return "None";
        case Value::Kind::boolean:
            return v.as_bool() ? "True" : "False";
        case Value::Kind::integer:
            return std::to_string(v.as_int());
        case Value::Kind::floating:
            return float_repr(v.as_double());
        case Value::Kind::string:
            return v.str();
        case Value::Kind::object:
            return v.obj().repr();
        case Value::Kind::sequence:
        case Value::Kind::dict:
            return py_repr(v);
    }
    return "";
}

}  // namespace tfx::jinja
