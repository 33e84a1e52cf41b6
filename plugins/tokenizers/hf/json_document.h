// Reads tokenizer.json in one SAX pass: the large model.vocab / model.merges arrays are
// collected straight into compact vectors, everything else into a small nlohmann DOM.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace tfx::tok {

struct TokenizerDocument {
    nlohmann::json root;  // without model.vocab and model.merges
    enum class VocabKind { Missing, Map, List } vocab_kind = VocabKind::Missing;
    std::vector<std::pair<std::string, int64_t>> vocab_map;  // BPE / WordPiece / WordLevel
    std::vector<std::pair<std::string, double>> vocab_list;  // Unigram (piece, score)
    bool has_merges = false;
    std::vector<std::pair<std::string, std::string>> merges;  // "#version" lines dropped
};

// Throws Error("tokenizer.json: <field>: <problem>") on syntax or shape errors.
TokenizerDocument parse_tokenizer_json(std::string_view text);

}  // namespace tfx::tok
