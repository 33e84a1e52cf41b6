#include "jinja/unicode.h"

#include <algorithm>
#include <span>

#include "jinja/unicode_data.h"
#include "jinja/value.h"

namespace tfx::jinja::unicode {
namespace {

using unicode_data::CaseRun;
using unicode_data::Range;
using unicode_data::SpecialCase;

constexpr char32_t kEscapeBase = 0xDC00;  // surrogateescape: byte b <-> U+DC00 + b

bool in_ranges(std::span<const Range> ranges, char32_t c) {
    auto it = std::upper_bound(ranges.begin(), ranges.end(), static_cast<std::uint32_t>(c),
                               [](std::uint32_t v, const Range& r) { return v < r.first; });
    return it != ranges.begin() && static_cast<std::uint32_t>(c) <= std::prev(it)->last;
}

// Appends the case mapping of c; returns false when c maps to itself.
bool map_case(std::u32string& out, char32_t c, std::span<const CaseRun> runs,
              std::span<const SpecialCase> special) {
    const auto cp = static_cast<std::uint32_t>(c);
    auto sp = std::lower_bound(special.begin(), special.end(), cp,
                               [](const SpecialCase& s, std::uint32_t v) { return s.code_point < v; });
    if (sp != special.end() && sp->code_point == cp) {
        out += sp->mapping;
        return true;
    }
    auto it = std::upper_bound(runs.begin(), runs.end(), cp,
                               [](std::uint32_t v, const CaseRun& r) { return v < r.first; });
    if (it != runs.begin()) {
        const CaseRun& run = *std::prev(it);
        if (cp <= run.last && (cp - run.first) % static_cast<std::uint32_t>(run.stride) == 0) {
            out += static_cast<char32_t>(static_cast<std::int64_t>(cp) + run.delta);
            return true;
        }
    }
    out += c;
    return false;
}

int sequence_length(unsigned char lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) return 2;
    if (lead >= 0xE0 && lead <= 0xEF) return 3;
    if (lead >= 0xF0 && lead <= 0xF4) return 4;
    return 0;
}

// Decodes one code point at s[i]; advances i. Invalid input yields one escaped byte.
char32_t next_code_point(std::string_view s, std::size_t& i) {
    const auto lead = static_cast<unsigned char>(s[i]);
    const int n = sequence_length(lead);
    if (n == 1) {
        ++i;
        return lead;
    }
    if (n == 0 || i + static_cast<std::size_t>(n) > s.size()) {
        ++i;
        return kEscapeBase + lead;
    }
    char32_t c = lead & (0xFF >> (n + 1));
    for (int k = 1; k < n; ++k) {
        const auto b = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
        if ((b & 0xC0) != 0x80) {
            ++i;
            return kEscapeBase + lead;
        }
        c = (c << 6) | (b & 0x3F);
    }
    // Reject overlong forms and UTF-16 surrogates, as a strict decoder does.
    const bool overlong = (n == 3 && c < 0x800) || (n == 4 && c < 0x10000);
    if (overlong || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) {
        ++i;
        return kEscapeBase + lead;
    }
    i += static_cast<std::size_t>(n);
    return c;
}

}  // namespace

std::u32string decode(std::string_view utf8) {
    charge_work(utf8.size() * sizeof(char32_t));
    std::u32string out;
    out.reserve(utf8.size());
    for (std::size_t i = 0; i < utf8.size();) out += next_code_point(utf8, i);
    return out;
}

void append_utf8(std::string& out, char32_t c) {
    if (c >= kEscapeBase + 0x80 && c <= kEscapeBase + 0xFF) {
        out += static_cast<char>(c - kEscapeBase);
    } else if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (c >> 18));
        out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    }
}

std::string encode(std::u32string_view code_points) {
    std::string out;
    out.reserve(code_points.size());
    for (char32_t c : code_points) append_utf8(out, c);
    return out;
}

std::size_t length(std::string_view utf8) {
    charge_work(utf8.size());
    std::size_t n = 0;
    for (std::size_t i = 0; i < utf8.size(); ++n) next_code_point(utf8, i);
    return n;
}

bool is_space(char32_t c) {
    if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_printable(char32_t c) { return !in_ranges(unicode_data::kNonPrintable, c); }
bool is_cased(char32_t c) { return in_ranges(unicode_data::kCased, c); }
bool is_case_ignorable(char32_t c) { return in_ranges(unicode_data::kCaseIgnorable, c); }
bool is_alpha(char32_t c) { return in_ranges(unicode_data::kAlpha, c); }
bool is_decimal(char32_t c) { return in_ranges(unicode_data::kDecimal, c); }

bool is_upper(char32_t c) {
    std::u32string tmp;
    return is_cased(c) && !map_case(tmp, c, unicode_data::kUpperRuns, unicode_data::kUpperSpecial);
}

bool is_lower(char32_t c) {
    std::u32string tmp;
    return is_cased(c) && !map_case(tmp, c, unicode_data::kLowerRuns, unicode_data::kLowerSpecial);
}

void append_upper(std::u32string& out, char32_t c) {
    map_case(out, c, unicode_data::kUpperRuns, unicode_data::kUpperSpecial);
}

void append_lower(std::u32string& out, char32_t c) {
    map_case(out, c, unicode_data::kLowerRuns, unicode_data::kLowerSpecial);
}

void append_title(std::u32string& out, char32_t c) {
    map_case(out, c, unicode_data::kTitleRuns, unicode_data::kTitleSpecial);
}

}  // namespace tfx::jinja::unicode
