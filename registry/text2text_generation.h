// text2text-generation, summarization and translation, as transformers' Text2TextGeneration,
// Summarization and Translation pipelines run an encoder-decoder model (t5, bart): config.json's
// task_specific_params[task] update the generation config (and give the input prefix, e.g.
// "summarize: "), each text (prefix + text) is tokenized as the encoder's input, generated from
// (greedy, sampled or beams, as the config says) and decoded without special tokens.
#pragma once

#include <string>
#include <vector>

#include "core/generation_config.h"
#include "registry/pipelines.h"

namespace tfx {

class Text2TextGenerationPipeline : public TaskPipeline {
  public:
    // task: "text2text-generation", "summarization" or "translation_XX_to_YY" (or "translation":
    // the model's only translation_* entry of task_specific_params, when it has one). Throws
    // unless the model is an encoder-decoder.
    Text2TextGenerationPipeline(const std::string& model, const LoadOptions& options, const std::string& task);

    // The generation config the task uses: generation_config.json updated by the task's params.
    const GenerationConfig& config() const { return config_; }
    const std::string& task() const { return task_; }
    const std::string& prefix() const { return prefix_; }
    // "generated_text", "summary_text" or "translation_text": where transformers puts the output.
    std::string output_key() const;

    // Each text's num_return_sequences outputs, generated with `config` (config() or the caller's).
    std::vector<std::vector<std::string>> operator()(const std::vector<std::string>& texts,
                                                     const GenerationConfig& config);

  private:
    std::string task_, prefix_;
    GenerationConfig config_;
};

}  // namespace tfx
