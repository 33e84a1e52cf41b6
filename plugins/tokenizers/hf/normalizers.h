// Normalizers: the text rewrites run before pre-tokenization (tokenizer.json "normalizer").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "normalized_string.h"
#include "pattern.h"

namespace tfx::tok {

class Normalizer {
  public:
    virtual ~Normalizer() = default;
    virtual void normalize(NormalizedString& s) const = 0;
};

using NormalizerPtr = std::shared_ptr<const Normalizer>;

class UnicodeNormalizer final : public Normalizer {  // NFC, NFD, NFKC, NFKD
  public:
    explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
    void normalize(NormalizedString& s) const override { s.unicode_normalize(form_); }

  private:
    NormalForm form_;
};

class LowercaseNormalizer final : public Normalizer {
  public:
    void normalize(NormalizedString& s) const override { s.lowercase(); }
};

class StripNormalizer final : public Normalizer {
  public:
    StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
    void normalize(NormalizedString& s) const override { s.strip(left_, right_); }

  private:
    bool left_, right_;
};

class StripAccentsNormalizer final : public Normalizer {
  public:
    void normalize(NormalizedString& s) const override;
};

class NmtNormalizer final : public Normalizer {
  public:
    void normalize(NormalizedString& s) const override;
};

class BertNormalizer final : public Normalizer {
  public:
    BertNormalizer(bool clean_text, bool handle_chinese_chars, bool strip_accents, bool lowercase)
        : clean_text_(clean_text),
          handle_chinese_chars_(handle_chinese_chars),
          strip_accents_(strip_accents),
          lowercase_(lowercase) {}
    void normalize(NormalizedString& s) const override;

  private:
    bool clean_text_, handle_chinese_chars_, strip_accents_, lowercase_;
};

class ReplaceNormalizer final : public Normalizer {
  public:
    ReplaceNormalizer(std::shared_ptr<const Pattern> pattern, std::string content)
        : pattern_(std::move(pattern)), content_(std::move(content)) {}
    void normalize(NormalizedString& s) const override { s.replace(*pattern_, content_); }

  private:
    std::shared_ptr<const Pattern> pattern_;
    std::string content_;
};

class PrependNormalizer final : public Normalizer {
  public:
    explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
    void normalize(NormalizedString& s) const override { s.prepend(prefix_); }

  private:
    std::string prefix_;
};

class ByteLevelNormalizer final : public Normalizer {
  public:
    void normalize(NormalizedString& s) const override;
};

// SentencePiece's compiled normalization rules (a darts-clone double-array trie over UTF-8
// bytes plus a pool of NUL-terminated replacement strings).
class PrecompiledNormalizer final : public Normalizer {
  public:
    explicit PrecompiledNormalizer(std::string charsmap);  // decoded bytes; throws Error if malformed
    void normalize(NormalizedString& s) const override;
    // Replacement for the first (shortest) prefix of `chunk` in the trie, if any.
    std::optional<std::string_view> transform(std::string_view chunk) const;

  private:
    std::vector<uint32_t> trie_;
    std::string pool_;
};

class SequenceNormalizer final : public Normalizer {
  public:
    explicit SequenceNormalizer(std::vector<NormalizerPtr> parts) : parts_(std::move(parts)) {}
    void normalize(NormalizedString& s) const override {
        for (const auto& n : parts_) n->normalize(s);
    }

  private:
    std::vector<NormalizerPtr> parts_;
};

}  // namespace tfx::tok
