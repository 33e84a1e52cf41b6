// A string being normalized, with per-byte alignments back to the original input, as in
// `tokenizers`' NormalizedString. Every edit goes through the same alignment rules so that
// token offsets can be mapped to the user's text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pattern.h"

namespace tfx::tok {

// Original byte span that one normalized byte comes from (relative to the piece's original).
struct Span {
    uint32_t begin;
    uint32_t end;
};

// One char of a transformation: change = 0 replaces a char, +1 inserts a new one, -N
// replaces one and removes the N following ones (the Rust crate's (char, isize)).
struct CharChange {
    char32_t c;
    int32_t change;
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
enum class NormalForm { NFC, NFD, NFKC, NFKD };

class NormalizedString {
  public:
    NormalizedString() = default;
    // `original_shift` is where `original` starts in the user's full input.
    explicit NormalizedString(std::string_view original, size_t original_shift = 0);

    const std::string& get() const { return normalized_; }
    bool empty() const { return normalized_.empty(); }
    size_t size() const { return normalized_.size(); }
    size_t original_shift() const { return original_shift_; }
    size_t original_len() const { return original_len_; }
    const std::vector<Span>& alignments() const { return align_; }

    // Normalized byte range -> original byte range (relative), Rust's convert_offsets.
    std::optional<std::pair<size_t, size_t>> to_original(size_t begin, size_t end) const;
    // Sub-piece for a normalized byte range on char boundaries (throws otherwise).
    NormalizedString slice(size_t begin, size_t end) const;

    void transform_range(size_t begin, size_t end, std::span<const CharChange> dest, size_t initial_offset);
    void transform(std::span<const CharChange> dest, size_t initial_offset) {
        transform_range(0, normalized_.size(), dest, initial_offset);
    }
    // Replaces the whole content with pieces whose alignments the caller computed.
    void assign(std::string normalized, std::vector<Span> alignments);

    void prepend(std::string_view s);
    void replace(const Pattern& pattern, std::string_view content);
    void lowercase();
    void strip(bool left, bool right);
    void unicode_normalize(NormalForm form);

    template <class Keep>
    void filter(Keep keep) {
        std::vector<CharChange> kept;
        kept.reserve(normalized_.size());
        int32_t removed = 0;
        for_each_char_reverse([&](char32_t c) {
            if (keep(c)) {
                kept.push_back({c, -removed});
                removed = 0;
            } else {
                ++removed;
            }
        });
        if (kept.size() == utf8::char_count(normalized_)) return;  // nothing filtered: alignments unchanged
        std::vector<CharChange> forward(kept.rbegin(), kept.rend());
        transform(forward, static_cast<size_t>(removed));
    }

    template <class F>
    void map(F f) {
        std::vector<CharChange> changes;
        changes.reserve(normalized_.size());
        bool changed = false;
        for_each_char([&](char32_t c) {
            const char32_t m = f(c);
            changed |= m != c;
            changes.push_back({m, 0});
        });
        if (changed) transform(changes, 0);
    }

    // Splits on `pattern` matches; pieces may be empty (callers drop them).
    void split(const Pattern& pattern, SplitBehavior behavior, std::vector<NormalizedString>& out) const;

    template <class F>
    void for_each_char(F f) const {
        size_t i = 0, len = 0;
        while (i < normalized_.size()) {
            f(utf8::decode(normalized_, i, len));
            i += len;
        }
    }

  private:
    template <class F>
    void for_each_char_reverse(F f) const {
        size_t i = normalized_.size();
        while (i > 0) {
            size_t start = i - 1;
            while (start > 0 && (static_cast<unsigned char>(normalized_[start]) & 0xC0) == 0x80) --start;
            size_t len;
            f(utf8::decode(normalized_, start, len));
            i = start;
        }
    }
    Span align_at(size_t i) const;

    std::string normalized_;
    std::vector<Span> align_;
    size_t original_shift_ = 0;
    size_t original_len_ = 0;
};

}  // namespace tfx::tok
