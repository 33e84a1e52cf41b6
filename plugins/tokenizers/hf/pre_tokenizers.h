// Pre-tokenizers: cut normalized text into the pieces the model sees (tokenizer.json
// "pre_tokenizer").
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pattern.h"
#include "pre_tokenized_string.h"

namespace tfx::tok {

class PreTokenizer {
  public:
    virtual ~PreTokenizer() = default;
    virtual void pre_tokenize(PreTokenizedString& pts) const = 0;
};

using PreTokenizerPtr = std::shared_ptr<const PreTokenizer>;

class ByteLevelPreTokenizer final : public PreTokenizer {
  public:
    ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex);
    void pre_tokenize(PreTokenizedString& pts) const override;

  private:
    bool add_prefix_space_;
    std::shared_ptr<const Pattern> regex_;  // GPT-2 split regex, null when use_regex = false
};

class SplitPreTokenizer final : public PreTokenizer {
  public:
    SplitPreTokenizer(std::shared_ptr<const Pattern> pattern, SplitBehavior behavior, bool invert);
    void pre_tokenize(PreTokenizedString& pts) const override;

  private:
    std::shared_ptr<const Pattern> pattern_;
    SplitBehavior behavior_;
};

// Splits with a char predicate or pattern and a fixed behavior: Whitespace, WhitespaceSplit,
// Punctuation, Digits, CharDelimiterSplit.
class PatternPreTokenizer final : public PreTokenizer {
  public:
    PatternPreTokenizer(std::shared_ptr<const Pattern> pattern, SplitBehavior behavior)
        : pattern_(std::move(pattern)), behavior_(behavior) {}
    void pre_tokenize(PreTokenizedString& pts) const override;

  private:
    std::shared_ptr<const Pattern> pattern_;
    SplitBehavior behavior_;
};

PreTokenizerPtr make_whitespace_pre_tokenizer();        // \w+|[^\w\s]+
PreTokenizerPtr make_whitespace_split_pre_tokenizer();  // split on whitespace
PreTokenizerPtr make_punctuation_pre_tokenizer(SplitBehavior behavior);
PreTokenizerPtr make_digits_pre_tokenizer(bool individual_digits);
PreTokenizerPtr make_char_delimiter_pre_tokenizer(char32_t delimiter);

class BertPreTokenizer final : public PreTokenizer {
  public:
    void pre_tokenize(PreTokenizedString& pts) const override;
};

enum class PrependScheme { First, Never, Always };

class MetaspacePreTokenizer final : public PreTokenizer {
  public:
    MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split);
    void pre_tokenize(PreTokenizedString& pts) const override;

  private:
    char32_t replacement_;
    std::shared_ptr<const Pattern> is_replacement_;
    std::string replacement_utf8_;
    PrependScheme scheme_;
    bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
  public:
    explicit SequencePreTokenizer(std::vector<PreTokenizerPtr> parts) : parts_(std::move(parts)) {}
    void pre_tokenize(PreTokenizedString& pts) const override {
        for (const auto& p : parts_) p->pre_tokenize(pts);
    }

  private:
    std::vector<PreTokenizerPtr> parts_;
};

}  // namespace tfx::tok
