// UTF-8 <-> code points and per-code-point Unicode properties, as Python 3.11 defines them.
//
// Strings inside the engine are UTF-8. Bytes that are not valid UTF-8 decode to U+DC80..U+DCFF
// (Python's "surrogateescape") and encode back to the same byte, so no input is ever lost.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tfx::jinja::unicode {

std::u32string decode(std::string_view utf8);
std::string encode(std::u32string_view code_points);
void append_utf8(std::string& out, char32_t code_point);

// Number of code points (Python len()).
std::size_t length(std::string_view utf8);

bool is_space(char32_t c);  // str.isspace
bool is_printable(char32_t c);  // str.isprintable
bool is_cased(char32_t c);
bool is_case_ignorable(char32_t c);
bool is_alpha(char32_t c);
bool is_decimal(char32_t c);
bool is_upper(char32_t c);  // cased and unchanged by upper-casing
bool is_lower(char32_t c);  // cased and unchanged by lower-casing

// Full case mappings of one code point (may yield several code points).
void append_upper(std::u32string& out, char32_t c);
void append_lower(std::u32string& out, char32_t c);
void append_title(std::u32string& out, char32_t c);

}  // namespace tfx::jinja::unicode
