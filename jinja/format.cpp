#include "jinja/format.h"

#include <cmath>
#include <cstdio>
#include <optional>

#include "jinja/pyrepr.h"
#include "jinja/pystr.h"
#include "jinja/runtime.h"
#include "jinja/unicode.h"

namespace tfx::jinja {
namespace {

// Widths and precisions beyond this are refused (Python refuses them past its int range).
constexpr std::int64_t kMaxWidth = 1 << 20;

// A parsed conversion spec, common to both formatting styles.
struct Spec {
    char32_t fill = U' ';
    char align = 0;  // '<', '>', '^', '=' or 0 for the type's default
    char sign = '-';
    bool alternate = false;
    bool zero_pad = false;
    std::int64_t width = -1;
    std::int64_t precision = -1;
    bool grouping = false;
    char type = 0;
};

std::string pad_to_width(std::string body, const Spec& spec, char default_align) {
    const auto length = static_cast<std::int64_t>(unicode::length(body));
    if (spec.width <= length) return body;
    const char align = spec.align ? spec.align : default_align;
    const std::int64_t margin = spec.width - length;
    check_string_size(body.size() + static_cast<std::size_t>(margin) * 4);
    std::string fill;
    unicode::append_utf8(fill, spec.fill);
    if (align == '=') {  // padding between the sign and the digits
        const std::size_t sign_len = !body.empty() && (body[0] == '+' || body[0] == '-' || body[0] == ' ') ? 1 : 0;
        return body.substr(0, sign_len) + pystr::repeat(fill, margin) + body.substr(sign_len);
    }
    if (align == '<') return body + pystr::repeat(fill, margin);
    if (align == '^') return pystr::repeat(fill, margin / 2) + body + pystr::repeat(fill, margin - margin / 2);
    return pystr::repeat(fill, margin) + body;
}

std::string with_sign(bool negative, std::string digits, char sign) {
    if (negative) return "-" + digits;
    if (sign == '+') return "+" + digits;
    if (sign == ' ') return " " + digits;
    return digits;
}

std::string group_thousands(const std::string& digits) {
    const std::size_t dot = digits.find_first_of(".eE");
    const std::string int_part = digits.substr(0, dot);
    std::string out;
    for (std::size_t i = 0; i < int_part.size(); ++i) {
        if (i > 0 && (int_part.size() - i) % 3 == 0) out += ',';
        out += int_part[i];
    }
    return dot == std::string::npos ? out : out + digits.substr(dot);
}

std::string format_integer(std::int64_t v, const Spec& spec) {
    const bool negative = v < 0;
    const unsigned long long magnitude =
        negative ? 0ULL - static_cast<unsigned long long>(v) : static_cast<unsigned long long>(v);
    char buf[80];
    std::string digits;
    switch (spec.type) {
        case 'x':
        case 'X':
        case 'o': {
            const char fmt[] = {'%', 'l', 'l', spec.type, 0};
            std::snprintf(buf, sizeof buf, fmt, magnitude);
            digits = buf;
            if (spec.alternate) digits = std::string("0") + (spec.type == 'o' ? 'o' : spec.type) + digits;
            break;
        }
        case 'b': {
            for (unsigned long long m = magnitude; m > 0; m >>= 1)
                digits.insert(digits.begin(), static_cast<char>('0' + (m & 1)));
            if (digits.empty()) digits = "0";
            if (spec.alternate) digits = "0b" + digits;
            break;
        }
        default:
            std::snprintf(buf, sizeof buf, "%llu", magnitude);
            digits = spec.grouping ? group_thousands(buf) : buf;
    }
    return with_sign(negative, digits, spec.sign);
}

std::string format_floating(double v, const Spec& spec) {
    char type = spec.type;
    std::int64_t precision = spec.precision < 0 ? 6 : std::min<std::int64_t>(spec.precision, 200);
    if (std::isnan(v) || std::isinf(v)) {
        const bool upper = type == 'F' || type == 'E' || type == 'G';
        std::string word = std::isnan(v) ? (upper ? "NAN" : "nan") : (upper ? "INF" : "inf");
        return with_sign(std::signbit(v) && !std::isnan(v), word, spec.sign);
    }
    std::string digits;
    if (type == 0) {  // str.format with no type: repr, or general format with a precision
        if (spec.precision < 0) {
            digits = float_repr(std::fabs(v));
            if (spec.grouping) digits = group_thousands(digits);
            return with_sign(std::signbit(v), digits, spec.sign);
        }
        type = 'g';
    }
    double magnitude = std::fabs(v);
    std::string suffix;
    if (type == '%') {
        magnitude *= 100;
        type = 'f';
        suffix = "%";
    }
    char fmt[16];
    std::snprintf(fmt, sizeof fmt, "%%%s.%d%c", spec.alternate ? "#" : "", static_cast<int>(precision), type);
    std::vector<char> buf(static_cast<std::size_t>(precision) + 400);
    std::snprintf(buf.data(), buf.size(), fmt, magnitude);
    digits = buf.data();
    if (spec.grouping) digits = group_thousands(digits);
    return with_sign(std::signbit(v), digits + suffix, spec.sign);
}

std::string format_value(const Value& v, const Spec& spec, bool percent_style) {
    const char type = spec.type;
    if (type == 's' || type == 'r' || type == 'a' || (type == 0 && !v.is_number())) {
        std::string text = type == 'r' || type == 'a' ? py_repr(v) : py_str(v);
        if (spec.precision >= 0) {
            const std::u32string cps = unicode::decode(text);
            text = unicode::encode(std::u32string_view(cps).substr(0, static_cast<std::size_t>(spec.precision)));
        }
        return pad_to_width(text, spec, percent_style ? '>' : '<');
    }
    if (type == 'c') {
        std::string text;
        if (v.is_integral()) {
            if (v.as_int() < 0 || v.as_int() > 0x10FFFF) throw_runtime("%c arg not in range(0x110000)");
            unicode::append_utf8(text, static_cast<char32_t>(v.as_int()));
        } else if (v.is_string() && unicode::length(v.str()) == 1) {
            text = v.str();
        } else {
            throw_runtime("%c requires int or char");
        }
        return pad_to_width(text, spec, percent_style ? '>' : '<');
    }
    if (!v.is_number()) {
        throw_runtime(std::string("format requires a number for '") + (type ? type : ' ') + "', not " + v.type_name());
    }
    if (type == 'n' && v.is_float()) {  // locale-less 'n' is 'g' for floats
        Spec general = spec;
        general.type = 'g';
        return format_value(v, general, percent_style);
    }
    std::string body;
    const bool integer_type = type == 'd' || type == 'i' || type == 'u' || type == 'x' || type == 'X' || type == 'o' ||
                              type == 'b' || type == 'n';
    if (integer_type || (type == 0 && v.is_integral())) {
        std::int64_t i = v.is_integral() ? v.as_int() : 0;
        if (v.is_float()) {
            if (!percent_style)
                throw_runtime("Unknown format code '" + std::string(1, type) + "' for object of type 'float'");
            if (!std::isfinite(v.as_double())) throw_runtime("cannot convert float to integer");
            i = static_cast<std::int64_t>(v.as_double());
        }
        body = format_integer(i, spec);
    } else if (type == 0 || std::string_view("eEfFgG%").find(type) != std::string_view::npos) {
        body = format_floating(v.as_double(), spec);
    } else {
        throw_runtime("Unknown format code '" + std::string(1, type) + "' for object of type '" + v.type_name() + "'");
    }
    if (spec.zero_pad && !spec.align) {
        Spec zero = spec;
        zero.fill = U'0';
        zero.align = '=';
        return pad_to_width(body, zero, '>');
    }
    return pad_to_width(body, spec, '>');
}

// ---- printf style ------------------------------------------------------------------------------

class PercentFormatter {
  public:
    PercentFormatter(std::string_view fmt, const Value& args) : fmt_(fmt), args_(args) {
        if (args.is_seq(SeqKind::tuple)) {
            positional_ = args.seq().items;
        } else {
            positional_ = {args};
        }
    }

