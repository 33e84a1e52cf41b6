// Reads tokenizer.json in one SAX pass: the large model.vocab / model.merges arrays go
// straight into compact tables (a map vocabulary is built as the final Vocab, merges are
// token bytes in one arena), everything else into a small nlohmann DOM. No per-token
// allocations, and nothing of the big arrays is held twice.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/vocab.h"

namespace tfx::tok {

struct TokenizerDocument {
    nlohmann::json root;  // without model.vocab and model.merges
    enum class VocabKind { Missing, Map, List } vocab_kind = VocabKind::Missing;
    Vocab vocab_map;  // BPE / WordPiece / WordLevel, later entries for a token replacing earlier ones
    // The first model.vocab entry whose id is kMaxVocabId or more (not inserted).
    std::optional<std::string> vocab_id_too_large;
    std::vector<std::pair<std::string, double>> vocab_list;  // Unigram (piece, score)
    bool has_merges = false;
    MergeList merges;  // "#version" lines dropped
};

// Map vocabulary ids must stay below this: it keeps the dense id -> token table bounded.
constexpr int64_t kMaxVocabId = int64_t{1} << 24;

// Throws Error("tokenizer.json: <field>: <problem>") on syntax or shape errors.
TokenizerDocument parse_tokenizer_json(std::string_view text);

}  // namespace tfx::tok
