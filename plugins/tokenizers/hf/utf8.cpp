#include "utf8.h"

#include <utf8proc.h>

namespace tfx::tok::utf8 {
namespace {

bool is_cont(std::string_view s, size_t i) {
    return i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80;
}

// Inspects the sequence at s[i]. Returns {consumed, valid}: a valid sequence of
// `consumed` bytes, or the maximal invalid subpart (at least one byte).
std::pair<size_t, bool> inspect(std::string_view s, size_t i) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) return {1, true};
    const auto b1 = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) return is_cont(s, i + 1) ? std::pair{size_t{2}, true} : std::pair{size_t{1}, false};
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        const bool second_ok = (b0 == 0xE0 && b1 >= 0xA0 && b1 <= 0xBF) ||
                               (b0 >= 0xE1 && b0 <= 0xEC && b1 >= 0x80 && b1 <= 0xBF) ||
                               (b0 == 0xED && b1 >= 0x80 && b1 <= 0x9F) || (b0 >= 0xEE && b1 >= 0x80 && b1 <= 0xBF);
        if (!second_ok) return {1, false};
        return is_cont(s, i + 2) ? std::pair{size_t{3}, true} : std::pair{size_t{2}, false};
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        const bool second_ok = (b0 == 0xF0 && b1 >= 0x90 && b1 <= 0xBF) ||
                               (b0 >= 0xF1 && b0 <= 0xF3 && b1 >= 0x80 && b1 <= 0xBF) ||
                               (b0 == 0xF4 && b1 >= 0x80 && b1 <= 0x8F);
        if (!second_ok) return {1, false};
        if (!is_cont(s, i + 2)) return {2, false};
        return is_cont(s, i + 3) ? std::pair{size_t{4}, true} : std::pair{size_t{3}, false};
    }
    return {1, false};
}

utf8proc_category_t category(char32_t c) {
    return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

}  // namespace

std::optional<size_t> find_invalid(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        // ASCII fast path, 8 bytes at a time.
        while (i + 8 <= s.size()) {
            uint64_t w = 0;
            for (size_t k = 0; k < 8; ++k) w |= static_cast<uint64_t>(static_cast<unsigned char>(s[i + k])) << (8 * k);
            if (w & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= s.size()) break;
        auto [n, ok] = inspect(s, i);
        if (!ok) return i;
        i += n;
    }
    return std::nullopt;
}

std::string lossy(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    size_t i = 0;
    while (i < bytes.size()) {
        auto [n, ok] = inspect(bytes, i);
        if (ok)
            out.append(bytes.substr(i, n));
        else
            out.append("\xEF\xBF\xBD");
        i += n;
    }
    return out;
}

size_t char_count(std::string_view s) {
    size_t n = 0;
    for (char ch : s) n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
    return n;
}

bool is_whitespace(char32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    switch (c) {
        case 0x85:
        case 0xA0:
        case 0x1680:
        case 0x2028:
        case 0x2029:
        case 0x202F:
        case 0x205F:
        case 0x3000:
            return true;
        default:
            return c >= 0x2000 && c <= 0x200A;
    }
}

bool is_numeric(char32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    const auto cat = category(c);
    return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

bool is_punctuation(char32_t c) {
    const auto cat = category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

bool is_bert_punctuation(char32_t c) {
    if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
    return is_punctuation(c);
}

bool is_word_char(char32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (c == 0x200C || c == 0x200D) return true;  // Join_Control
    // Other_Alphabetic symbols (circled / squared Latin letters) count as Alphabetic.
    if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
        (c >= 0x1F170 && c <= 0x1F189))
        return true;
    switch (category(c)) {
        case UTF8PROC_CATEGORY_LU:
        case UTF8PROC_CATEGORY_LL:
        case UTF8PROC_CATEGORY_LT:
        case UTF8PROC_CATEGORY_LM:
        case UTF8PROC_CATEGORY_LO:
        case UTF8PROC_CATEGORY_MN:
        case UTF8PROC_CATEGORY_MC:
        case UTF8PROC_CATEGORY_ME:
        case UTF8PROC_CATEGORY_ND:
        case UTF8PROC_CATEGORY_NL:
        case UTF8PROC_CATEGORY_PC:
            return true;
        default:
            return false;
    }
}

bool is_mark_nonspacing(char32_t c) {
    return c >= 0x300 && category(c) == UTF8PROC_CATEGORY_MN;
}

bool is_other(char32_t c) {
    const auto cat = category(c);
    return cat == UTF8PROC_CATEGORY_CN || cat >= UTF8PROC_CATEGORY_CC;
}

bool is_chinese_char(char32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

void append_lowercase(std::u32string& out, char32_t c) {
    if (c < 0x80) {
        out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    } else if (c == 0x130) {  // the only unconditional multi-char lowercase mapping
        out.push_back(U'i');
        out.push_back(0x307);
    } else {
        out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
}

}  // namespace tfx::tok::utf8
