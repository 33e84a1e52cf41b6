// Jinja2's builtin filters, with transformers' `tojson` in place of Jinja's own.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>

#include "jinja/builtins.h"
#include "jinja/format.h"
#include "jinja/json_dump.h"
#include "jinja/methods.h"
#include "jinja/pyrepr.h"
#include "jinja/pystr.h"
#include "jinja/runtime.h"
#include "jinja/unicode.h"

namespace tfx::jinja {
namespace {

using pystr::StripSide;

Value str_value(std::string s) {
    return Value::string(std::move(s));
}

// ---- attribute getters (Jinja's make_attrgetter) --------------------------------------------------

// "a.0.b" -> getitem steps "a", 0, "b"; digits become integer indices.
std::vector<Value> attribute_parts(const Value& attribute) {
    if (attribute.is_none()) return {};
    if (!attribute.is_string()) return {attribute};
    std::vector<Value> parts;
    for (const std::string& part : pystr::split(attribute.str(), std::string("."), -1)) {
        const bool digits =
            !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
        parts.push_back(digits && part.size() < 18 ? Value::integer(std::stoll(part)) : Value::string(part));
    }
    return parts;
}

Value lookup_parts(Value item, const std::vector<Value>& parts, const Value* fallback) {
    for (const Value& part : parts) {
        item = get_item(item, part);
        if (fallback != nullptr && item.is_undefined()) item = *fallback;
    }
    return item;
}

Value ignore_case(const Value& v) {
    return v.is_string() ? Value::string(pystr::lower(v.str())) : v;
}

// Sort keys: one list of values per item, one value per comma-separated attribute.
std::vector<Value> sort_key(const Value& item, const std::vector<std::vector<Value>>& attributes, bool case_sensitive) {
    std::vector<Value> key;
    for (const auto& parts : attributes) {
        Value v = lookup_parts(item, parts, nullptr);
        key.push_back(case_sensitive ? v : ignore_case(v));
    }
    return key;
}

std::vector<std::vector<Value>> multi_attribute_parts(const Value& attribute) {
    if (!attribute.is_string()) return {attribute_parts(attribute)};
    std::vector<std::vector<Value>> all;
    for (const std::string& a : pystr::split(attribute.str(), std::string(","), -1)) {
        all.push_back(attribute_parts(Value::string(a)));
    }
    return all;
}

bool key_less(const std::vector<Value>& a, const std::vector<Value>& b) {
    return less_than(Value::list(a), Value::list(b));
}

// ---- string filters -----------------------------------------------------------------------------

Value f_trim(const Value& v, const CallArgs& args) {
    BoundArgs a("trim", args, {"chars"});
    std::optional<std::string> chars;
    if (a.has(0) && !a.get(0).is_none()) chars = py_str(a.get(0));
    return str_value(pystr::strip(py_str(v), chars, StripSide::both));
}

Value f_upper(const Value& v, const CallArgs& args) {
    return BoundArgs("upper", args, {}), str_value(pystr::upper(py_str(v)));
}
Value f_lower(const Value& v, const CallArgs& args) {
    return BoundArgs("lower", args, {}), str_value(pystr::lower(py_str(v)));
}
Value f_capitalize(const Value& v, const CallArgs& args) {
    return BoundArgs("capitalize", args, {}), str_value(pystr::capitalize(py_str(v)));
}

// Jinja's title: upper-case the first letter of each chunk split at [-\s({\[<]+.
Value f_title(const Value& v, const CallArgs& args) {
    BoundArgs("title", args, {});
    const std::u32string cps = unicode::decode(py_str(v));
    auto is_delim = [](char32_t c) {
        return c == U'-' || c == U'(' || c == U'{' || c == U'[' || c == U'<' || unicode::is_space(c);
    };
    std::u32string out;
    std::size_t i = 0;
    while (i < cps.size()) {
        const bool delim = is_delim(cps[i]);
        std::size_t j = i;
        while (j < cps.size() && is_delim(cps[j]) == delim) ++j;
        unicode::append_upper(out, cps[i]);
        const std::string rest = pystr::lower(unicode::encode(std::u32string_view(cps).substr(i + 1, j - i - 1)));
        out += unicode::decode(rest);
        i = j;
    }
    return str_value(unicode::encode(out));
}

Value f_string(const Value& v, const CallArgs& args) {
    return BoundArgs("string", args, {}), str_value(py_str(v));
}
Value f_safe(const Value& v, const CallArgs& args) {
    return BoundArgs("safe", args, {}), str_value(py_str(v));
}

Value f_escape(const Value& v, const CallArgs& args) {
    BoundArgs("escape", args, {});
    std::string out;
    for (char c : py_str(v)) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&#34;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return str_value(std::move(out));
}

Value f_replace(const Value& v, const CallArgs& args) {
    BoundArgs a("replace", args, {"old", "new", "count"});
    const std::optional<std::int64_t> count = a.int_or_none(2);
    return str_value(pystr::replace(py_str(v), py_str(a.get(0)), py_str(a.get(1)), count.value_or(-1)));
}

Value f_center(const Value& v, const CallArgs& args) {
    BoundArgs a("center", args, {"width"});
    return str_value(pystr::center(py_str(v), a.integer(0, 80), U' '));
}

Value f_indent(const Value& v, const CallArgs& args) {
    BoundArgs a("indent", args, {"width", "first", "blank"});
    const Value width = a.get_or(0, Value::integer(4));
    const std::string indention = width.is_string() ? width.str() : pystr::repeat(" ", require_int(width, "width"));
    // Jinja appends "\n" before splitting, so the operand must be a string.
    const Value text = binary_op(ast::BinaryOp::add, v, Value::string("\n"));
    const std::vector<std::string> lines = pystr::splitlines(text.str(), false);
    std::string out;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) {
            out += '\n';
            if (a.boolean(2, false) || !lines[i].empty()) out += indention;
        }
        out += lines[i];
        check_string_size(out.size());
    }
    if (a.boolean(1, false)) out = indention + out;
    return str_value(std::move(out));
}

