// UTF-8 helpers and the Unicode character classes the Hugging Face pipeline relies on.
// Classes mirror the Rust predicates `tokenizers` uses (char::is_whitespace, the regex
// crate's \w, unicode_categories' is_punctuation ...); category data comes from utf8proc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tfx::tok::utf8 {

// Byte length of a UTF-8 sequence from its lead byte (1 for stray continuation bytes).
inline size_t seq_len(unsigned char lead) {
    if (lead < 0x80) return 1;
    if (lead < 0xE0) return lead < 0xC0 ? 1 : 2;
    if (lead < 0xF0) return 3;
    return 4;
}

// Decodes the code point starting at s[i]; `s` must be valid UTF-8.
inline char32_t decode(std::string_view s, size_t i, size_t& len) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
        len = 1;
        return b0;
    }
    len = seq_len(b0);
    char32_t c = b0 & (0xFF >> (len + 1));
    for (size_t k = 1; k < len; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    return c;
}

inline size_t encoded_len(char32_t c) {
    return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
}

inline void append(std::string& out, char32_t c) {
    if (c < 0x80) {
        out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (c >> 6)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (c >> 12)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (c >> 18)));
        out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
}

// Byte index of the first invalid sequence, or nullopt when `s` is valid UTF-8.
std::optional<size_t> find_invalid(std::string_view s);

// Rust's String::from_utf8_lossy: each maximal invalid subpart becomes U+FFFD.
std::string lossy(std::string_view bytes);

// Number of code points in valid UTF-8.
size_t char_count(std::string_view s);

// --- character classes -------------------------------------------------------------
bool is_whitespace(char32_t c);        // Rust char::is_whitespace (White_Space property)
bool is_numeric(char32_t c);           // Rust char::is_numeric (Nd, Nl, No)
bool is_punctuation(char32_t c);       // General category P*
bool is_bert_punctuation(char32_t c);  // ASCII punctuation or P*
bool is_word_char(char32_t c);         // regex crate Unicode \w
bool is_mark_nonspacing(char32_t c);   // Mn
bool is_other(char32_t c);             // C* (Cc, Cf, Cn, Co, Cs)
bool is_chinese_char(char32_t c);      // BERT's CJK ideograph blocks

// Appends Rust's char::to_lowercase(c) (full mapping, e.g. U+0130 -> "i\u0307").
void append_lowercase(std::u32string& out, char32_t c);

}  // namespace tfx::tok::utf8
