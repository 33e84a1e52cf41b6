// Byte-Pair Encoding model, as `tokenizers`' BPE (merge ranks, byte fallback, unk fusing,
// ignore_merges, subword prefix/suffix) with a word cache.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model.h"
#include "vocab.h"

namespace tfx::tok {

struct BpeOptions {
    std::optional<std::string> unk_token;
    std::optional<std::string> continuing_subword_prefix;
    std::optional<std::string> end_of_word_suffix;
    bool fuse_unk = false;
    bool byte_fallback = false;
    bool ignore_merges = false;
};

class BpeModel final : public Model {
  public:
    // Throws Error naming the merge index when a merge refers to unknown tokens.
    BpeModel(Vocab vocab, const MergeList& merges, BpeOptions options);
    ~BpeModel() override;

    void tokenize(std::string_view piece, std::vector<Token>& out) const override;
    std::optional<int32_t> token_to_id(std::string_view token) const override { return vocab_.find(token); }
    std::optional<std::string_view> id_to_token(int32_t id) const override { return vocab_.token(id); }
    size_t vocab_size() const override { return vocab_.size(); }
    void for_each_token(const std::function<void(std::string_view, int32_t)>& fn) const override {
        vocab_.for_each(fn);
    }

    // (id, byte length) of each symbol of a word.
    using Word = std::vector<std::pair<int32_t, uint32_t>>;

  private:
    struct MergeValue {
        uint32_t rank;
        int32_t new_id;
    };
    class MergeMap;
    class Cache;

    class PairSet;

    void tokenize_word(std::string_view word, size_t base, std::vector<Token>& out) const;
    void merge_word(std::string_view word, Word& out) const;
    void emit(const Word& word, size_t base, std::vector<Token>& out) const;
    const PairSet& junction_pairs() const;

    Vocab vocab_;
    std::unique_ptr<MergeMap> merges_;
    BpeOptions options_;
    std::optional<int32_t> unk_id_;
    std::array<int32_t, 256> byte_ids_{};  // "<0xNN>" ids, -1 when absent
    std::unique_ptr<Cache> cache_;
    // Long words are cut where no merge can apply (see tokenize); built on first use.
    bool can_split_words_ = false;
    std::vector<int32_t> merge_results_;
    mutable std::once_flag junction_once_;
    mutable std::unique_ptr<PairSet> junction_pairs_;
};

}  // namespace tfx::tok
