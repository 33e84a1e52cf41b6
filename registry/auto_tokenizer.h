// AutoTokenizer: a model folder's tokenizer.json, run by the tokenizer plugin that claims
// its model type, configured by tokenizer_config.json and special_tokens_map.json the way
// transformers' AutoTokenizer configures its fast tokenizers.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/gguf.h"
#include "core/model_session.h"

namespace tfx {

class Tokenizer {
  public:
    // raw = true: tokenizer.json alone, as tokenizers.Tokenizer.from_file reads it. `dir` may
    // also name a .gguf file: its own vocabulary (open_gguf).
    static std::unique_ptr<Tokenizer> open(const std::filesystem::path& dir,
                                           const std::vector<std::string>& plugin_paths, bool raw = false);
    // The tokenizer a GGUF file carries in its metadata (gguf_tokenizer.h).
    static std::unique_ptr<Tokenizer> open_gguf(const gguf::File& file, const std::vector<std::string>& plugin_paths);
    // The model's tokenizer: its folder's tokenizer.json, or a GGUF file's own.
    static std::unique_ptr<Tokenizer> for_model(const ModelSession& session,
                                                const std::vector<std::string>& plugin_paths);
    // Whether the model has one for for_model to open (tokenizer.json, or GGUF tokenizer metadata).
    static bool model_has_one(const ModelSession& session);
    ~Tokenizer();
    Tokenizer(const Tokenizer&) = delete;
    Tokenizer& operator=(const Tokenizer&) = delete;

    std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
    // encode, with each token's [begin, end) byte offsets into text (special tokens the template
    // adds: (0, 0)), as a fast tokenizer's return_offsets_mapping gives them in characters.
    struct Encoding {
        std::vector<int32_t> ids;
        std::vector<std::pair<int64_t, int64_t>> offsets;
    };
    Encoding encode_with_offsets(std::string_view text, bool add_special_tokens = true) const;
    // Whether the token is special (decoding with skip_special_tokens drops it): [CLS], <s>, ...
    bool is_special(int32_t id) const;
    // clean_up_spaces: transformers' clean_up_tokenization ("a ." -> "a."); by default as
    // tokenizer_config.json's clean_up_tokenization_spaces says.
    std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false,
                       std::optional<bool> clean_up_spaces = std::nullopt) const;
    std::optional<int32_t> token_to_id(std::string_view token) const;
    // A token's text as it reads after other text (a leading space kept): decode("abcdef" +
    // token) less "abcdef", as transformers' StopStringCriteria sees tokens.
    std::string piece_after_text(int32_t id) const;
    int64_t vocab_size() const;
    // The token's string in the vocabulary ("▁the", "Ġthe", "<0x0A>"); nullopt outside it.
    std::optional<std::string> id_to_token(int32_t id) const;
    // Every token's bytes as it adds them to decoded text (after other text), for constrained
    // decoding; nullopt for special tokens and tokens that decode to nothing. Byte-fallback
    // (<0xHH>) and byte-level (GPT-2) tokens that hold part of a UTF-8 character give their
    // raw bytes, not U+FFFD.
    std::vector<std::optional<std::string>> token_bytes() const;

    // transformers' apply_chat_template(messages, tools, add_generation_prompt, **extra):
    // the chat_template of tokenizer_config.json rendered with the special tokens as variables.
    struct ChatOptions {
        nlohmann::ordered_json tools;  // null: none
        bool add_generation_prompt = true;
        bool continue_final_message = false;
        nlohmann::ordered_json extra = nlohmann::ordered_json::object();
        std::optional<std::string> template_name;
    };
    std::string apply_chat_template(const nlohmann::ordered_json& messages, const ChatOptions& options) const;
    // The rendered prompt tokenized without adding special tokens again (the template wrote them).
    std::vector<int32_t> encode_chat(const nlohmann::ordered_json& messages, const ChatOptions& options) const;

    // tokenizer_config.json merged with special_tokens_map.json ({} in raw mode).
    const nlohmann::json& settings() const { return settings_; }
    // The id of a special token named in the settings ("bos_token", "eos_token", ...).
    std::optional<int32_t> special_id(const std::string& key) const;
    // The content of a special token entry (a string or an AddedToken object).
    std::optional<std::string> special_token(const std::string& key) const;

    struct Impl;

  private:
    Encoding encode_tokens(std::string_view text, bool add_special_tokens, bool with_offsets) const;
    Tokenizer() = default;
    // A tokenizer.json's text run by the tokenizer plugin that claims its model type; `source`
    // names it in errors.
    static std::unique_ptr<Tokenizer> load(const std::string& json, const std::string& source,
                                           const std::vector<std::string>& plugin_paths);
    std::unique_ptr<Impl> impl_;
    nlohmann::json settings_ = nlohmann::json::object();
    // transformers' Llama/Gemma fast tokenizers rebuild the post-processor from these.
    std::optional<bool> add_bos_, add_eos_;
    bool clean_up_spaces_ = false;
};

// Streams decoded text as tokens arrive: never half a UTF-8 character, and the pieces
// concatenate to the full decode (transformers' TextStreamer, without the word buffering).
// A put decodes only the tokens since the last piece but one, so its cost does not grow with
// the length of the generation.
class TextStreamer {
  public:
    TextStreamer(const Tokenizer& tokenizer, bool skip_special_tokens)
        : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}
    std::string put(int32_t id);
    std::string end();

  private:
    const Tokenizer& tokenizer_;
    bool skip_special_;
    // Decodes of ids_[prefix_, read_) and ids_[prefix_, end) start at the same token, so a
    // decoder that treats the first token of its input specially (SentencePiece's leading
    // space) treats both alike, and the new text is the second's excess over the first.
    std::string window_excess(bool final) const;
    std::vector<int32_t> ids_;
    size_t prefix_ = 0, read_ = 0;
};

}  // namespace tfx
