// tfx::tok::Tokenizer — a Hugging Face `tokenizer.json` engine that reproduces the ids,
// offsets and decoded text of the Rust `tokenizers` crate.
//
// This header is the whole public surface: it pulls in no JSON or regex headers. All
// errors are thrown as tfx::tok::Error (malformed tokenizer.json with the offending field,
// invalid UTF-8 input, ...). A Tokenizer is immutable once configured and safe to use
// from several threads at once; copies share the loaded vocabulary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"

namespace tfx::tok {

// Byte span [begin, end) of a token in the text that was encoded.
struct Offsets {
    size_t begin = 0;
    size_t end = 0;
    friend bool operator==(const Offsets&, const Offsets&) = default;
};

struct Encoding {
    std::vector<int32_t> ids;
    std::vector<uint32_t> type_ids;
    std::vector<std::string> tokens;
    std::vector<Offsets> offsets;
    std::vector<uint32_t> attention_mask;
    std::vector<uint32_t> special_tokens_mask;
    std::vector<Encoding> overflowing;  // parts cut off by truncation (with stride overlap)

    size_t size() const { return ids.size(); }
};

enum class Direction { Left, Right };
enum class TruncationStrategy { LongestFirst, OnlyFirst, OnlySecond };

struct TruncationParams {
    size_t max_length = 512;
    size_t stride = 0;
    TruncationStrategy strategy = TruncationStrategy::LongestFirst;
    Direction direction = Direction::Right;
};

struct PaddingParams {
    std::optional<size_t> fixed_length = std::nullopt;  // nullopt: pad to the longest encoding of the batch
    std::optional<size_t> pad_to_multiple_of = std::nullopt;
    Direction direction = Direction::Right;
    int32_t pad_id = 0;
    uint32_t pad_type_id = 0;
    std::string pad_token = "[PAD]";
};

class DecodeStream;

class Tokenizer {
  public:
    static Tokenizer from_file(const std::filesystem::path& path);
    static Tokenizer from_json_text(std::string_view json);

    Encoding encode(std::string_view text, bool add_special_tokens = true) const;
    Encoding encode_pair(std::string_view first, std::string_view second, bool add_special_tokens = true) const;
    // Encodes each text; padding (if configured) is applied across the whole batch.
    std::vector<Encoding> encode_batch(std::span<const std::string_view> texts, bool add_special_tokens = true) const;

    // Unknown ids are skipped, as in the Rust crate.
    std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
    std::vector<std::string> decode_batch(std::span<const std::vector<int32_t>> batch,
                                          bool skip_special_tokens = false) const;
    DecodeStream decode_stream(bool skip_special_tokens = false) const;

    std::optional<int32_t> token_to_id(std::string_view token) const;
    std::optional<std::string> id_to_token(int32_t id) const;
    size_t vocab_size(bool with_added_tokens = true) const;
    bool is_special_token(int32_t id) const;
    // Number of tokens the post-processor adds (e.g. 2 for [CLS] ... [SEP]).
    size_t num_special_tokens_to_add(bool is_pair) const;

    // Initialised from tokenizer.json; settable afterwards.
    const std::optional<TruncationParams>& truncation() const { return truncation_; }
    void set_truncation(std::optional<TruncationParams> params);  // throws Error if stride >= max_length
    const std::optional<PaddingParams>& padding() const { return padding_; }
    void set_padding(std::optional<PaddingParams> params) { padding_ = std::move(params); }
    // When true, special added tokens in the input are tokenized as plain text.
    void set_encode_special_tokens(bool value) { encode_special_tokens_ = value; }
    bool encode_special_tokens() const { return encode_special_tokens_; }

    struct Core;  // the loaded pipeline (private)

  private:
    explicit Tokenizer(std::shared_ptr<const Core> core);
    Encoding encode_impl(std::string_view first, const std::string_view* second, bool add_special_tokens) const;

    std::shared_ptr<const Core> core_;
    std::optional<TruncationParams> truncation_;
    std::optional<PaddingParams> padding_;
    bool encode_special_tokens_ = false;
};

// Incremental decoding for streaming generation: feed ids one at a time and get the new
// text. Never returns part of a UTF-8 character; the concatenation of all returned pieces
// plus flush() equals decode() of all the ids.
class DecodeStream {
  public:
    // Returns the text completed by this id (possibly empty).
    std::string step(int32_t id);
    // Returns any text still held back (e.g. a trailing U+FFFD); call at end of stream.
    std::string flush();

  private:
    friend class Tokenizer;
    DecodeStream(std::shared_ptr<const Tokenizer::Core> core, bool skip_special_tokens)
        : core_(std::move(core)), skip_special_tokens_(skip_special_tokens) {}
    std::string decode_window() const;

    std::shared_ptr<const Tokenizer::Core> core_;
    bool skip_special_tokens_;
    std::vector<int32_t> ids_;  // the context window: ids_[0, prefix_index_) are already emitted
    std::string prefix_;        // decode of ids_ when the last piece was emitted
    size_t prefix_index_ = 0;
};

}  // namespace tfx::tok
