// UTF-8 <-> code points and per-code-point Unicode properties, as Python's str defines them.
//
// The character data comes from utf8proc, so it follows utf8proc's Unicode version (utf8proc 2.8:
// Unicode 15.0, the version of Python 3.12).
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

bool is_space(char32_t c);           // str.isspace
bool is_printable(char32_t c);       // str.isprintable
bool is_alpha(char32_t c);           // str.isalpha
bool is_decimal(char32_t c);         // str.isdecimal
bool is_digit(char32_t c);           // str.isdigit
bool is_numeric(char32_t c);         // str.isnumeric
bool is_cased(char32_t c);           // Unicode Cased
bool is_case_ignorable(char32_t c);  // Unicode Case_Ignorable
bool is_upper(char32_t c);           // Unicode Uppercase (Py_UNICODE_ISUPPER)
bool is_lower(char32_t c);           // Unicode Lowercase (Py_UNICODE_ISLOWER)
bool is_title(char32_t c);           // general category Lt (Py_UNICODE_ISTITLE)

// Full case mappings of one code point (may yield several code points). Lower-casing U+03A3
// also depends on its neighbours (final sigma); pystr handles that.
void append_upper(std::u32string& out, char32_t c);
void append_lower(std::u32string& out, char32_t c);
void append_title(std::u32string& out, char32_t c);
void append_casefold(std::u32string& out, char32_t c);

}  // namespace tfx::jinja::unicode
