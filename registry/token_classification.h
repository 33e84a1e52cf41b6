// token-classification (NER), as transformers' TokenClassificationPipeline post-processes a
// token classifier's logits: softmax per token, special tokens dropped, then one of the
// aggregation strategies:
//   none     each token with its best label ("entity") and index
//   simple   tokens grouped into entities by their B-/I- tags ("entity_group", mean score)
//   first, average, max   tokens merged into words first (a word's label: its first token's,
//            the mean of its tokens' scores, or its most confident token's), then grouped
// Labels in ignore_labels (default "O") are dropped at the end. Offsets are characters (code
// points) of the text, as Python's str indexes it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "registry/pipelines.h"

namespace tfx {

enum class Aggregation { none, simple, first, average, max };
// "none", "simple", "first", "average" or "max"; throws naming them for anything else.
Aggregation aggregation_named(const std::string& name);

// One non-special token, as gather_pre_entities makes it.
struct TokenScores {
    int32_t id;
    std::string word;           // the token's string (an unknown token: the text it covers)
    std::vector<float> scores;  // softmax over the labels
    int64_t start, end;         // characters of the text
    int64_t index;              // position in the model's input, special tokens counted
    bool is_subword;
};

struct Entity {
    std::string label;  // "entity" (none) or "entity_group" (the other strategies)
    float score;
    std::optional<int64_t> index;  // none only
    std::string word;
    int64_t start, end;
};

// Joins the tokens of a word or group into text, as the tokenizer's convert_tokens_to_string.
using JoinTokens = std::function<std::string(std::span<const TokenScores>)>;

// The strategy's entities for a text's tokens, labels named by `labels` (id2label).
std::vector<Entity> aggregate_entities(std::span<const TokenScores> tokens, const std::vector<std::string>& labels,
                                       Aggregation aggregation, const JoinTokens& join,
                                       const std::vector<std::string>& ignore_labels);

// Whether a token starts inside a word, from its text span: a word-aware tokenizer (a
// continuing_subword_prefix such as WordPiece's "##") compares the token's length with its
// span's; otherwise a token is a subword when the character before it is not a space and it
// does not start with one. Lengths and offsets in characters.
bool is_subword_token(const std::u32string& text, const std::u32string& token, int64_t start, int64_t end,
                      bool word_aware);

// The entities as transformers' pipeline returns them: [{"entity" (none) or "entity_group",
// "score", "index" (none), "word", "start", "end"}, ...].
nlohmann::json entities_json(const std::vector<Entity>& entities, Aggregation aggregation);

class TokenClassificationPipeline : public TaskPipeline {
  public:
    TokenClassificationPipeline(const std::string& model, const LoadOptions& options);
    std::vector<Entity> operator()(const std::string& text, Aggregation aggregation,
                                   const std::vector<std::string>& ignore_labels = {"O"});
    // Several texts in ragged forward calls together: each one's entities.
    std::vector<std::vector<Entity>> operator()(const std::vector<std::string>& texts, Aggregation aggregation,
                                                const std::vector<std::string>& ignore_labels = {"O"});

  private:
    bool word_aware_ = false;  // the tokenizer model has a continuing_subword_prefix
};

}  // namespace tfx
