// The loaded pipeline behind tfx::tok::Tokenizer (internal header).
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "added_vocabulary.h"
#include "decoders.h"
#include "models/model.h"
#include "normalizers.h"
#include "post_processors.h"
#include "pre_tokenizers.h"
#include "tokenizer.h"

namespace tfx::tok {

struct Tokenizer::Core {
    NormalizerPtr normalizer;
    PreTokenizerPtr pre_tokenizer;
    std::unique_ptr<Model> model;
    PostProcessorPtr post_processor;
    DecoderPtr decoder;
    AddedVocabulary added;
    std::optional<TruncationParams> truncation;  // as found in tokenizer.json
    std::optional<PaddingParams> padding;
    size_t vocab_size_with_added = 0;

    // Encodes one sequence (no post-processing); type_id is 0 for the first sequence.
    Encoding encode_sequence(std::string_view text, uint32_t type_id, bool encode_special_tokens) const;
    std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;
    std::optional<std::string> id_to_token(int32_t id) const;
};

// Builds the pipeline from tokenizer.json text; throws Error naming the bad field.
std::shared_ptr<const Tokenizer::Core> load_tokenizer_core(std::string_view json_text);

}  // namespace tfx::tok