Value f_truncate(const Value& v, const CallArgs& args) {
    BoundArgs a("truncate", args, {"length", "killwords", "end", "leeway"});
    const std::int64_t length = a.integer(0, 255);
    const std::string end = a.string(2, "...");
    const std::int64_t leeway = a.integer(3, 5);
    const auto end_len = static_cast<std::int64_t>(unicode::length(end));
    if (length < end_len)
        throw_runtime("expected length >= " + std::to_string(end_len) + ", got " + std::to_string(length));
    if (leeway < 0) throw_runtime("expected leeway >= 0, got " + std::to_string(leeway));
    if (py_len(v) <= length + leeway) return v;  // Jinja measures and returns the value itself
    if (!v.is_string()) throw_runtime("can only truncate strings");
    const std::string& s = v.str();
    const std::string head = slice(Value::string(s), std::nullopt, length - end_len, std::nullopt).str();
    if (a.boolean(1, false)) return str_value(head + end);
    return str_value(pystr::rsplit(head, std::string(" "), 1).front() + end);
}

Value f_wordcount(const Value& v, const CallArgs& args) {
    BoundArgs("wordcount", args, {});
    std::int64_t words = 0;
    bool in_word = false;
    for (char32_t c : unicode::decode(py_str(v))) {
        // Python's re \w: str.isalnum() or '_'.
        const bool word_char = c == U'_' || unicode::is_alpha(c) || unicode::is_numeric(c);
        if (word_char && !in_word) ++words;
        in_word = word_char;
    }
    return Value::integer(words);
}

Value f_format(const Value& v, const CallArgs& args) {
    if (!args.positional.empty() && !args.keyword.empty()) {
        throw_runtime("can't handle positional and keyword arguments at the same time");
    }
    if (!args.keyword.empty()) {
        std::vector<std::pair<Value, Value>> entries;
        for (const auto& [k, val] : args.keyword) entries.emplace_back(Value::string(k), val);
        return str_value(percent_format(py_str(v), Value::dict(std::move(entries))));
    }
    return str_value(percent_format(py_str(v), Value::tuple(args.positional)));
}

