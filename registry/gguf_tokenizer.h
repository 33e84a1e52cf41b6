// A GGUF file's own tokenizer (its tokenizer.ggml.* metadata) as a tokenizer.json that the hf
// tokenizer plugin runs, so `tfx generate --model FILE.gguf "text"` needs no other file.
//
// Two kinds, as tokenizer.ggml.model names them:
// - "llama" (SentencePiece vocabularies: Llama 2, Mistral, TinyLlama, ...): BPE over the tokens
//   with byte fallback, "▁" for spaces and one prepended, merges rebuilt from the scores as
//   transformers' GGUF loader rebuilds them (every split of a token into two tokens, ordered
//   by the token's score) and decoded as SentencePiece decodes (the leading space stripped);
// - "gpt2" (byte-level BPE: Llama 3, Qwen 2/3, GPT-2): the stored merges, with the
//   pre-tokenizer tokenizer.ggml.pre names ("llama-bpe", "qwen2": with NFC, "gpt2"/"default").
// Control and unknown tokens (token_type 3, 2) become special added tokens, user-defined ones (4) added
// tokens; tokenizer.ggml.add_bos_token / add_eos_token become the post-processor.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/gguf.h"

namespace tfx {

struct GgufTokenizer {
    std::string tokenizer_json;
    // As tokenizer_config.json would hold them: bos_token, eos_token, unk_token, pad_token,
    // chat_template (where the file has them).
    nlohmann::json settings = nlohmann::json::object();
    // transformers' clean_up_tokenization_spaces on decode ("a ." -> "a.").
    bool clean_up_spaces = false;
};

// Throws sdk::Error naming the file and the metadata key when the tokenizer metadata is
// missing, malformed, or of a kind not supported.
GgufTokenizer tokenizer_of(const gguf::File& file);
// The same from a parsed header; `file_name` names it in errors.
GgufTokenizer tokenizer_of(const gguf::Header& header, const std::string& file_name);

}  // namespace tfx
