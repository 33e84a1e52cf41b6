// Patterns that split or replace text, with the match semantics of `tokenizers`:
// find_matches() covers the whole input with alternating (span, is_match) pieces.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "utf8.h"

struct re_pattern_buffer;

namespace tfx::tok {

struct MatchPiece {
    size_t begin;
    size_t end;
    bool is_match;
};

class Pattern {
  public:
    virtual ~Pattern() = default;
    // Appends pieces covering `text` to `out` (which is cleared first).
    virtual void find_matches(std::string_view text, std::vector<MatchPiece>& out) const = 0;
};

// An Oniguruma regex (Ruby syntax, UTF-8), as the Rust crate's SysRegex.
class Regex final : public Pattern {
  public:
    explicit Regex(const std::string& pattern);  // throws Error on a bad pattern
    ~Regex() override;
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // Calls fn(begin, end) for each match, with onig's find_iter empty-match rules.
    template <class F>
    void for_each_match(std::string_view text, F&& fn) const {
        size_t last_end = 0;
        bool skip_next_empty = false;
        size_t b = 0, e = 0;
        while (last_end <= text.size() && search(text, last_end, b, e)) {
            last_end = e;
            if (b == e) {
                last_end += last_end < text.size() ? utf8::seq_len(static_cast<unsigned char>(text[last_end])) : 1;
                if (skip_next_empty) {
                    skip_next_empty = false;
                    continue;
                }
            } else {
                skip_next_empty = true;
            }
            fn(b, e);
        }
    }

    void find_matches(std::string_view text, std::vector<MatchPiece>& out) const override;

  private:
    bool search(std::string_view text, size_t from, size_t& begin, size_t& end) const;
    re_pattern_buffer* reg_ = nullptr;
};

// A literal string; equivalent to the Rust crate's escaped-string regex.
class LiteralPattern final : public Pattern {
  public:
    explicit LiteralPattern(std::string literal);
    void find_matches(std::string_view text, std::vector<MatchPiece>& out) const override;

  private:
    std::string literal_;
    std::unique_ptr<Regex> empty_regex_;  // an empty literal matches everywhere, as onig does
};

// Every char satisfying the predicate is its own match.
template <class Pred>
class CharPattern final : public Pattern {
  public:
    explicit CharPattern(Pred pred) : pred_(std::move(pred)) {}
    void find_matches(std::string_view text, std::vector<MatchPiece>& out) const override {
        out.clear();
        if (text.empty()) {
            out.push_back({0, 0, false});
            return;
        }
        size_t last = 0, i = 0;
        while (i < text.size()) {
            size_t len;
            const char32_t c = utf8::decode(text, i, len);
            if (pred_(c)) {
                if (last < i) out.push_back({last, i, false});
                out.push_back({i, i + len, true});
                last = i + len;
            }
            i += len;
        }
        if (last < text.size()) out.push_back({last, text.size(), false});
    }

  private:
    Pred pred_;
};

template <class Pred>
std::shared_ptr<const Pattern> make_char_pattern(Pred pred) {
    return std::make_shared<CharPattern<Pred>>(std::move(pred));
}

// Flips is_match of another pattern's pieces.
class InvertedPattern final : public Pattern {
  public:
    explicit InvertedPattern(std::shared_ptr<const Pattern> inner) : inner_(std::move(inner)) {}
    void find_matches(std::string_view text, std::vector<MatchPiece>& out) const override {
        inner_->find_matches(text, out);
        for (auto& p : out) p.is_match = !p.is_match;
    }

  private:
    std::shared_ptr<const Pattern> inner_;
};

}  // namespace tfx::tok