Value f_tojson(const Value& v, const CallArgs& args) {
    BoundArgs a("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
    JsonOptions options;
    options.ensure_ascii = a.boolean(0, false);
    if (a.has(1) && !a.get(1).is_none()) {
        const Value& indent = a.get(1);
        options.indent = indent.is_string() ? indent.str() : pystr::repeat(" ", require_int(indent, "indent"));
    }
    if (a.has(2) && !a.get(2).is_none()) {
        const std::vector<Value> seps = iterate(a.get(2));
        if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string()) {
            throw_runtime("separators must be a pair of strings");
        }
        options.separators = std::make_pair(seps[0].str(), seps[1].str());
    }
    options.sort_keys = a.boolean(3, false);
    return str_value(to_json(v, options));
}

Value f_filesizeformat(const Value& v, const CallArgs& args) {
    BoundArgs a("filesizeformat", args, {"binary"});
    const bool binary = a.boolean(0, false);
    const double bytes = call_filter("float", v, {}).as_double();
    const double base = binary ? 1024 : 1000;
    static const char* const kDecimal[] = {"kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
    static const char* const kBinary[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"};
    if (bytes == 1) return str_value("1 Byte");
    if (bytes < base) return str_value(std::to_string(static_cast<std::int64_t>(bytes)) + " Bytes");
    char buf[64];
    double unit = base;
    for (int i = 0; i < 8; ++i) {
        unit *= base;
        if (bytes < unit || i == 7) {
            std::snprintf(buf, sizeof buf, "%.1f %s", base * bytes / unit, binary ? kBinary[i] : kDecimal[i]);
            break;
        }
    }
    return str_value(buf);
}

// ---- numbers ------------------------------------------------------------------------------------

// Python's int(str, base): optional sign, digits with single underscores, whitespace around.
std::optional<std::int64_t> parse_python_int(const std::string& text, int base) {
    std::string s = pystr::strip(text, std::nullopt, StripSide::both);
    std::size_t i = 0;
    bool negative = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
    if (base == 0 || base == 16 || base == 8 || base == 2) {
        if (i + 1 < s.size() && s[i] == '0') {
            const char p = static_cast<char>(s[i + 1] | 0x20);
            const int prefixed = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
            if (prefixed != 0 && (base == 0 || base == prefixed)) {
                base = prefixed;
                i += 2;
                if (i < s.size() && s[i] == '_') ++i;
            }
        }
        if (base == 0) base = 10;
    }
    if (base < 2 || base > 36 || i >= s.size()) return std::nullopt;
    unsigned long long value = 0;
    bool digit_seen = false;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '_' && digit_seen && i + 1 < s.size() && s[i + 1] != '_') continue;
        int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'z' ? (c | 0x20) - 'a' + 10 : 99;
        if (d >= base) return std::nullopt;
        if (value >
            (std::numeric_limits<unsigned long long>::max() - static_cast<unsigned>(d)) / static_cast<unsigned>(base)) {
            throw_runtime("integer too large");
        }
        value = value * static_cast<unsigned>(base) + static_cast<unsigned>(d);
        digit_seen = true;
    }
    if (value > static_cast<unsigned long long>(std::numeric_limits<std::int64_t>::max()))
        throw_runtime("integer too large");
    const auto magnitude = static_cast<std::int64_t>(value);
    return negative ? -magnitude : magnitude;
}

// Python's float(str): decimal or exponent forms, inf/nan, underscores between digits.
std::optional<double> parse_python_float(const std::string& text) {
    std::string s = pystr::strip(text, std::nullopt, StripSide::both);
    std::string lowered = pystr::lower(s);
    std::size_t sign = !lowered.empty() && (lowered[0] == '+' || lowered[0] == '-') ? 1 : 0;
    const std::string word = lowered.substr(sign);
    const double sgn = sign && lowered[0] == '-' ? -1.0 : 1.0;
    if (word == "inf" || word == "infinity") return sgn * std::numeric_limits<double>::infinity();
    if (word == "nan") return std::numeric_limits<double>::quiet_NaN();
    std::string clean;
    bool digits = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '_') {
            const bool between = i > 0 && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
                                 std::isdigit(static_cast<unsigned char>(s[i + 1]));
            if (!between) return std::nullopt;
            continue;
        }
        if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == 'E' || c == '+' ||
              c == '-')) {
            return std::nullopt;
        }
        digits = digits || std::isdigit(static_cast<unsigned char>(c));
        clean += c;
    }
    if (!digits) return std::nullopt;
    char* end = nullptr;
    const double d = std::strtod(clean.c_str(), &end);
    if (end != clean.c_str() + clean.size()) return std::nullopt;
    return d;
}

