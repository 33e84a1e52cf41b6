#include "jinja/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <iterator>

#include "jinja/value.h"

namespace tfx::jinja::unicode {
namespace {

constexpr char32_t kEscapeBase = 0xDC00;  // surrogateescape: byte b <-> U+DC00 + b

// The rules below add to utf8proc's data what Python's str methods use and utf8proc does not
// carry (derived properties, numeric types, SpecialCasing.txt). Lists are as of Unicode 15.0.

struct Range {
    char32_t first;
    char32_t last;
};

template <std::size_t N>
bool in_ranges(const Range (&ranges)[N], char32_t c) {
    const auto* it = std::upper_bound(std::begin(ranges), std::end(ranges), c,
                                      [](char32_t v, const Range& r) { return v < r.first; });
    return it != std::begin(ranges) && c <= std::prev(it)->last;
}

// Other_Lowercase members without an upper-case mapping (ª, º, modifier letters): Python's
// islower uses the derived Lowercase property, which utf8proc lacks. Members with a mapping
// (U+0345, small Roman numerals, circled small letters) are found through the mapping.
constexpr Range kOtherLowercase[] = {
    {0xAA, 0xAA},       {0xBA, 0xBA},       {0x2B0, 0x2B8},     {0x2C0, 0x2C1},     {0x2E0, 0x2E4},
    {0x37A, 0x37A},     {0x10FC, 0x10FC},   {0x1D2C, 0x1D6A},   {0x1D78, 0x1D78},   {0x1D9B, 0x1DBF},
    {0x2071, 0x2071},   {0x207F, 0x207F},   {0x2090, 0x209C},   {0x2C7C, 0x2C7D},   {0xA69C, 0xA69D},
    {0xA770, 0xA770},   {0xA7F2, 0xA7F4},   {0xA7F8, 0xA7F9},   {0xAB5C, 0xAB5F},   {0xAB69, 0xAB69},
    {0x10780, 0x10780}, {0x10783, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA}, {0x1E030, 0x1E06D}};

// Other_Uppercase members without a lower-case mapping: squared and negative circled/squared
// Latin capitals. (Roman numerals and circled capitals are found through their mapping.)
constexpr Range kOtherUppercase[] = {{0x1F130, 0x1F149}, {0x1F150, 0x1F169}, {0x1F170, 0x1F189}};

// Case_Ignorable includes Word_Break MidLetter, MidNumLet and Single_Quote (apostrophes, full
// stops, colons); they matter to str.lower()'s final sigma. Sorted.
constexpr char32_t kWordBreakMid[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,  0x5F4,  0x2018, 0x2019,
                                      0x2024, 0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};

// Numeric_Type=Digit (superscripts, circled digits, ...): str.isdigit accepts them besides Nd.
// utf8proc has no numeric properties.
constexpr Range kDigit[] = {{0xB2, 0xB3},       {0xB9, 0xB9},       {0x1369, 0x1371},   {0x19DA, 0x19DA},
                            {0x2070, 0x2070},   {0x2074, 0x2079},   {0x2080, 0x2089},   {0x2460, 0x2468},
                            {0x2474, 0x247C},   {0x2488, 0x2490},   {0x24EA, 0x24EA},   {0x24F5, 0x24FD},
                            {0x24FF, 0x24FF},   {0x2776, 0x277E},   {0x2780, 0x2788},   {0x278A, 0x2792},
                            {0x10A40, 0x10A43}, {0x10E60, 0x10E68}, {0x11052, 0x1105A}, {0x1F100, 0x1F10A}};

// Han ideographs with a numeric value in Unihan (一, 二, 百, 萬, ...): general category Lo, yet
// str.isnumeric is true for them. Every N* character is numeric too. Sorted.
constexpr char32_t kHanNumeric[] = {
    0x3405,  0x3483,  0x382A,  0x3B4D,  0x4E00,  0x4E03,  0x4E07,  0x4E09,  0x4E5D,  0x4E8C,  0x4E94,  0x4E96,
    0x4EBF,  0x4EC0,  0x4EDF,  0x4EE8,  0x4F0D,  0x4F70,  0x5104,  0x5146,  0x5169,  0x516B,  0x516D,  0x5341,
    0x5343,  0x5344,  0x5345,  0x534C,  0x53C1,  0x53C2,  0x53C3,  0x53C4,  0x56DB,  0x58F1,  0x58F9,  0x5E7A,
    0x5EFE,  0x5EFF,  0x5F0C,  0x5F0D,  0x5F0E,  0x5F10,  0x62FE,  0x634C,  0x67D2,  0x6F06,  0x7396,  0x767E,
    0x8086,  0x842C,  0x8CAE,  0x8CB3,  0x8D30,  0x9621,  0x9646,  0x964C,  0x9678,  0x96F6,  0xF96B,  0xF973,
    0xF978,  0xF9B2,  0xF9D1,  0xF9D3,  0xF9FD,  0x20001, 0x20064, 0x200E2, 0x20121, 0x2092A, 0x20983, 0x2098C,
    0x2099C, 0x20AEA, 0x20AFD, 0x20B19, 0x22390, 0x22998, 0x23B1B, 0x2626D, 0x2F890};

template <std::size_t N>
bool in_list(const char32_t (&list)[N], char32_t c) {
    return std::binary_search(std::begin(list), std::end(list), c);
}

utf8proc_int32_t cp(char32_t c) {
    return static_cast<utf8proc_int32_t>(c);
}
utf8proc_category_t category(char32_t c) {
    return utf8proc_category(cp(c));
}
// utf8proc upper- and title-cases ß to ẞ on its own; UnicodeData.txt (and Python) give ß no simple
// mapping, only the full ones SS and Ss.
char32_t simple_upper(char32_t c) {
    return c == 0xDF ? c : static_cast<char32_t>(utf8proc_toupper(cp(c)));
}
char32_t simple_lower(char32_t c) {
    return static_cast<char32_t>(utf8proc_tolower(cp(c)));
}
char32_t simple_title(char32_t c) {
    return c == 0xDF ? c : static_cast<char32_t>(utf8proc_totitle(cp(c)));
}

// Full case folding (CaseFolding.txt statuses C and F, as str.casefold): at most 3 code points.
struct Folded {
    std::array<char32_t, 3> cps{};
    std::size_t size = 0;
};

Folded fold(char32_t c) {
    std::array<utf8proc_int32_t, 3> buf{};
    int boundclass = 0;
    const utf8proc_ssize_t n = utf8proc_decompose_char(cp(c), buf.data(), static_cast<utf8proc_ssize_t>(buf.size()),
                                                       UTF8PROC_CASEFOLD, &boundclass);
    Folded f;
    if (n < 1 || n > static_cast<utf8proc_ssize_t>(buf.size())) {
        f.cps[0] = c;
        f.size = 1;
        return f;
    }
    f.size = static_cast<std::size_t>(n);
    for (std::size_t i = 0; i < f.size; ++i) f.cps[i] = static_cast<char32_t>(buf[i]);
    return f;
}

// utf8proc has only the simple (one code point) case mappings. The unconditional multi-code-point
// ones of SpecialCasing.txt (ß, ŉ, ǰ, ΐ, և, ﬁ, ᾳ, ...) are exactly the lower-case and title-case
// letters whose full case folding has several code points, and their full upper-casing is the
// upper-casing of that folding (ß -> ss -> SS, ᾀ -> ἀι -> ἈΙ). None for upper-case letters:
// İ and ẞ fold to several code points but upper-case to themselves.
bool has_special_casing(char32_t c, const Folded& f) {
    return f.size > 1 && category(c) != UTF8PROC_CATEGORY_LU;
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
    // Python: bidirectional class WS, B or S, or category Zs (so U+0085, U+00A0, U+2028 count;
    // U+200B and U+FEFF do not).
    if (category(c) == UTF8PROC_CATEGORY_ZS) return true;
    const auto bidi = utf8proc_get_property(cp(c))->bidi_class;
    return bidi == UTF8PROC_BIDI_CLASS_WS || bidi == UTF8PROC_BIDI_CLASS_B || bidi == UTF8PROC_BIDI_CLASS_S;
}

bool is_printable(char32_t c) {
    // Python: everything but categories C* and Z*, except the ASCII space.
    if (c == U' ') return true;
    switch (category(c)) {
        case UTF8PROC_CATEGORY_CN:
        case UTF8PROC_CATEGORY_CC:
        case UTF8PROC_CATEGORY_CF:
        case UTF8PROC_CATEGORY_CS:
        case UTF8PROC_CATEGORY_CO:
        case UTF8PROC_CATEGORY_ZS:
        case UTF8PROC_CATEGORY_ZL:
        case UTF8PROC_CATEGORY_ZP:
            return false;
        default:
            return true;
    }
}

bool is_alpha(char32_t c) {
    const auto cat = category(c);
    return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}

bool is_decimal(char32_t c) {
    return category(c) == UTF8PROC_CATEGORY_ND;
}
bool is_digit(char32_t c) {
    return is_decimal(c) || in_ranges(kDigit, c);
}

bool is_numeric(char32_t c) {
    const auto cat = category(c);
    return (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO) || in_list(kHanNumeric, c);
}

bool is_lower(char32_t c) {
    const auto cat = category(c);
    if (cat == UTF8PROC_CATEGORY_LL) return true;
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT) return false;
    return simple_upper(c) != c || in_ranges(kOtherLowercase, c);
}

bool is_upper(char32_t c) {
    const auto cat = category(c);
    if (cat == UTF8PROC_CATEGORY_LU) return true;
    if (cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return false;
    return simple_lower(c) != c || in_ranges(kOtherUppercase, c);
}

bool is_title(char32_t c) {
    return category(c) == UTF8PROC_CATEGORY_LT;
}
bool is_cased(char32_t c) {
    return is_title(c) || is_lower(c) || is_upper(c);
}

bool is_case_ignorable(char32_t c) {
    switch (category(c)) {
        case UTF8PROC_CATEGORY_MN:
        case UTF8PROC_CATEGORY_ME:
        case UTF8PROC_CATEGORY_CF:
        case UTF8PROC_CATEGORY_LM:
        case UTF8PROC_CATEGORY_SK:
            return true;
        default:
            return in_list(kWordBreakMid, c);
    }
}

void append_upper(std::u32string& out, char32_t c) {
    if (c < 0x80) {
        out += c >= U'a' && c <= U'z' ? c - 0x20 : c;
        return;
    }
    const Folded f = fold(c);
    if (!has_special_casing(c, f)) {
        out += simple_upper(c);
        return;
    }
    for (std::size_t i = 0; i < f.size; ++i) out += simple_upper(f.cps[i]);
}

void append_lower(std::u32string& out, char32_t c) {
    if (c < 0x80) {
        out += c >= U'A' && c <= U'Z' ? c + 0x20 : c;
    } else if (c == 0x130) {
        out += U"i\u0307";  // İ: the one unconditional multi-code-point lower-casing (SpecialCasing.txt)
    } else {
        out += simple_lower(c);
    }
}

void append_title(std::u32string& out, char32_t c) {
    if (c < 0x80) {
        out += c >= U'a' && c <= U'z' ? c - 0x20 : c;
        return;
    }
    // Title-case and upper-case letters are their own title case (ᾈ stays ᾈ).
    const char32_t simple = simple_title(c);
    const Folded f = simple == c && category(c) == UTF8PROC_CATEGORY_LL ? fold(c) : Folded{};
    if (!has_special_casing(c, f)) {
        out += simple;
        return;
    }
    // Title-case up to the first cased letter, keep the rest as folded (ß -> Ss, ŉ -> ʼN, ﬃ -> Ffi).
    // An ι that the folding made of a ypogegrammeni stays U+0345 in the title case (ᾲ -> Ὰͅ).
    bool done = false;
    for (std::size_t i = 0; i < f.size; ++i) {
        char32_t x = f.cps[i];
        if (!done) {
            done = is_cased(x);
            x = simple_title(x);
        } else if (x == 0x3B9 && i + 1 == f.size) {
            x = 0x345;
        }
        out += x;
    }
}

void append_casefold(std::u32string& out, char32_t c) {
    if (c < 0x80) {
        out += c >= U'A' && c <= U'Z' ? c + 0x20 : c;
        return;
    }
    const Folded f = fold(c);
    out.append(f.cps.data(), f.size);
}

}  // namespace tfx::jinja::unicode
