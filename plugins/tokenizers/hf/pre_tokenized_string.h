// The list of pieces a text is cut into before the model runs, as the Rust crate's
// PreTokenizedString: pieces already holding tokens (added tokens) are left alone.
#pragma once

#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "models/model.h"
#include "normalized_string.h"

namespace tfx::tok {

struct Split {
    NormalizedString normalized;
    std::optional<std::vector<Token>> tokens;
};

class PreTokenizedString {
  public:
    explicit PreTokenizedString(std::string_view original) {
        splits_.push_back({NormalizedString(original), std::nullopt});
    }

    // fn(NormalizedString&& piece, std::vector<Split>& out) replaces each untokenized piece;
    // empty results are dropped.
    template <class F>
    void split(F&& fn) {
        std::vector<Split> next;
        next.reserve(splits_.size() * 2);
        for (auto& s : splits_) {
            if (s.tokens) {
                next.push_back(std::move(s));
                continue;
            }
            const size_t first = next.size();
            fn(std::move(s.normalized), next);
            size_t kept = first;
            for (size_t i = first; i < next.size(); ++i)
                if (!next[i].normalized.empty()) {
                    if (kept != i) next[kept] = std::move(next[i]);
                    ++kept;
                }
            next.resize(kept);
        }
        splits_ = std::move(next);
    }

    // Same, for splitters that only produce plain pieces.
    template <class F>
    void split_pieces(F&& fn) {
        thread_local std::vector<NormalizedString> pieces;
        split([&](NormalizedString&& ns, std::vector<Split>& out) {
            pieces.clear();
            fn(ns, pieces);
            for (auto& p : pieces) out.push_back({std::move(p), std::nullopt});
        });
    }

    template <class F>
    void normalize(F&& fn) {
        for (auto& s : splits_)
            if (!s.tokens) fn(s.normalized);
    }

    std::vector<Split>& splits() { return splits_; }

  private:
    std::vector<Split> splits_;
};

}  // namespace tfx::tok