    std::string run() {
        std::string out;
        for (std::size_t i = 0; i < fmt_.size(); ++i) {
            if (fmt_[i] != '%') {
                out += fmt_[i];
                continue;
            }
            i = convert(i + 1, out);
            check_string_size(out.size());
        }
        // Like CPython: an argument that supports [] (a dict, a list, ...) may go unused.
        const bool subscriptable =
            args_.is_dict() || args_.is_undefined() ||
            (args_.is_sequence() && args_.seq().subscriptable() && !args_.is_seq(SeqKind::tuple));
        if (!used_mapping_ && !subscriptable && next_ < positional_.size()) {
            throw_runtime("not all arguments converted during string formatting");
        }
        return out;
    }

  private:
    [[noreturn]] static void incomplete() { throw_runtime("incomplete format"); }

    const Value& next_arg() {
        if (next_ >= positional_.size()) throw_runtime("not enough arguments for format string");
        return positional_[next_++];
    }

    std::int64_t number_at(std::size_t& i) {
        if (i < fmt_.size() && fmt_[i] == '*') {
            ++i;
            return require_int(next_arg(), "* width");
        }
        std::int64_t n = 0;
        while (i < fmt_.size() && fmt_[i] >= '0' && fmt_[i] <= '9') {
            n = n * 10 + (fmt_[i] - '0');
            if (n > kMaxWidth) throw_runtime("width too big");
            ++i;
        }
        return n;
    }

