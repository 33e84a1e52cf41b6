#include "normalized_string.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "error.h"

namespace tfx::tok {
namespace {

bool is_char_boundary(const std::string& s, size_t i) {
    return i == 0 || i >= s.size() || (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
}

bool is_ascii(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string utf8proc_normalize(std::string_view s, NormalForm form) {
    int options = UTF8PROC_STABLE;
    switch (form) {
        case NormalForm::NFC:
            options |= UTF8PROC_COMPOSE;
            break;
        case NormalForm::NFD:
            options |= UTF8PROC_DECOMPOSE;
            break;
        case NormalForm::NFKC:
            options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
            break;
        case NormalForm::NFKD:
            options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
            break;
    }
    utf8proc_uint8_t* out = nullptr;
    const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                static_cast<utf8proc_ssize_t>(s.size()), &out, static_cast<utf8proc_option_t>(options));
    if (n < 0) throw Error(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
    std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> guard(out, &std::free);
    return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

// A segment may start at a char that neither reorders nor composes with what precedes it
// (combining class 0, and not a Hangul medial/final jamo).
bool starts_segment(char32_t c) {
    if ((c >= 0x1160 && c <= 0x11FF) || (c >= 0xD7B0 && c <= 0xD7FF)) return false;
    return c < 0x300 || utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class == 0;
}

}  // namespace

NormalizedString::NormalizedString(std::string_view original, size_t original_shift)
    : normalized_(original), original_shift_(original_shift), original_len_(original.size()) {
    if (original.size() > UINT32_MAX) throw Error("input longer than 4 GiB is not supported");
    align_.resize(original.size());
    size_t i = 0;
    while (i < original.size()) {
        const size_t len = std::min(utf8::seq_len(static_cast<unsigned char>(original[i])), original.size() - i);
        const Span span{static_cast<uint32_t>(i), static_cast<uint32_t>(i + len)};
        for (size_t k = 0; k < len; ++k) align_[i + k] = span;
        i += len;
    }
}

Span NormalizedString::align_at(size_t i) const {
    if (i < align_.size()) return align_[i];
    // Out-of-range lookups would panic in the Rust crate; anchor at the end instead.
    const uint32_t end = align_.empty() ? 0 : align_.back().end;
    return {end, end};
}

std::optional<std::pair<size_t, size_t>> NormalizedString::to_original(size_t begin, size_t end) const {
    if (begin == end) return std::pair{begin, end};
    if (begin > end || end > align_.size()) return std::nullopt;
    return std::pair<size_t, size_t>{align_[begin].begin, align_[end - 1].end};
}

NormalizedString NormalizedString::slice(size_t begin, size_t end) const {
    if (begin > end || end > normalized_.size() || !is_char_boundary(normalized_, begin) ||
        !is_char_boundary(normalized_, end))
        throw Error("internal error: slice outside char boundaries");
    const auto orig = to_original(begin, end).value_or(std::pair<size_t, size_t>{0, 0});
    NormalizedString out;
    out.normalized_.assign(normalized_, begin, end - begin);
    out.align_.reserve(end - begin);
    const auto shift = static_cast<uint32_t>(orig.first);
    for (size_t i = begin; i < end; ++i) {
        const Span a = align_[i];
        out.align_.push_back({a.begin >= shift ? a.begin - shift : 0, a.end >= shift ? a.end - shift : 0});
    }
    out.original_shift_ = original_shift_ + orig.first;
    out.original_len_ = orig.second <= original_len_ ? orig.second - orig.first : 0;
    return out;
}

void NormalizedString::transform_range(size_t begin, size_t end, std::span<const CharChange> dest,
                                       size_t initial_offset) {
    const std::string_view replaced(normalized_.data() + begin, end - begin);
    size_t cursor = 0;
    auto take_char = [&]() -> size_t {
        if (cursor >= replaced.size()) return 0;
        const size_t len = utf8::seq_len(static_cast<unsigned char>(replaced[cursor]));
        cursor += len;
        return len;
    };
    size_t offset = begin;
    for (size_t k = 0; k < initial_offset; ++k) offset += take_char();

    std::string text;
    text.reserve(dest.size() * 2);
    std::vector<Span> spans;
    spans.reserve(dest.size() * 2);
    for (const auto& [c, change] : dest) {
        Span a;
        if (change > 0) {
            a = offset == 0 ? Span{0, 0} : align_at(offset - 1);  // inserted: shares the previous alignment
        } else {
            a = align_at(offset);
            offset += take_char();
            for (int32_t k = 0; k < -change; ++k) offset += take_char();
        }
        const size_t before = text.size();
        utf8::append(text, c);
        spans.insert(spans.end(), text.size() - before, a);
    }
    normalized_.replace(begin, end - begin, text);
    align_.erase(align_.begin() + static_cast<ptrdiff_t>(begin), align_.begin() + static_cast<ptrdiff_t>(end));
    align_.insert(align_.begin() + static_cast<ptrdiff_t>(begin), spans.begin(), spans.end());
}

void NormalizedString::assign(std::string normalized, std::vector<Span> alignments) {
    normalized_ = std::move(normalized);
    align_ = std::move(alignments);
}

void NormalizedString::prepend(std::string_view s) {
    if (normalized_.empty() || s.empty()) return;
    size_t first_len;
    const char32_t first = utf8::decode(normalized_, 0, first_len);
    std::vector<CharChange> changes;
    size_t i = 0, len;
    while (i < s.size()) {
        changes.push_back({utf8::decode(s, i, len), changes.empty() ? 0 : 1});
        i += len;
    }
    changes.push_back({first, 1});
    transform_range(0, first_len, changes, 0);
}

// One pass equivalent of the Rust crate's per-match transform_range: every inserted char
// takes the alignment of the last byte of the text it replaces.
void NormalizedString::replace(const Pattern& pattern, std::string_view content) {
    thread_local std::vector<MatchPiece> pieces;
    pattern.find_matches(normalized_, pieces);
    if (std::none_of(pieces.begin(), pieces.end(), [](const MatchPiece& p) { return p.is_match; })) return;
    std::string text;
    text.reserve(normalized_.size() + content.size() * 4);
    std::vector<Span> spans;
    spans.reserve(text.capacity());
    for (const auto& p : pieces) {
        if (!p.is_match) {
            text.append(normalized_, p.begin, p.end - p.begin);
            spans.insert(spans.end(), align_.begin() + static_cast<ptrdiff_t>(p.begin),
                         align_.begin() + static_cast<ptrdiff_t>(p.end));
            continue;
        }
        const Span a = p.end == 0 ? Span{0, 0} : align_at(p.end - 1);
        text.append(content);
        spans.insert(spans.end(), content.size(), a);
    }
    normalized_ = std::move(text);
    align_ = std::move(spans);
}

void NormalizedString::lowercase() {
    if (is_ascii(normalized_)) {
        for (char& ch : normalized_)
            if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
        return;
    }
    std::vector<CharChange> changes;
    changes.reserve(normalized_.size());
    std::u32string lowered;
    for_each_char([&](char32_t c) {
        lowered.clear();
        utf8::append_lowercase(lowered, c);
        for (size_t k = 0; k < lowered.size(); ++k) changes.push_back({lowered[k], k > 0 ? 1 : 0});
    });
    transform(changes, 0);
}

void NormalizedString::strip(bool left, bool right) {
    std::vector<char32_t> chars;
    for_each_char([&](char32_t c) { chars.push_back(c); });
    size_t leading = 0, trailing = 0;
    if (left)
        while (leading < chars.size() && utf8::is_whitespace(chars[leading])) ++leading;
    if (right)
        while (trailing < chars.size() && utf8::is_whitespace(chars[chars.size() - 1 - trailing])) ++trailing;
    if (leading == 0 && trailing == 0) return;
    std::vector<CharChange> changes;
    for (size_t i = 0; i < chars.size(); ++i) {
        if (i < leading || i + trailing >= chars.size()) continue;
        const bool last_kept = i + trailing + 1 == chars.size();
        changes.push_back({chars[i], last_kept ? -static_cast<int32_t>(trailing) : 0});
    }
    transform(changes, leading);
}

void NormalizedString::unicode_normalize(NormalForm form) {
    if (is_ascii(normalized_)) return;
    const std::string whole = utf8proc_normalize(normalized_, form);
    if (whole == normalized_) return;

    // Normalize segment by segment so that offsets stay fine-grained; if segments do not
    // concatenate to the whole-string result, fall back to one segment.
    struct Segment {
        size_t begin, end;
    };
    std::vector<Segment> segments;
    size_t i = 0, len;
    while (i < normalized_.size()) {
        const char32_t c = utf8::decode(normalized_, i, len);
        if (segments.empty() || starts_segment(c))
            segments.push_back({i, i + len});
        else
            segments.back().end = i + len;
        i += len;
    }
    std::vector<std::string> outputs;
    outputs.reserve(segments.size());
    std::string joined;
    for (const auto& seg : segments) {
        const std::string_view text = std::string_view(normalized_).substr(seg.begin, seg.end - seg.begin);
        outputs.push_back(is_ascii(text) ? std::string(text) : utf8proc_normalize(text, form));
        joined += outputs.back();
    }
    if (joined != whole) {
        segments = {{0, normalized_.size()}};
        outputs = {whole};
    }

    std::vector<CharChange> changes;
    size_t initial_offset = 0;
    for (size_t s = 0; s < segments.size(); ++s) {
        const auto in_chars = static_cast<int32_t>(utf8::char_count(
            std::string_view(normalized_).substr(segments[s].begin, segments[s].end - segments[s].begin)));
        const size_t seg_start = changes.size();
        size_t j = 0;
        int32_t k = 0;
        while (j < outputs[s].size()) {
            changes.push_back({utf8::decode(outputs[s], j, len), k < in_chars ? 0 : 1});
            j += len;
            ++k;
        }
        if (k == 0) {  // segment vanished: the previous char absorbs its removal
            if (seg_start > 0)
                changes[seg_start - 1].change -= in_chars;
            else
                initial_offset += static_cast<size_t>(in_chars);
        } else if (k < in_chars) {
            changes.back().change = -(in_chars - k);
        }
    }
    transform(changes, initial_offset);
}

void NormalizedString::split(const Pattern& pattern, SplitBehavior behavior, std::vector<NormalizedString>& out) const {
    thread_local std::vector<MatchPiece> matches;
    pattern.find_matches(normalized_, matches);

    // (begin, end, remove) in the Rust crate's fold order.
    struct Piece {
        size_t begin, end;
        bool remove;
    };
    std::vector<Piece> pieces;
    pieces.reserve(matches.size());
    switch (behavior) {
        case SplitBehavior::Isolated:
            for (const auto& m : matches) pieces.push_back({m.begin, m.end, false});
            break;
        case SplitBehavior::Removed:
            for (const auto& m : matches) pieces.push_back({m.begin, m.end, m.is_match});
            break;
        case SplitBehavior::Contiguous: {
            bool previous_match = false;
            for (const auto& m : matches) {
                if (m.is_match == previous_match && !pieces.empty())
                    pieces.back().end = m.end;
                else
                    pieces.push_back({m.begin, m.end, false});
                previous_match = m.is_match;
            }
            break;
        }
        case SplitBehavior::MergedWithPrevious: {
            bool previous_match = false;
            for (const auto& m : matches) {
                if (m.is_match && !previous_match && !pieces.empty())
                    pieces.back().end = m.end;
                else
                    pieces.push_back({m.begin, m.end, false});
                previous_match = m.is_match;
            }
            break;
        }
        case SplitBehavior::MergedWithNext: {
            bool previous_match = false;
            for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
                if (it->is_match && !previous_match && !pieces.empty())
                    pieces.back().begin = it->begin;
                else
                    pieces.push_back({it->begin, it->end, false});
                previous_match = it->is_match;
            }
            std::reverse(pieces.begin(), pieces.end());
            break;
        }
    }
    for (const auto& p : pieces)
        if (!p.remove) out.push_back(slice(p.begin, p.end));
}

}  // namespace tfx::tok
