// WordPiece (greedy longest-match-first with a continuing-subword prefix) and WordLevel.
#pragma once

#include <string>

#include "model.h"
#include "vocab.h"

namespace tfx::tok {

class WordPieceModel final : public Model {
  public:
    WordPieceModel(Vocab vocab, std::string unk_token, std::string continuing_subword_prefix,
                   size_t max_input_chars_per_word)
        : vocab_(std::move(vocab)),
          unk_token_(std::move(unk_token)),
          prefix_(std::move(continuing_subword_prefix)),
          max_input_chars_per_word_(max_input_chars_per_word) {}

    void tokenize(std::string_view piece, std::vector<Token>& out) const override;
    std::optional<int32_t> token_to_id(std::string_view token) const override { return vocab_.find(token); }
    std::optional<std::string_view> id_to_token(int32_t id) const override { return vocab_.token(id); }
    size_t vocab_size() const override { return vocab_.size(); }
    void for_each_token(const std::function<void(std::string_view, int32_t)>& fn) const override {
        vocab_.for_each(fn);
    }

  private:
    Token unk(size_t len) const;

    Vocab vocab_;
    std::string unk_token_;
    std::string prefix_;
    size_t max_input_chars_per_word_;
};

class WordLevelModel final : public Model {
  public:
    WordLevelModel(Vocab vocab, std::string unk_token) : vocab_(std::move(vocab)), unk_token_(std::move(unk_token)) {}

    void tokenize(std::string_view piece, std::vector<Token>& out) const override;
    std::optional<int32_t> token_to_id(std::string_view token) const override { return vocab_.find(token); }
    std::optional<std::string_view> id_to_token(int32_t id) const override { return vocab_.token(id); }
    size_t vocab_size() const override { return vocab_.size(); }
    void for_each_token(const std::function<void(std::string_view, int32_t)>& fn) const override {
        vocab_.for_each(fn);
    }

  private:
    Vocab vocab_;
    std::string unk_token_;
};

}  // namespace tfx::tok
