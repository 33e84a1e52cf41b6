// Post-processors: add special tokens around encoded sequences and adjust offsets
// (tokenizer.json "post_processor").
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer.h"

namespace tfx::tok {

class PostProcessor {
  public:
    virtual ~PostProcessor() = default;
    virtual size_t added_tokens(bool is_pair) const = 0;
    // One encoding per input sequence in, the processed pieces to concatenate out.
    virtual std::vector<Encoding> process(std::vector<Encoding> encodings, bool add_special_tokens) const = 0;
};

using PostProcessorPtr = std::shared_ptr<const PostProcessor>;

// Runs `processor` on the sequences and merges the result, applying it to truncation
// overflow parts as well.
Encoding post_process(const PostProcessor* processor, Encoding first, Encoding* second, bool add_special_tokens);

class ByteLevelPostProcessor final : public PostProcessor {
  public:
    ByteLevelPostProcessor(bool add_prefix_space, bool trim_offsets)
        : add_prefix_space_(add_prefix_space), trim_offsets_(trim_offsets) {}
    size_t added_tokens(bool) const override { return 0; }
    std::vector<Encoding> process(std::vector<Encoding> encodings, bool add_special_tokens) const override;

  private:
    bool add_prefix_space_, trim_offsets_;
};

struct SpecialTokenRef {
    std::string token;
    int32_t id;
};

class BertPostProcessor final : public PostProcessor {
  public:
    BertPostProcessor(SpecialTokenRef sep, SpecialTokenRef cls) : sep_(std::move(sep)), cls_(std::move(cls)) {}
    size_t added_tokens(bool is_pair) const override { return is_pair ? 3 : 2; }
    std::vector<Encoding> process(std::vector<Encoding> encodings, bool add_special_tokens) const override;

  private:
    SpecialTokenRef sep_, cls_;
};

class RobertaPostProcessor final : public PostProcessor {
  public:
    RobertaPostProcessor(SpecialTokenRef sep, SpecialTokenRef cls, bool trim_offsets, bool add_prefix_space)
        : sep_(std::move(sep)),
          cls_(std::move(cls)),
          trim_offsets_(trim_offsets),
          add_prefix_space_(add_prefix_space) {}
    size_t added_tokens(bool is_pair) const override { return is_pair ? 4 : 2; }
    std::vector<Encoding> process(std::vector<Encoding> encodings, bool add_special_tokens) const override;

  private:
    SpecialTokenRef sep_, cls_;
    bool trim_offsets_, add_prefix_space_;
};

struct TemplatePiece {
    bool is_sequence;   // $A / $B, otherwise a special token
    size_t sequence;    // 0 for A, 1 for B
    std::string token;  // special token id (its key in special_tokens)
    uint32_t type_id;
};

struct TemplateSpecialToken {
    std::vector<int32_t> ids;
    std::vector<std::string> tokens;
};

class TemplatePostProcessor final : public PostProcessor {
  public:
    TemplatePostProcessor(std::vector<TemplatePiece> single, std::vector<TemplatePiece> pair,
                          std::map<std::string, TemplateSpecialToken> special_tokens);
    size_t added_tokens(bool is_pair) const override;
    std::vector<Encoding> process(std::vector<Encoding> encodings, bool add_special_tokens) const override;

  private:
    std::vector<TemplatePiece> single_, pair_;
    std::map<std::string, TemplateSpecialToken> special_tokens_;
};

class SequencePostProcessor final : public PostProcessor {
  public:
    explicit SequencePostProcessor(std::vector<PostProcessorPtr> parts) : parts_(std::move(parts)) {}
    size_t added_tokens(bool is_pair) const override;
    std::vector<Encoding> process(std::vector<Encoding> encodings, bool add_special_tokens) const override;

  private:
    std::vector<PostProcessorPtr> parts_;
};

}  // namespace tfx::tok
