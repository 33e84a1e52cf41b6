// Added tokens (tokenizer.json "added_tokens"): matched in the raw text before
// normalization (or in normalized pieces for normalized=true tokens), as the Rust
// crate's AddedVocabulary with leftmost-longest matching.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "models/model.h"
#include "models/vocab.h"
#include "normalizers.h"
#include "pre_tokenized_string.h"

namespace tfx::tok {

struct AddedToken {
    std::string content;
    bool single_word = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = true;
    bool special = false;
};

class AddedVocabulary {
  public:
    // Registers tokens in order; each gets the id the Rust crate would give it (its model id
    // if the model knows it, else the next id after the model vocabulary).
    void add_tokens(const std::vector<AddedToken>& tokens, const Model& model, const Normalizer* normalizer);

    std::optional<int32_t> token_to_id(std::string_view content) const;
    const AddedToken* token(int32_t id) const;
    bool is_special(std::string_view content) const { return special_.count(std::string(content)) > 0; }
    bool is_special_id(int32_t id) const;
    size_t size() const { return to_id_.size(); }
    void for_each(const std::function<void(std::string_view, int32_t)>& fn) const {
        for (const auto& [t, id] : to_id_) fn(t, id);
    }

    // Splits `text` on added tokens and normalizes the remaining pieces.
    PreTokenizedString extract_and_normalize(std::string_view text, const Normalizer* normalizer,
                                             bool encode_special_tokens) const;

  private:
    // Byte trie with leftmost-longest search over a set of patterns.
    class Matcher {
      public:
        void build(const std::vector<std::string>& patterns, std::vector<int32_t> ids);
        bool empty() const { return ids_.empty(); }
        // Longest pattern starting at text[pos]: {pattern length, token id} or {0, -1}.
        std::pair<size_t, int32_t> longest_at(std::string_view text, size_t pos) const;
        bool may_start(unsigned char b) const { return first_bytes_[b]; }

      private:
        struct Node {
            std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
            int32_t pattern = -1;
        };
        std::vector<Node> nodes_;
        std::vector<int32_t> ids_;
        bool first_bytes_[256] = {};
    };

    struct Found {
        std::optional<int32_t> id;
        size_t begin, end;
    };
    void find_matches(std::string_view text, const Matcher& matcher, bool encode_special_tokens,
                      std::vector<Found>& out) const;
    void split_with_matches(NormalizedString&& ns, const Matcher& matcher, bool encode_special_tokens,
                            std::vector<Split>& out) const;
    void rebuild(const Model& model, const Normalizer* normalizer);

    TokenIdMap to_id_;
    std::unordered_map<int32_t, AddedToken> by_id_;
    std::vector<AddedToken> classic_;
    std::vector<AddedToken> special_list_;
    std::unordered_set<std::string> special_;
    Matcher raw_matcher_;
    Matcher normalized_matcher_;
};

}  // namespace tfx::tok
