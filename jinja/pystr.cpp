#include "jinja/pystr.h"

#include <algorithm>

#include "jinja/error.h"
#include "jinja/unicode.h"
#include "jinja/value.h"

namespace tfx::jinja::pystr {
namespace {

using unicode::decode;
using unicode::encode;

// Python's slice-bound normalisation for str.find and friends.
std::pair<std::size_t, std::size_t> resolve(std::size_t length, Bounds bounds) {
    const auto n = static_cast<std::int64_t>(length);
    auto fix = [n](std::int64_t i) { return i < 0 ? std::max<std::int64_t>(i + n, 0) : std::min(i, n); };
    const std::int64_t start = bounds.start ? fix(*bounds.start) : 0;
    const std::int64_t end = bounds.end ? fix(*bounds.end) : n;
    return {static_cast<std::size_t>(start), static_cast<std::size_t>(std::max(start, end))};
}

// U+03A3 lower-cases to a final sigma at the end of a word (Unicode's Final_Sigma condition).
bool is_final_sigma(const std::u32string& s, std::size_t i) {
    std::size_t j = i;
    bool cased_before = false;
    while (j > 0) {
        --j;
        if (unicode::is_case_ignorable(s[j])) continue;
        cased_before = unicode::is_cased(s[j]);
        break;
    }
    if (!cased_before) return false;
    for (std::size_t k = i + 1; k < s.size(); ++k) {
        if (unicode::is_case_ignorable(s[k])) continue;
        return !unicode::is_cased(s[k]);
    }
    return true;
}

void append_lower_at(std::u32string& out, const std::u32string& s, std::size_t i) {
    if (s[i] == 0x3A3) {
        out += is_final_sigma(s, i) ? char32_t{0x3C2} : char32_t{0x3C3};
    } else {
        unicode::append_lower(out, s[i]);
    }
}

std::vector<std::string> split_whitespace(const std::u32string& s, std::int64_t maxsplit) {
    std::vector<std::string> parts;
    std::size_t i = 0;
    while (true) {
        while (i < s.size() && unicode::is_space(s[i])) ++i;
        if (i == s.size()) break;
        if (maxsplit >= 0 && static_cast<std::int64_t>(parts.size()) == maxsplit) {
            std::size_t end = s.size();
            while (end > i && unicode::is_space(s[end - 1])) --end;
            parts.push_back(encode(std::u32string_view(s).substr(i, end - i)));
            break;
        }
        std::size_t j = i;
        while (j < s.size() && !unicode::is_space(s[j])) ++j;
        parts.push_back(encode(std::u32string_view(s).substr(i, j - i)));
        i = j;
    }
    return parts;
}

std::vector<std::string> rsplit_whitespace(const std::u32string& s, std::int64_t maxsplit) {
    std::vector<std::string> parts;
    std::size_t i = s.size();
    while (true) {
        while (i > 0 && unicode::is_space(s[i - 1])) --i;
        if (i == 0) break;
        if (maxsplit >= 0 && static_cast<std::int64_t>(parts.size()) == maxsplit) {
            std::size_t begin = 0;
            while (begin < i && unicode::is_space(s[begin])) ++begin;
            parts.push_back(encode(std::u32string_view(s).substr(begin, i - begin)));
            break;
        }
        std::size_t j = i;
        while (j > 0 && !unicode::is_space(s[j - 1])) --j;
        parts.push_back(encode(std::u32string_view(s).substr(j, i - j)));
        i = j;
    }
    std::reverse(parts.begin(), parts.end());
    return parts;
}

void require_separator(const std::string& sep) {
    if (sep.empty()) throw Error(ErrorKind::runtime, "empty separator");
}

bool is_line_break(char32_t c) {
    return c == U'\n' || c == U'\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
           c == 0x2028 || c == 0x2029;
}

std::string pad(std::string_view s, std::int64_t width, char32_t fill, std::int64_t left_share) {
    const auto length = static_cast<std::int64_t>(unicode::length(s));
    if (width <= length) return std::string(s);
    std::string fill_utf8;
    unicode::append_utf8(fill_utf8, fill);
    const std::int64_t margin = width - length;
    const std::int64_t left = left_share < 0 ? margin / 2 + (margin & width & 1) : left_share;
    check_string_size(s.size() + static_cast<std::size_t>(margin) * fill_utf8.size());
    std::string out = repeat(fill_utf8, left);
    out += s;
    out += repeat(fill_utf8, margin - left);
    return out;
}

template <class Pred>
bool all_of_nonempty(std::string_view s, Pred pred) {
    const std::u32string cps = decode(s);
    return !cps.empty() && std::all_of(cps.begin(), cps.end(), pred);
}

}  // namespace

std::string strip(std::string_view s, const std::optional<std::string>& chars, StripSide side) {
    const std::u32string cps = decode(s);
    const std::u32string set = chars ? decode(*chars) : std::u32string();
    auto strippable = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : unicode::is_space(c); };
    std::size_t begin = 0;
    std::size_t end = cps.size();
    if (side != StripSide::right) {
        while (begin < end && strippable(cps[begin])) ++begin;
    }
    if (side != StripSide::left) {
        while (end > begin && strippable(cps[end - 1])) --end;
    }
    return encode(std::u32string_view(cps).substr(begin, end - begin));
}

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, std::int64_t maxsplit) {
    if (!sep) return split_whitespace(decode(s), maxsplit);
    require_separator(*sep);
    std::vector<std::string> parts;
    std::size_t pos = 0;
    while (maxsplit < 0 || static_cast<std::int64_t>(parts.size()) < maxsplit) {
        const std::size_t hit = s.find(*sep, pos);
        if (hit == std::string_view::npos) break;
        parts.emplace_back(s.substr(pos, hit - pos));
        pos = hit + sep->size();
    }
    parts.emplace_back(s.substr(pos));
    return parts;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, std::int64_t maxsplit) {
    if (!sep) return rsplit_whitespace(decode(s), maxsplit);
    require_separator(*sep);
    std::vector<std::string> parts;
    std::size_t end = s.size();
    while (maxsplit < 0 || static_cast<std::int64_t>(parts.size()) < maxsplit) {
        if (end < sep->size()) break;
        const std::size_t hit = s.rfind(*sep, end - sep->size());
        if (hit == std::string_view::npos) break;
        parts.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
        end = hit;
    }
    parts.emplace_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
    const std::u32string cps = decode(s);
    std::vector<std::string> lines;
    std::size_t begin = 0;
    for (std::size_t i = 0; i < cps.size(); ++i) {
        if (!is_line_break(cps[i])) continue;
        std::size_t next = i + 1;
        if (cps[i] == U'\r' && next < cps.size() && cps[next] == U'\n') ++next;
        const std::size_t end = keepends ? next : i;
        lines.push_back(encode(std::u32string_view(cps).substr(begin, end - begin)));
        begin = next;
        i = next - 1;
    }
    if (begin < cps.size()) lines.push_back(encode(std::u32string_view(cps).substr(begin)));
    return lines;
}