    // Handles one conversion starting after '%'; returns the index of its last character.
    std::size_t convert(std::size_t i, std::string& out) {
        const std::size_t start = i;
        if (i >= fmt_.size()) incomplete();
        std::optional<Value> mapped;
        if (fmt_[i] == '(') {
            const std::size_t close = fmt_.find(')', i);
            if (close == std::string_view::npos) throw_runtime("incomplete format key");
            if (!args_.is_dict()) throw_runtime("format requires a mapping");
            const Value* v = args_.dict().find(fmt_.substr(i + 1, close - i - 1));
            if (v == nullptr) throw_runtime("KeyError: '" + std::string(fmt_.substr(i + 1, close - i - 1)) + "'");
            mapped = *v;
            used_mapping_ = true;
            i = close + 1;
        }
        Spec spec;
        for (; i < fmt_.size(); ++i) {
            const char f = fmt_[i];
            if (f == '-')
                spec.align = '<';
            else if (f == '+')
                spec.sign = '+';
            else if (f == ' ') {
                if (spec.sign != '+') spec.sign = ' ';
            } else if (f == '#')
                spec.alternate = true;
            else if (f == '0')
                spec.zero_pad = true;
            else
                break;
        }
        const bool has_width = i < fmt_.size() && (fmt_[i] == '*' || (fmt_[i] >= '0' && fmt_[i] <= '9'));
        if (has_width) {
            spec.width = number_at(i);
            if (spec.width < 0) {
                spec.align = '<';
                spec.width = -spec.width;
            }
        }
        if (i < fmt_.size() && fmt_[i] == '.') {
            ++i;
            spec.precision = std::max<std::int64_t>(number_at(i), 0);
        }
        while (i < fmt_.size() && (fmt_[i] == 'h' || fmt_[i] == 'l' || fmt_[i] == 'L')) ++i;
        if (i >= fmt_.size()) incomplete();
        const char type = fmt_[i];
        if (type == '%') {
            if (i != start) throw_runtime("unsupported format character '%'");
            out += '%';
            return i;
        }
        if (std::string_view("diouxXeEfFgGcrsa").find(type) == std::string_view::npos) {
            throw_runtime("unsupported format character '" + std::string(1, type) + "'");
        }
        spec.type = type == 'i' || type == 'u' ? 'd' : type;
        if (spec.align == '<') spec.zero_pad = false;
        const Value& v = mapped ? *mapped : next_arg();
        if (std::string_view("dxXo").find(spec.type) != std::string_view::npos && v.is_string()) {
            throw_runtime(std::string("%") + type + " format: a real number is required, not str");
        }
        if (std::string_view("eEfFgG").find(spec.type) != std::string_view::npos && !v.is_number()) {
            throw_runtime("must be real number, not " + v.type_name());
        }
        out += format_value(v, spec, true);
        return i;
    }

