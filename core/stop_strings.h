// Stop strings as transformers' StopStringCriteria reads them: a sequence stops when one of the
// strings ends inside its last token's text, the earlier tokens (the prompt's included)
// spelling the rest. Each token's text is its piece as decoded after other text ("abcdef"
// then the token), so a leading space survives.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace tfx {

class StopStrings {
  public:
    // `piece` gives a token's text as it reads after other text.
    using Piece = std::function<std::string(int32_t token)>;
    StopStrings(std::vector<std::string> stops, Piece piece);

    // True when a stop string ends inside the last token of `ids` (prompt and generated). A
    // string already complete before the last token does not count: it stopped the sequence
    // then, or it lies in the prompt.
    bool matches(std::span<const int32_t> ids);
    bool empty() const { return stops_.empty(); }

  private:
    const std::string& piece(int32_t token);

    std::vector<std::string> stops_;
    Piece piece_;
    size_t longest_ = 0;  // tokens to look back: every token spells at least one character
    std::unordered_map<int32_t, std::string> pieces_;
};

}  // namespace tfx