std::string replace(std::string_view s, std::string_view old, std::string_view with, std::int64_t count) {
    std::string out;
    std::int64_t done = 0;
    if (old.empty()) {  // Python inserts `with` around every code point
        const std::u32string cps = decode(s);
        for (std::size_t i = 0; i <= cps.size(); ++i) {
            if (count < 0 || done < count) {
                out += with;
                ++done;
            }
            if (i < cps.size()) unicode::append_utf8(out, cps[i]);
            check_string_size(out.size());
        }
        return out;
    }
    std::size_t pos = 0;
    while (count < 0 || done < count) {
        const std::size_t hit = s.find(old, pos);
        if (hit == std::string_view::npos) break;
        out += s.substr(pos, hit - pos);
        out += with;
        check_string_size(out.size());
        pos = hit + old.size();
        ++done;
    }
    out += s.substr(pos);
    return out;
}

std::string upper(std::string_view s) {
    std::u32string out;
    for (char32_t c : decode(s)) unicode::append_upper(out, c);
    return encode(out);
}

std::string lower(std::string_view s) {
    const std::u32string cps = decode(s);
    std::u32string out;
    for (std::size_t i = 0; i < cps.size(); ++i) append_lower_at(out, cps, i);
    return encode(out);
}

std::string casefold(std::string_view s) {
    std::u32string out;
    for (char32_t c : decode(s)) unicode::append_casefold(out, c);
    return encode(out);
}

