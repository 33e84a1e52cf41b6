#include "registry/text2text_generation.h"

#include "core/generation.h"
#include "core/json_file.h"
#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

// "translation" alone names the model's one translation_* entry (t5 has several: then the
// caller must choose).
std::string task_named(const sdk::Config& config, const std::string& task) {
    if (task != "translation") return task;
    std::vector<std::string> found;
    if (config.has("task_specific_params") && config.json().at("task_specific_params").is_object()) {
        for (const auto& [key, value] : config.json().at("task_specific_params").items()) {
            if (key.rfind("translation_", 0) == 0) found.push_back(key);
        }
    }
    if (found.size() == 1) return found.front();
    if (found.empty()) return task;
    std::string names;
    for (const std::string& f : found) names += (names.empty() ? "" : ", ") + f;
    throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                     "translation: the model translates several ways; name one (" + names + ")");
}

}  // namespace

Text2TextGenerationPipeline::Text2TextGenerationPipeline(const std::string& model, const LoadOptions& options,
                                                         const std::string& task)
    : TaskPipeline(model, options) {
    const sdk::Config& config = session_->config();
    if (session_->info().num_cross_layers <= 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, task + " needs an encoder-decoder model (t5, bart); " + model +
                                                       " (" + session_->architecture() + ") is not one");
    }
    if (task != "text2text-generation" && task != "summarization" && task.rfind("translation", 0) != 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "task '" + task +
                                                       "': expected text2text-generation, summarization or "
                                                       "translation[_XX_to_YY]");
    }
    task_ = task_named(config, task);
    config_ =
        GenerationConfig::from_model(config, load_optional_json_file(session_->model_dir() / "generation_config.json"));
    prefix_ = config.get_or<std::string>("prefix", "");
    if (config.has("task_specific_params") && config.json().at("task_specific_params").contains(task_)) {
        // As transformers' Pipeline.__init__: the task's params update config.json (its prefix)
        // and the generation config.
        const sdk::Config params = config.child("task_specific_params").child(task_);
        config_.read(params);
        prefix_ = params.get_or<std::string>("prefix", prefix_);
    }
    config_.validate();
}

std::string Text2TextGenerationPipeline::output_key() const {
    if (task_ == "summarization") return "summary_text";
    if (task_.rfind("translation", 0) == 0) return "translation_text";
    return "generated_text";
}

std::vector<std::vector<std::string>> Text2TextGenerationPipeline::operator()(const std::vector<std::string>& texts,
                                                                              const GenerationConfig& config) {
    std::vector<std::vector<int32_t>> prompts;
    for (const std::string& text : texts) prompts.push_back(tokenizer_->encode(prefix_ + text));
    const GenerationResult result = generate(*session_, prompts, config);
    const size_t per_text = texts.empty() ? 0 : result.new_tokens.size() / texts.size();
    std::vector<std::vector<std::string>> out(texts.size());
    for (size_t i = 0; i < result.new_tokens.size(); ++i)
        out[i / per_text].push_back(tokenizer_->decode(result.new_tokens[i], /*skip_special_tokens=*/true));
    return out;
}

}  // namespace tfx