std::optional<std::int64_t> float_to_int(double d) {
    if (std::isnan(d)) return std::nullopt;  // ValueError: the filter falls back to its default
    if (std::isinf(d)) throw_runtime("cannot convert float infinity to integer");
    if (d >= 9.3e18 || d <= -9.3e18) throw_runtime("integer too large");
    return static_cast<std::int64_t>(d);
}

Value f_int(const Value& v, const CallArgs& args) {
    BoundArgs a("int", args, {"default", "base"});
    const Value fallback = a.get_or(0, Value::integer(0));
    if (v.is_undefined()) throw_undefined(v);
    std::optional<std::int64_t> result;
    if (v.is_integral()) {
        result = v.as_int();
    } else if (v.is_float()) {
        result = float_to_int(v.as_double());
    } else if (v.is_string()) {
        result = parse_python_int(v.str(), static_cast<int>(a.integer(1, 10)));
        if (!result) {  // Jinja's quirk: "42.23" | int is 42
            if (const auto d = parse_python_float(v.str())) result = float_to_int(*d);
        }
    }
    return result ? Value::integer(*result) : fallback;
}

Value f_float(const Value& v, const CallArgs& args) {
    BoundArgs a("float", args, {"default"});
    if (v.is_undefined()) throw_undefined(v);
    if (v.is_number()) return Value::floating(v.as_double());
    if (v.is_string()) {
        if (const auto d = parse_python_float(v.str())) return Value::floating(*d);
    }
    return a.get_or(0, Value::floating(0.0));
}

Value f_abs(const Value& v, const CallArgs& args) {
    BoundArgs("abs", args, {});
    if (v.is_integral()) {
        if (v.as_int() == std::numeric_limits<std::int64_t>::min()) throw_runtime("integer result too large");
        return Value::integer(std::abs(v.as_int()));
    }
    if (v.is_float()) return Value::floating(std::fabs(v.as_double()));
    throw_runtime("bad operand type for abs(): '" + v.type_name() + "'");
}

// Python's round(x, n) for floats: round half to even on the exact binary value.
double round_half_even(double x, std::int64_t digits) {
    if (!std::isfinite(x)) return x;
    if (digits < 0) {
        const double scale = std::pow(10.0, static_cast<double>(-digits));
        return std::nearbyint(x / scale) * scale;
    }
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(std::min<std::int64_t>(digits, 300)), x);
    return std::strtod(buf, nullptr);
}

Value f_round(const Value& v, const CallArgs& args) {
    BoundArgs a("round", args, {"precision", "method"});
    const std::int64_t precision = a.integer(0, 0);
    const std::string method = a.string(1, "common");
    if (method != "common" && method != "ceil" && method != "floor") {
        throw_runtime("method must be common, ceil or floor");
    }
    if (!v.is_number()) throw_runtime("type " + v.type_name() + " doesn't define __round__ method");
    if (method == "common") {
        if (v.is_integral()) return Value::integer(v.as_int());  // round(int, n) stays an int
        return Value::floating(round_half_even(v.as_double(), precision));
    }
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double scaled = v.as_double() * scale;
    return Value::floating((method == "ceil" ? std::ceil(scaled) : std::floor(scaled)) / scale);
}

// ---- sequences ----------------------------------------------------------------------------------

Value f_length(const Value& v, const CallArgs& args) {
    return BoundArgs("length", args, {}), Value::integer(py_len(v));
}

Value f_list(const Value& v, const CallArgs& args) {
    return BoundArgs("list", args, {}), Value::list(iterate(v));
}

Value f_first(const Value& v, const CallArgs& args) {
    BoundArgs("first", args, {});
    if (v.is_seq(SeqKind::generator)) {  // takes one item from the generator
        const Sequence& s = v.seq();
        if (s.consumed < s.items.size()) return s.items[s.consumed++];
    } else {
        std::vector<Value> items = iterate(v);
        if (!items.empty()) return items.front();
    }
    return Value::undefined("No first item, sequence was empty.");
}