std::string title(std::string_view s) {
    const std::u32string cps = decode(s);
    std::u32string out;
    bool previous_cased = false;
    for (std::size_t i = 0; i < cps.size(); ++i) {
        if (previous_cased) {
            append_lower_at(out, cps, i);
        } else {
            unicode::append_title(out, cps[i]);
        }
        previous_cased = unicode::is_cased(cps[i]);
    }
    return encode(out);
}

std::string capitalize(std::string_view s) {
    const std::u32string cps = decode(s);
    std::u32string out;
    for (std::size_t i = 0; i < cps.size(); ++i) {
        if (i == 0) {
            unicode::append_title(out, cps[i]);
        } else {
            append_lower_at(out, cps, i);
        }
    }
    return encode(out);
}

std::string swapcase(std::string_view s) {
    const std::u32string cps = decode(s);
    std::u32string out;
    for (std::size_t i = 0; i < cps.size(); ++i) {
        if (unicode::is_upper(cps[i])) {
            append_lower_at(out, cps, i);
        } else if (unicode::is_lower(cps[i])) {
            unicode::append_upper(out, cps[i]);
        } else {
            out += cps[i];
        }
    }
    return encode(out);
}

std::int64_t find(std::string_view s, std::string_view sub, Bounds bounds) {
    const std::u32string cps = decode(s);
    const std::u32string needle = decode(sub);
    const auto [begin, end] = resolve(cps.size(), bounds);
    if (end - begin < needle.size()) return -1;
    const std::size_t hit = std::u32string_view(cps).substr(0, end).find(needle, begin);
    return hit == std::u32string::npos ? -1 : static_cast<std::int64_t>(hit);
}

std::int64_t rfind(std::string_view s, std::string_view sub, Bounds bounds) {
    const std::u32string cps = decode(s);
    const std::u32string needle = decode(sub);
    const auto [begin, end] = resolve(cps.size(), bounds);
    if (end - begin < needle.size()) return -1;
    const std::size_t hit = std::u32string_view(cps).substr(0, end).rfind(needle);
    return hit == std::u32string::npos || hit < begin ? -1 : static_cast<std::int64_t>(hit);
}

std::int64_t count(std::string_view s, std::string_view sub, Bounds bounds) {
    const std::u32string cps = decode(s);
    const std::u32string needle = decode(sub);
    const auto [begin, end] = resolve(cps.size(), bounds);
    if (end - begin < needle.size()) return 0;
    if (needle.empty()) return static_cast<std::int64_t>(end - begin + 1);
    const std::u32string_view hay = std::u32string_view(cps).substr(0, end);
    std::int64_t n = 0;
    for (std::size_t pos = hay.find(needle, begin); pos != std::u32string_view::npos;
         pos = hay.find(needle, pos + needle.size())) {
        ++n;
    }
    return n;
}

bool startswith(std::string_view s, std::string_view prefix, Bounds bounds) {
    const std::u32string cps = decode(s);
    const std::u32string p = decode(prefix);
    const auto [begin, end] = resolve(cps.size(), bounds);
    if (bounds.start && static_cast<std::size_t>(std::max<std::int64_t>(*bounds.start, 0)) > cps.size()) return false;
    return end - begin >= p.size() && std::u32string_view(cps).substr(begin, p.size()) == p;
}

