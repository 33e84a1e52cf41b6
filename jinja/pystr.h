// Python str methods on UTF-8 strings. Positions and lengths are in code points, as in Python.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tfx::jinja::pystr {

enum class StripSide { both, left, right };
// chars unset: strip Unicode whitespace (str.isspace).
std::string strip(std::string_view s, const std::optional<std::string>& chars, StripSide side);

// sep unset: split on runs of whitespace and drop empty parts. maxsplit < 0: no limit.
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, std::int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, std::int64_t maxsplit);
std::vector<std::string> splitlines(std::string_view s, bool keepends);

std::string replace(std::string_view s, std::string_view old, std::string_view with, std::int64_t count);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string casefold(std::string_view s);
std::string title(std::string_view s);
std::string capitalize(std::string_view s);
std::string swapcase(std::string_view s);

// Python's optional start/end arguments, already resolved to code point bounds.
struct Bounds {
    std::optional<std::int64_t> start;
    std::optional<std::int64_t> end;
};
std::int64_t find(std::string_view s, std::string_view sub, Bounds bounds);   // -1 when absent
std::int64_t rfind(std::string_view s, std::string_view sub, Bounds bounds);  // -1 when absent
std::int64_t count(std::string_view s, std::string_view sub, Bounds bounds);
bool startswith(std::string_view s, std::string_view prefix, Bounds bounds);
bool endswith(std::string_view s, std::string_view suffix, Bounds bounds);

std::string center(std::string_view s, std::int64_t width, char32_t fill);
std::string ljust(std::string_view s, std::int64_t width, char32_t fill);
std::string rjust(std::string_view s, std::int64_t width, char32_t fill);
std::string zfill(std::string_view s, std::int64_t width);

bool isalpha(std::string_view s);
bool isdecimal(std::string_view s);
bool isdigit(std::string_view s);
bool isnumeric(std::string_view s);
bool isalnum(std::string_view s);
bool isspace(std::string_view s);
bool isupper(std::string_view s);
bool islower(std::string_view s);
bool istitle(std::string_view s);

std::string repeat(std::string_view s, std::int64_t times);

}  // namespace tfx::jinja::pystr