Value f_last(const Value& v, const CallArgs& args) {
    BoundArgs("last", args, {});
    if (v.is_seq(SeqKind::generator)) throw_runtime("'generator' object is not reversible");
    std::vector<Value> items = iterate(v);
    if (items.empty()) return Value::undefined("No last item, sequence was empty.");
    return items.back();
}

Value f_reverse(const Value& v, const CallArgs& args) {
    BoundArgs("reverse", args, {});
    if (v.is_string()) return slice(v, std::nullopt, std::nullopt, -1);
    const bool reversible = v.is_dict() || (v.is_sequence() && v.seq().kind != SeqKind::generator);
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    return reversible ? make_generator(std::move(items)) : Value::list(std::move(items));  // reversed() is an iterator
}

Value f_join(const Value& v, const CallArgs& args) {
    BoundArgs a("join", args, {"d", "attribute"});
    const std::string sep = a.string(0, "");
    const std::vector<Value> parts = a.has(1) ? attribute_parts(a.get(1)) : std::vector<Value>{};
    std::string out;
    bool first = true;
    for (const Value& item : iterate(v)) {
        if (!first) out += sep;
        first = false;
        out += py_str(a.has(1) ? lookup_parts(item, parts, nullptr) : item);
        check_string_size(out.size());
    }
    return str_value(std::move(out));
}

Value f_default(const Value& v, const CallArgs& args) {
    BoundArgs a("default", args, {"default_value", "boolean"});
    if (v.is_undefined() || (a.boolean(1, false) && !v.truthy())) return a.get_or(0, Value::string(""));
    return v;
}

Value f_items(const Value& v, const CallArgs& args) {
    BoundArgs("items", args, {});
    if (v.is_undefined()) return make_generator({});
    if (!v.is_dict()) throw_runtime("Can only get item pairs from a mapping.");
    std::vector<Value> pairs;
    for (const auto& [k, val] : v.dict().entries) pairs.push_back(Value::tuple({k, val}));
    return make_generator(std::move(pairs));
}

Value f_dictsort(const Value& v, const CallArgs& args) {
    BoundArgs a("dictsort", args, {"case_sensitive", "by", "reverse"});
    if (v.is_undefined()) throw_undefined(v);
    if (!v.is_dict()) throw_runtime("'" + v.type_name() + "' object has no attribute 'items'");
    const bool case_sensitive = a.boolean(0, false);
    const std::string by = a.string(1, "key");
    if (by != "key" && by != "value") throw_runtime("You can only sort by either \"key\" or \"value\"");
    const std::size_t pos = by == "key" ? 0 : 1;
    std::vector<Value> pairs;
    for (const auto& [k, val] : v.dict().entries) pairs.push_back(Value::tuple({k, val}));
    auto key = [&](const Value& pair) {
        const Value& x = pair.seq().items[pos];
        return case_sensitive ? x : ignore_case(x);
    };
    std::stable_sort(pairs.begin(), pairs.end(),
                     [&](const Value& x, const Value& y) { return less_than(key(x), key(y)); });
    if (a.boolean(2, false)) std::reverse(pairs.begin(), pairs.end());
    return Value::list(std::move(pairs));
}

Value f_sort(const Value& v, const CallArgs& args) {
    BoundArgs a("sort", args, {"reverse", "case_sensitive", "attribute"});
    const bool reverse = a.boolean(0, false);
    const bool case_sensitive = a.boolean(1, false);
    const auto attributes = multi_attribute_parts(a.get_or(2, Value::none()));
    std::vector<std::pair<std::vector<Value>, Value>> keyed;
    for (Value& item : iterate(v)) keyed.emplace_back(sort_key(item, attributes, case_sensitive), std::move(item));
    // Python's sort with reverse=True keeps equal items in their original order.
    std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& x, const auto& y) {
        return reverse ? key_less(y.first, x.first) : key_less(x.first, y.first);
    });
    std::vector<Value> out;
    for (auto& [k, item] : keyed) out.push_back(std::move(item));
    return Value::list(std::move(out));
}

