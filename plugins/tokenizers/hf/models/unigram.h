// Unigram language-model tokenizer (SentencePiece style): Viterbi over a prefix trie,
// unknown chars fused into one unk piece, optional byte fallback.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "model.h"
#include "vocab.h"

namespace tfx::tok {

class UnigramModel final : public Model {
  public:
    // `pieces` are (token, score) in id order. Throws Error on an out-of-range unk_id.
    UnigramModel(std::vector<std::pair<std::string, double>> pieces, std::optional<size_t> unk_id, bool byte_fallback);

    void tokenize(std::string_view piece, std::vector<Token>& out) const override;
    std::optional<int32_t> token_to_id(std::string_view token) const override { return to_id_.find(token); }
    std::optional<std::string_view> id_to_token(int32_t id) const override;
    size_t vocab_size() const override { return pieces_.size(); }
    void for_each_token(const std::function<void(std::string_view, int32_t)>& fn) const override {
        to_id_.for_each(fn);
    }

  private:
    // Byte trie: node children in a flat hash keyed by (node, byte).
    struct TrieNode {
        int32_t token = -1;  // id of the token ending here
    };
    int32_t child(int32_t node, unsigned char byte) const;
    void add_to_trie(std::string_view token, int32_t id);

    std::vector<std::pair<std::string, double>> pieces_;
    Vocab to_id_;
    std::optional<int32_t> unk_id_;
    bool byte_fallback_;
    double min_score_;
    std::vector<TrieNode> nodes_;
    std::vector<uint64_t> edge_keys_;  // open addressing: (node << 8 | byte) + 1, 0 = empty
    std::vector<int32_t> edge_values_;
    size_t edge_mask_ = 0;
};

}  // namespace tfx::tok
