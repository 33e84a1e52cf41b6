// The Model interface (BPE, WordPiece, Unigram, WordLevel) and the Token it produces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tfx::tok {

struct Token {
    int32_t id;
    std::string value;
    size_t begin;  // byte offsets in the piece the model was given
    size_t end;
};

class Model {
  public:
    virtual ~Model() = default;
    // Appends the tokens of one pre-tokenized piece to `out`.
    virtual void tokenize(std::string_view piece, std::vector<Token>& out) const = 0;
    virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
    virtual std::optional<std::string_view> id_to_token(int32_t id) const = 0;
    virtual size_t vocab_size() const = 0;
    virtual void for_each_token(const std::function<void(std::string_view, int32_t)>& fn) const = 0;
};

}  // namespace tfx::tok
