#include "normalizers.h"

#include <utf8proc.h>

#include "byte_level.h"
#include "error.h"

namespace tfx::tok {

void StripAccentsNormalizer::normalize(NormalizedString& s) const {
    s.filter([](char32_t c) { return !utf8::is_mark_nonspacing(c); });
}

void NmtNormalizer::normalize(NormalizedString& s) const {
    s.filter([](char32_t c) {
        return !((c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || c == 0x8F ||
                 c == 0x9F);
    });
    s.map([](char32_t c) -> char32_t {
        switch (c) {
            case 0x09:
            case 0x0A:
            case 0x0C:
            case 0x0D:
            case 0x1680:
            case 0x2028:
            case 0x2029:
            case 0x2581:
            case 0xFEFF:
            case 0xFFFD:
                return U' ';
            default:
                return (c >= 0x200B && c <= 0x200F) ? U' ' : c;
        }
    });
}

void BertNormalizer::normalize(NormalizedString& s) const {
    if (clean_text_) {
        s.filter([](char32_t c) {
            const bool control = c != '\t' && c != '\n' && c != '\r' && utf8::is_other(c);
            return !(c == 0 || c == 0xFFFD || control);
        });
        s.map([](char32_t c) { return (c == '\t' || c == '\n' || c == '\r' || utf8::is_whitespace(c)) ? U' ' : c; });
    }
    if (handle_chinese_chars_) {
        bool any = false;
        s.for_each_char([&](char32_t c) { any |= utf8::is_chinese_char(c); });
        if (any) {
            std::vector<CharChange> changes;
            s.for_each_char([&](char32_t c) {
                if (utf8::is_chinese_char(c)) {
                    changes.push_back({U' ', 1});
                    changes.push_back({c, 0});
                    changes.push_back({U' ', 1});
                } else {
                    changes.push_back({c, 0});
                }
            });
            s.transform(changes, 0);
        }
    }
    if (strip_accents_) {
        s.unicode_normalize(NormalForm::NFD);
        s.filter([](char32_t c) { return !utf8::is_mark_nonspacing(c); });
    }
    if (lowercase_) s.lowercase();
}

void ByteLevelNormalizer::normalize(NormalizedString& s) const {
    byte_level::map_bytes(s);
}

PrecompiledNormalizer::PrecompiledNormalizer(std::string charsmap) {
    if (charsmap.size() < 4) throw Error("precompiled_charsmap is too short");
    const auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(charsmap[i])); };
    const uint32_t trie_size = byte(0) | byte(1) << 8 | byte(2) << 16 | byte(3) << 24;
    if (static_cast<size_t>(trie_size) > charsmap.size() - 4)
        throw Error("precompiled_charsmap trie size exceeds the blob");
    trie_.resize(trie_size / 4);
    for (size_t k = 0; k < trie_.size(); ++k) {
        const size_t at = 4 + 4 * k;
        trie_[k] = byte(at) | byte(at + 1) << 8 | byte(at + 2) << 16 | byte(at + 3) << 24;
    }
    pool_ = charsmap.substr(4 + trie_.size() * 4);
    if (utf8::find_invalid(pool_)) throw Error("precompiled_charsmap normalized strings are not valid UTF-8");
}

std::optional<std::string_view> PrecompiledNormalizer::transform(std::string_view chunk) const {
    if (trie_.empty()) return std::nullopt;
    const auto offset = [](uint32_t unit) { return static_cast<size_t>((unit >> 10) << ((unit & (1u << 9)) >> 6)); };
    size_t node = offset(trie_[0]);
    for (char ch : chunk) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == 0) break;
        node ^= c;
        if (node >= trie_.size()) return std::nullopt;
        const uint32_t unit = trie_[node];
        if ((unit & 0x800000FFu) != c) return std::nullopt;
        node ^= offset(unit);
        if (node >= trie_.size()) return std::nullopt;
        if ((unit >> 8) & 1) {
            const size_t index = trie_[node] & 0x7FFFFFFFu;
            if (index > pool_.size()) return std::nullopt;
            const size_t end = pool_.find('\0', index);
            return std::string_view(pool_).substr(index, (end == std::string::npos ? pool_.size() : end) - index);
        }
    }
    return std::nullopt;
}

void PrecompiledNormalizer::normalize(NormalizedString& s) const {
    const std::string& text = s.get();
    std::vector<CharChange> changes;
    changes.reserve(text.size());
    bool modified = false;
    // Replacement chars: the first carries the char-count difference, the others their index
    // (the Rust crate's encoding of this rewrite).
    const auto push_replacement = [&](std::string_view norm, int32_t old_count) {
        const auto new_count = static_cast<int32_t>(utf8::char_count(norm));
        size_t i = 0, len;
        int32_t k = 0;
        while (i < norm.size()) {
            changes.push_back({utf8::decode(norm, i, len), k == 0 ? new_count - old_count : k});
            i += len;
            ++k;
        }
        modified = true;
    };
    const auto handle_grapheme = [&](std::string_view g) {
        if (g.size() < 6) {
            if (auto norm = transform(g)) {
                push_replacement(*norm, static_cast<int32_t>(utf8::char_count(g)));
                return;
            }
        }
        size_t i = 0, len;
        while (i < g.size()) {
            const char32_t c = utf8::decode(g, i, len);
            if (auto norm = transform(g.substr(i, len)))
                push_replacement(*norm, 1);
            else
                changes.push_back({c, 0});
            i += len;
        }
    };

    // Walk extended grapheme clusters.
    size_t start = 0, i = 0, len;
    utf8proc_int32_t state = 0;
    char32_t prev = 0;
    while (i < text.size()) {
        const char32_t c = utf8::decode(text, i, len);
        if (i > 0 && utf8proc_grapheme_break_stateful(static_cast<utf8proc_int32_t>(prev),
                                                      static_cast<utf8proc_int32_t>(c), &state)) {
            handle_grapheme(std::string_view(text).substr(start, i - start));
            start = i;
        }
        prev = c;
        i += len;
    }
    if (start < text.size()) handle_grapheme(std::string_view(text).substr(start));
    if (modified) s.transform(changes, 0);
}

}  // namespace tfx::tok
