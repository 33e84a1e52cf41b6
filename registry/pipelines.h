// Task pipelines in the spirit of transformers.pipeline(): a model folder (weights +
// tokenizer) behind one call per task. Model semantics stay in the model plugins; these only
// tokenize, run forward and post-process outputs the way transformers' pipelines do.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/generation.h"
#include "core/model_session.h"
#include "registry/auto_model.h"
#include "registry/auto_tokenizer.h"

namespace tfx {

class TaskPipeline {
  public:
    // model: a folder or a Hub id.
    TaskPipeline(const std::string& model, const LoadOptions& options);
    ModelSession& session() { return *session_; }
    const Tokenizer& tokenizer() const { return *tokenizer_; }

  protected:
    // One sequence through the model: [rows, output_size] outputs, plus the pooler's output
    // when the model has one.
    struct Outputs {
        std::vector<float> values;
        std::vector<float> pooled;
        int64_t rows = 0;
    };
    Outputs run(const std::vector<int32_t>& ids, const std::vector<int32_t>& token_type_ids = {});
    // Several sequences (ids[i], with token_type_ids[i] or all segment 0 when it is empty) in
    // ragged forward calls of up to kBatchSequences each: each one's Outputs, as run gives them.
    std::vector<Outputs> run_batch(const std::vector<std::vector<int32_t>>& ids,
                                   const std::vector<std::vector<int32_t>>& token_type_ids);
    static constexpr size_t kBatchSequences = 32;

    std::unique_ptr<ModelSession> session_;
    std::unique_ptr<Tokenizer> tokenizer_;
};

// config.json's id2label names for `count` outputs ("LABEL_i" where it names none).
std::vector<std::string> label_names(const ModelSession& session, int64_t count);
// values = softmax(values), with the maximum subtracted first.
void softmax_in_place(std::span<float> values);

enum class Pooling { mean, cls };

// One sequence's hidden states [rows, width] pooled to one vector: their mean or the first
// row, optionally L2-normalized (with torch.nn.functional.normalize's eps).
std::vector<float> pool_hidden_states(std::span<const float> hidden, int64_t rows, int64_t width, Pooling pooling,
                                      bool normalize);

// The pooling a sentence-transformers model folder names in 1_Pooling/config.json (mean or
// CLS); nullopt when it has none. Throws for a mode tfx does not implement.
std::optional<Pooling> sentence_transformers_pooling(const std::filesystem::path& model_dir);

// feature-extraction: one vector per text (mean over tokens or the first token; an embedding
// model's own vector: CLIP's text_embeds). Several texts run in ragged forward calls together.
class FeatureExtractionPipeline : public TaskPipeline {
  public:
    using TaskPipeline::TaskPipeline;
    std::vector<float> operator()(const std::string& text, Pooling pooling, bool normalize);
    std::vector<std::vector<float>> operator()(const std::vector<std::string>& texts, Pooling pooling, bool normalize);
};

// text-classification: softmax over the labels of config.json's id2label, best first.
class TextClassificationPipeline : public TaskPipeline {
  public:
    struct Score {
        std::string label;
        float score;
    };
    using TaskPipeline::TaskPipeline;
    std::vector<Score> operator()(const std::string& text);
    // Several texts in ragged forward calls together: each one's scores.
    std::vector<std::vector<Score>> operator()(const std::vector<std::string>& texts);
};

// fill-mask: the top_k tokens for the single mask token in the text.
class FillMaskPipeline : public TaskPipeline {
  public:
    struct Candidate {
        int32_t token;
        std::string token_str;
        float score;
        std::string sequence;
    };
    using TaskPipeline::TaskPipeline;
    std::vector<Candidate> operator()(const std::string& text, int top_k = 5);
};

// text-generation: the new text for a prompt.
class TextGenerationPipeline : public TaskPipeline {
  public:
    using TaskPipeline::TaskPipeline;
    std::string operator()(const std::string& prompt, const GenerationConfig& config);
};

}  // namespace tfx
