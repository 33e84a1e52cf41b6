// Decoders: turn token strings back into text (tokenizer.json "decoder").
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pattern.h"
#include "pre_tokenizers.h"

namespace tfx::tok {

class Decoder {
  public:
    virtual ~Decoder() = default;
    // Rewrites the token list in place (the Rust crate's decode_chain).
    virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

using DecoderPtr = std::shared_ptr<const Decoder>;

class ByteLevelDecoder final : public Decoder {
  public:
    void decode_chain(std::vector<std::string>& tokens) const override;
};

class MetaspaceDecoder final : public Decoder {
  public:
    MetaspaceDecoder(char32_t replacement, PrependScheme scheme) : replacement_(replacement), scheme_(scheme) {}
    void decode_chain(std::vector<std::string>& tokens) const override;

  private:
    char32_t replacement_;
    PrependScheme scheme_;
};

class WordPieceDecoder final : public Decoder {
  public:
    WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
    void decode_chain(std::vector<std::string>& tokens) const override;

  private:
    std::string prefix_;
    bool cleanup_;
};

class ByteFallbackDecoder final : public Decoder {
  public:
    void decode_chain(std::vector<std::string>& tokens) const override;
};

class FuseDecoder final : public Decoder {
  public:
    void decode_chain(std::vector<std::string>& tokens) const override;
};

class StripDecoder final : public Decoder {
  public:
    StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
    void decode_chain(std::vector<std::string>& tokens) const override;

  private:
    char32_t content_;
    size_t start_, stop_;
};

class ReplaceDecoder final : public Decoder {
  public:
    ReplaceDecoder(std::shared_ptr<const Pattern> pattern, std::string content)
        : pattern_(std::move(pattern)), content_(std::move(content)) {}
    void decode_chain(std::vector<std::string>& tokens) const override;

  private:
    std::shared_ptr<const Pattern> pattern_;
    std::string content_;
};

class BpeDecoder final : public Decoder {
  public:
    explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
    void decode_chain(std::vector<std::string>& tokens) const override;

  private:
    std::string suffix_;
};

class CtcDecoder final : public Decoder {
  public:
    CtcDecoder(std::string pad_token, std::string word_delimiter_token, bool cleanup)
        : pad_token_(std::move(pad_token)), word_delimiter_token_(std::move(word_delimiter_token)), cleanup_(cleanup) {}
    void decode_chain(std::vector<std::string>& tokens) const override;

  private:
    std::string pad_token_, word_delimiter_token_;
    bool cleanup_;
};

class SequenceDecoder final : public Decoder {
  public:
    explicit SequenceDecoder(std::vector<DecoderPtr> parts) : parts_(std::move(parts)) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (const auto& d : parts_) d->decode_chain(tokens);
    }

  private:
    std::vector<DecoderPtr> parts_;
};

}  // namespace tfx::tok