Value f_unique(const Value& v, const CallArgs& args) {
    BoundArgs a("unique", args, {"case_sensitive", "attribute"});
    const bool case_sensitive = a.boolean(0, false);
    const std::vector<Value> parts = attribute_parts(a.get_or(1, Value::none()));
    std::vector<Value> seen;
    std::vector<Value> out;
    for (const Value& item : iterate(v)) {
        Value key = lookup_parts(item, parts, nullptr);
        if (!case_sensitive) key = ignore_case(key);
        if (!is_hashable(key)) throw_runtime("unhashable type: '" + key.type_name() + "'");
        if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return py_equal(s, key); })) {
            seen.push_back(key);
            out.push_back(item);
        }
    }
    return make_generator(std::move(out));
}

Value min_or_max(const Value& v, const CallArgs& args, const char* name, bool want_max) {
    BoundArgs a(name, args, {"case_sensitive", "attribute"});
    const bool case_sensitive = a.boolean(0, false);
    const std::vector<Value> parts = attribute_parts(a.get_or(1, Value::none()));
    const std::vector<Value> items = iterate(v);
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    auto key = [&](const Value& item) {
        Value k = lookup_parts(item, parts, nullptr);
        return case_sensitive ? k : ignore_case(k);
    };
    std::size_t best = 0;
    for (std::size_t i = 1; i < items.size(); ++i) {
        if (want_max ? less_than(key(items[best]), key(items[i])) : less_than(key(items[i]), key(items[best])))
            best = i;
    }
    return items[best];
}

Value f_min(const Value& v, const CallArgs& args) {
    return min_or_max(v, args, "min", false);
}
Value f_max(const Value& v, const CallArgs& args) {
    return min_or_max(v, args, "max", true);
}

Value f_sum(const Value& v, const CallArgs& args) {
    BoundArgs a("sum", args, {"attribute", "start"});
    const std::vector<Value> parts = attribute_parts(a.get_or(0, Value::none()));
    Value total = a.get_or(1, Value::integer(0));
    if (total.is_string()) throw_runtime("sum() can't sum strings [use ''.join(seq) instead]");
    for (const Value& item : iterate(v))
        total = binary_op(ast::BinaryOp::add, total, lookup_parts(item, parts, nullptr));
    return total;
}

Value f_batch(const Value& v, const CallArgs& args) {
    BoundArgs a("batch", args, {"linecount", "fill_with"});
    const std::int64_t size = require_int(a.get(0), "linecount");
    std::vector<Value> batches;
    std::vector<Value> current;
    for (Value& item : iterate(v)) {  // Jinja's loop: a size of 0 yields one empty batch first
        if (static_cast<std::int64_t>(current.size()) == size)
            batches.push_back(Value::list(std::exchange(current, {})));
        current.push_back(std::move(item));
    }
    if (!current.empty()) {
        if (a.has(1) && !a.get(1).is_none()) {
            while (static_cast<std::int64_t>(current.size()) < size) current.push_back(a.get(1));
        }
        batches.push_back(Value::list(std::move(current)));
    }
    return make_generator(std::move(batches));
}

Value f_slice(const Value& v, const CallArgs& args) {
    BoundArgs a("slice", args, {"slices", "fill_with"});
    const std::int64_t slices = require_int(a.get(0), "slices");
    if (slices <= 0) throw_runtime("slices must be positive");
    const std::vector<Value> items = iterate(v);
    const auto n = static_cast<std::int64_t>(items.size());
    const std::int64_t per = n / slices;
    const std::int64_t with_extra = n % slices;
    std::vector<Value> out;
    std::int64_t offset = 0;
    for (std::int64_t i = 0; i < slices; ++i) {
        const std::int64_t start = offset + i * per;
        if (i < with_extra) ++offset;
        const std::int64_t end = offset + (i + 1) * per;
        std::vector<Value> part(items.begin() + start, items.begin() + end);
        if (a.has(1) && !a.get(1).is_none() && i >= with_extra) part.push_back(a.get(1));
        out.push_back(Value::list(std::move(part)));
    }
    return make_generator(std::move(out));
}

