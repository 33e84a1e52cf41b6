// A pair of texts (question and context, premise and hypothesis) laid out as the tokenizer's
// post_processor lays a pair out: TemplateProcessing's "pair", BertProcessing ([CLS] A [SEP]
// B [SEP], token types 0 then 1), RobertaProcessing (<s> A </s></s> B </s>), or, with none, the
// two sequences back to back.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/model_session.h"
#include "registry/auto_tokenizer.h"

namespace tfx {

// The pieces of a pair's layout.
struct PairTemplate {
    struct Piece {
        int sequence;                  // 0 or 1: that sequence's tokens; -1: special tokens
        std::vector<int32_t> special;  // for -1
        int32_t type_id;
    };
    std::vector<Piece> pieces;
};
// From a tokenizer.json (nlohmann::json); throws naming the field for a malformed template.
PairTemplate pair_template_of(const std::filesystem::path& tokenizer_json);

// The pair's ids and token types, each input token's index among the second text's tokens (-1
// for others), and the second text's encoding (offsets into it).
struct PairEncoding {
    std::vector<int32_t> ids, type_ids;
    std::vector<int64_t> second_index;
    Tokenizer::Encoding second;
};
PairEncoding encode_pair(const Tokenizer& tokenizer, const PairTemplate& layout, const std::string& first,
                         const std::string& second);
// The pair laid out from encodings, with only the second's tokens [begin, end) (a window of a
// long second text, as a tokenizer's overflowing encodings hold it); second_index still counts
// from the second text's first token, and `second` is all of it.
PairEncoding layout_pair(const PairTemplate& layout, const std::vector<int32_t>& first,
                         const Tokenizer::Encoding& second, int64_t begin, int64_t end);
// The special tokens the layout adds around the two texts.
int64_t added_tokens(const PairTemplate& layout);

// Throws naming `what` when the pair takes more positions than the model has (`why_not`: what
// tfx does not do about it).
void check_fits(const ModelSession& session, const PairEncoding& pair, const std::string& what,
                const std::string& why_not);

}  // namespace tfx