bool endswith(std::string_view s, std::string_view suffix, Bounds bounds) {
    const std::u32string cps = decode(s);
    const std::u32string p = decode(suffix);
    const auto [begin, end] = resolve(cps.size(), bounds);
    if (bounds.start && static_cast<std::size_t>(std::max<std::int64_t>(*bounds.start, 0)) > cps.size()) return false;
    return end - begin >= p.size() && std::u32string_view(cps).substr(end - p.size(), p.size()) == p;
}

std::string center(std::string_view s, std::int64_t width, char32_t fill) {
    return pad(s, width, fill, -1);
}
std::string ljust(std::string_view s, std::int64_t width, char32_t fill) {
    return pad(s, width, fill, 0);
}

std::string rjust(std::string_view s, std::int64_t width, char32_t fill) {
    const auto length = static_cast<std::int64_t>(unicode::length(s));
    return pad(s, width, fill, std::max<std::int64_t>(width - length, 0));
}

std::string zfill(std::string_view s, std::int64_t width) {
    const auto length = static_cast<std::int64_t>(unicode::length(s));
    if (width <= length) return std::string(s);
    const bool sign = !s.empty() && (s[0] == '+' || s[0] == '-');
    check_string_size(static_cast<std::size_t>(width));
    std::string out = sign ? std::string(1, s[0]) : std::string();
    out += std::string(static_cast<std::size_t>(width - length), '0');
    out += s.substr(sign ? 1 : 0);
    return out;
}

bool isalpha(std::string_view s) {
    return all_of_nonempty(s, unicode::is_alpha);
}
bool isdecimal(std::string_view s) {
    return all_of_nonempty(s, unicode::is_decimal);
}
bool isdigit(std::string_view s) {
    return all_of_nonempty(s, unicode::is_digit);
}
bool isnumeric(std::string_view s) {
    return all_of_nonempty(s, unicode::is_numeric);
}
// Python: isalpha or isdecimal or isdigit or isnumeric, and numeric includes the other two.
bool isalnum(std::string_view s) {
    return all_of_nonempty(s, [](char32_t c) { return unicode::is_alpha(c) || unicode::is_numeric(c); });
}
bool isspace(std::string_view s) {
    return all_of_nonempty(s, unicode::is_space);
}

bool isupper(std::string_view s) {
    bool cased = false;
    for (char32_t c : decode(s)) {
        if (unicode::is_lower(c) || unicode::is_title(c)) return false;
        cased = cased || unicode::is_upper(c);
    }
    return cased;
}

bool islower(std::string_view s) {
    bool cased = false;
    for (char32_t c : decode(s)) {
        if (unicode::is_upper(c) || unicode::is_title(c)) return false;
        cased = cased || unicode::is_lower(c);
    }
    return cased;
}

// Upper- and title-case characters may only follow uncased ones, lower-case only cased ones.
bool istitle(std::string_view s) {
    bool cased = false;
    bool previous_cased = false;
    for (char32_t c : decode(s)) {
        if (unicode::is_upper(c) || unicode::is_title(c)) {
            if (previous_cased) return false;
            previous_cased = cased = true;
        } else if (unicode::is_lower(c)) {
            if (!previous_cased) return false;
            previous_cased = cased = true;
        } else {
            previous_cased = false;
        }
    }
    return cased;
}

std::string repeat(std::string_view s, std::int64_t times) {
    if (times <= 0 || s.empty()) return {};
    if (static_cast<std::size_t>(times) > kMaxStringBytes / s.size()) check_string_size(kMaxStringBytes + 1);
    std::string out;
    out.reserve(s.size() * static_cast<std::size_t>(times));
    for (std::int64_t i = 0; i < times; ++i) out += s;
    return out;
}

}  // namespace tfx::jinja::pystr