    std::string_view fmt_;
    const Value& args_;
    std::vector<Value> positional_;
    std::size_t next_ = 0;
    bool used_mapping_ = false;
};

// ---- str.format ---------------------------------------------------------------------------------

Spec parse_format_spec(std::string_view s) {
    Spec spec;
    const std::u32string cps = unicode::decode(s);
    std::size_t i = 0;
    auto is_align = [](char32_t c) { return c == U'<' || c == U'>' || c == U'^' || c == U'='; };
    if (cps.size() >= 2 && is_align(cps[1])) {
        spec.fill = cps[0];
        spec.align = static_cast<char>(cps[1]);
        i = 2;
    } else if (!cps.empty() && is_align(cps[0])) {
        spec.align = static_cast<char>(cps[0]);
        i = 1;
    }
    if (i < cps.size() && (cps[i] == U'+' || cps[i] == U'-' || cps[i] == U' ')) spec.sign = static_cast<char>(cps[i++]);
    if (i < cps.size() && cps[i] == U'#') {
        spec.alternate = true;
        ++i;
    }
    if (i < cps.size() && cps[i] == U'0') {
        spec.zero_pad = true;
        ++i;
    }
    auto number = [&]() {
        std::int64_t n = 0;
        while (i < cps.size() && cps[i] >= U'0' && cps[i] <= U'9') {
            n = n * 10 + (cps[i++] - U'0');
            if (n > kMaxWidth) throw_runtime("Too many decimal digits in format string");
        }
        return n;
    };
    if (i < cps.size() && cps[i] >= U'0' && cps[i] <= U'9') spec.width = number();
    if (i < cps.size() && cps[i] == U',') {
        spec.grouping = true;
        ++i;
    }
    if (i < cps.size() && cps[i] == U'.') {
        ++i;
        spec.precision = number();
    }
    if (i < cps.size()) spec.type = static_cast<char>(cps[i++]);
    if (i < cps.size()) throw_runtime("Invalid format specifier");
    return spec;
}

}  // namespace

std::string percent_format(std::string_view fmt, const Value& args) {
    return PercentFormatter(fmt, args).run();
}

std::string str_format(std::string_view fmt, const CallArgs& args) {
    std::string out;
    std::size_t auto_index = 0;
    for (std::size_t i = 0; i < fmt.size(); ++i) {
        const char c = fmt[i];
        if (c == '}') {
            if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
                out += '}';
                ++i;
                continue;
            }
            throw_runtime("Single '}' encountered in format string");
        }
        if (c != '{') {
            out += c;
            continue;
        }
        if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
            out += '{';
            ++i;
            continue;
        }
        const std::size_t close = fmt.find('}', i);
        if (close == std::string_view::npos) throw_runtime("expected '}' before end of string");
        std::string_view field = fmt.substr(i + 1, close - i - 1);
        i = close;
        std::string_view spec_text;
        if (const std::size_t colon = field.find(':'); colon != std::string_view::npos) {
            spec_text = field.substr(colon + 1);
            field = field.substr(0, colon);
        }
        char conversion = 0;
        if (const std::size_t bang = field.find('!'); bang != std::string_view::npos) {
            if (bang + 2 != field.size()) throw_runtime("invalid conversion in format string");
            conversion = field[bang + 1];
            field = field.substr(0, bang);
        }
        // The argument name, then any .attr / [key] accessors.
        const std::size_t accessor = field.find_first_of(".[");
        const std::string_view name = field.substr(0, accessor);
        Value v;
        const bool numeric =
            !name.empty() && name.size() < 10 && name.find_first_not_of("0123456789") == std::string_view::npos;
        if (name.empty() || numeric) {
            const std::size_t index =
                name.empty() ? auto_index++ : static_cast<std::size_t>(std::stoul(std::string(name)));
            if (index >= args.positional.size())
                throw_runtime("Replacement index " + std::to_string(index) + " out of range");
            v = args.positional[index];
        } else {
            const auto it = std::find_if(args.keyword.begin(), args.keyword.end(),
                                         [&](const auto& kv) { return kv.first == name; });
            if (it == args.keyword.end()) throw_runtime("KeyError: '" + std::string(name) + "'");
            v = it->second;
        }
        for (std::size_t k = accessor; k < field.size();) {
            if (field[k] == '.') {
                const std::size_t end = field.find_first_of(".[", k + 1);
                v = get_attr(v, field.substr(k + 1, end - k - 1));
                k = end;
            } else {
                const std::size_t end = field.find(']', k);
                if (end == std::string_view::npos) throw_runtime("Missing ']' in format string");
                const std::string key(field.substr(k + 1, end - k - 1));
                const bool digits =
                    !key.empty() && key.size() < 18 && key.find_first_not_of("0123456789") == std::string::npos;
                v = get_item(v, digits ? Value::integer(std::stoll(key)) : Value::string(key));
                k = end + 1;
            }
        }
        if (v.is_undefined()) throw_undefined(v);
        if (conversion == 'r' || conversion == 'a')
            v = Value::string(py_repr(v));
        else if (conversion == 's')
            v = Value::string(py_str(v));
        else if (conversion != 0)
            throw_runtime("Unknown conversion specifier " + std::string(1, conversion));
        out += format_value(v, parse_format_spec(spec_text), false);
        check_string_size(out.size());
    }
    return out;
}

}  // namespace tfx::jinja