// Unlike `x.name`, never falls back to the item of that name.
Value f_attr(const Value& v, const CallArgs& args) {
    BoundArgs a("attr", args, {"name"});
    const std::string name = py_str(a.get(0));
    if (v.is_object()) return v.obj().get_attr(name);
    if (auto method = find_method(v, name)) return *method;
    return Value::undefined("'" + v.type_name() + " object' has no attribute '" + name + "'");
}

Value f_map(const Value& v, const CallArgs& args) {
    if (!v.truthy()) return make_generator({});
    std::vector<Value> out;
    if (args.positional.empty()) {
        const auto attribute = std::find_if(args.keyword.begin(), args.keyword.end(),
                                            [](const auto& kv) { return kv.first == "attribute"; });
        if (attribute == args.keyword.end()) throw_runtime("map requires a filter argument");
        std::optional<Value> fallback;
        for (const auto& [k, val] : args.keyword) {
            if (k == "default")
                fallback = val;
            else if (k != "attribute")
                throw_runtime("Unexpected keyword argument '" + k + "'");
        }
        const std::vector<Value> parts = attribute_parts(attribute->second);
        for (const Value& item : iterate(v)) out.push_back(lookup_parts(item, parts, fallback ? &*fallback : nullptr));
    } else {
        const std::string name = py_str(args.positional.front());
        CallArgs rest{{args.positional.begin() + 1, args.positional.end()}, args.keyword};
        for (const Value& item : iterate(v)) out.push_back(call_filter(name, item, rest));
    }
    return make_generator(std::move(out));
}

// select / reject / selectattr / rejectattr
Value select_or_reject(const Value& v, const CallArgs& args, bool keep_if, bool by_attribute) {
    if (!v.truthy()) return make_generator({});
    std::size_t offset = 0;
    std::vector<Value> parts;
    if (by_attribute) {
        if (args.positional.empty()) throw_runtime("Missing parameter for attribute name");
        parts = attribute_parts(args.positional.front());
        offset = 1;
    }
    const bool has_test = args.positional.size() > offset;
    const std::string test = has_test ? py_str(args.positional[offset]) : std::string();
    CallArgs test_args;
    if (has_test)
        test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(offset) + 1,
                                    args.positional.end());
    test_args.keyword = args.keyword;
    std::vector<Value> out;
    for (const Value& item : iterate(v)) {
        const Value subject = by_attribute ? lookup_parts(item, parts, nullptr) : item;
        const bool passed = has_test ? call_test(test, subject, test_args) : subject.truthy();
        if (passed == keep_if) out.push_back(item);
    }
    return make_generator(std::move(out));
}

Value f_select(const Value& v, const CallArgs& args) {
    return select_or_reject(v, args, true, false);
}
Value f_reject(const Value& v, const CallArgs& args) {
    return select_or_reject(v, args, false, false);
}
Value f_selectattr(const Value& v, const CallArgs& args) {
    return select_or_reject(v, args, true, true);
}
Value f_rejectattr(const Value& v, const CallArgs& args) {
    return select_or_reject(v, args, false, true);
}

constexpr std::pair<std::string_view, FilterFn> kFilters[] = {
    {"abs", f_abs},
    {"attr", f_attr},
    {"batch", f_batch},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"filesizeformat", f_filesizeformat},
    {"first", f_first},
    {"float", f_float},
    {"forceescape", f_escape},
    {"format", f_format},
    {"indent", f_indent},
    {"int", f_int},
    {"items", f_items},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"max", f_max},
    {"min", f_min},
    {"reject", f_reject},
    {"rejectattr", f_rejectattr},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"round", f_round},
    {"safe", f_safe},
    {"select", f_select},
    {"selectattr", f_selectattr},
    {"slice", f_slice},
    {"sort", f_sort},
    {"string", f_string},
    {"sum", f_sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"truncate", f_truncate},
    {"unique", f_unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

}  // namespace

FilterFn find_filter(std::string_view name) {
    for (const auto& [n, fn] : kFilters) {
        if (n == name) return fn;
    }
    return nullptr;
}

Value call_filter(std::string_view name, const Value& operand, const CallArgs& args) {
    const FilterFn fn = find_filter(name);
    if (fn == nullptr) throw_runtime("No filter named '" + std::string(name) + "' found.");
    return fn(operand, args);
}

}  // namespace tfx::jinja
