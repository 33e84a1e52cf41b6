#include "registry/pipelines.h"

#include <algorithm>
#include <cmath>

#include "core/forward_call.h"
#include "core/json_file.h"
#include "tfx/sdk/error.hpp"

namespace tfx {

TaskPipeline::TaskPipeline(const std::string& model, const LoadOptions& options)
    : session_(AutoModel::from_pretrained(model, options)),
      tokenizer_(Tokenizer::for_model(*session_, options.plugin_paths)) {}

std::vector<std::string> label_names(const ModelSession& session, int64_t count) {
    const auto& config = session.config();
    std::vector<std::string> labels;
    for (int64_t i = 0; i < count; ++i) {
        std::string label = "LABEL_" + std::to_string(i);
        if (config.has("id2label")) {
            const auto& names = config.json().at("id2label");
            if (auto it = names.find(std::to_string(i)); it != names.end() && it->is_string())
                label = it->get<std::string>();
        }
        labels.push_back(std::move(label));
    }
    return labels;
}

void softmax_in_place(std::span<float> values) {
    if (values.empty()) return;
    const float max = *std::max_element(values.begin(), values.end());
    float sum = 0.0f;
    for (float& v : values) sum += (v = std::exp(v - max));
    for (float& v : values) v /= sum;
}

TaskPipeline::Outputs TaskPipeline::run(const std::vector<int32_t>& ids, const std::vector<int32_t>& token_type_ids) {
    if (ids.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "the text encodes to no tokens");
    ForwardCall call(*session_);
    const auto values = call.run({.ids = ids, .token_type_ids = token_type_ids, .output = SequenceInput::Output::all});
    return Outputs{{values.begin(), values.end()}, {call.pooled().begin(), call.pooled().end()}, call.rows()};
}

std::vector<TaskPipeline::Outputs> TaskPipeline::run_batch(const std::vector<std::vector<int32_t>>& ids,
                                                           const std::vector<std::vector<int32_t>>& token_type_ids) {
    const tfx_model_info& info = session_->info();
    const bool one_row_each = info.output_kind == TFX_OUTPUT_CLASS_LOGITS || info.output_kind == TFX_OUTPUT_EMBEDDING;
    const auto width = static_cast<size_t>(info.output_size);
    std::vector<Outputs> outputs;
    ForwardCall call(*session_);
    for (size_t first = 0; first < ids.size(); first += kBatchSequences) {
        const size_t last = std::min(ids.size(), first + kBatchSequences);
        std::vector<SequenceInput> inputs;
        for (size_t i = first; i < last; ++i) {
            if (ids[i].empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "the text encodes to no tokens");
            inputs.push_back(
                {.ids = ids[i], .token_type_ids = token_type_ids[i], .output = SequenceInput::Output::all});
        }
        const std::span<const float> values = call.run(inputs);
        const std::span<const float> pooled = call.pooled();
        const size_t pooled_width = pooled.size() / inputs.size();
        size_t row = 0;
        for (size_t i = first; i < last; ++i) {
            const size_t rows = one_row_each ? 1 : ids[i].size();
            const auto at = static_cast<std::ptrdiff_t>(row * width);
            const auto pooled_at = static_cast<std::ptrdiff_t>((i - first) * pooled_width);
            outputs.push_back(
                {{values.begin() + at, values.begin() + at + static_cast<std::ptrdiff_t>(rows * width)},
                 {pooled.begin() + pooled_at, pooled.begin() + pooled_at + static_cast<std::ptrdiff_t>(pooled_width)},
                 static_cast<int64_t>(rows)});
            row += rows;
        }
    }
    return outputs;
}

std::vector<float> FeatureExtractionPipeline::operator()(const std::string& text, Pooling pooling, bool normalize) {
    return (*this)(std::vector<std::string>{text}, pooling, normalize).front();
}

std::vector<std::vector<float>> FeatureExtractionPipeline::operator()(const std::vector<std::string>& texts,
                                                                      Pooling pooling, bool normalize) {
    // A base model's hidden states are pooled; an embedding model (CLIP's text tower) gives
    // one vector per text, which pooling leaves as it is.
    const int32_t kind = session_->info().output_kind;
    if (kind != TFX_OUTPUT_HIDDEN_STATE && kind != TFX_OUTPUT_EMBEDDING) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, session_->architecture() +
                                                  " has a task head; feature extraction needs a base model or "
                                                  "an embedding model (CLIP)");
    }
    std::vector<std::vector<int32_t>> ids;
    for (const std::string& text : texts) ids.push_back(tokenizer_->encode(text));
    std::vector<std::vector<float>> vectors;
    for (const Outputs& out : run_batch(ids, std::vector<std::vector<int32_t>>(ids.size()))) {
        vectors.push_back(pool_hidden_states(out.values, out.rows, session_->info().output_size, pooling, normalize));
    }
    return vectors;
}

std::vector<float> pool_hidden_states(std::span<const float> hidden, int64_t rows, int64_t width, Pooling pooling,
                                      bool normalize) {
    const auto w = static_cast<size_t>(width);
    std::vector<float> vector(hidden.begin(), hidden.begin() + static_cast<std::ptrdiff_t>(w));
    if (pooling == Pooling::mean) {
        for (int64_t r = 1; r < rows; ++r) {
            for (size_t i = 0; i < w; ++i) vector[i] += hidden[r * w + i];
        }
        for (float& v : vector) v /= static_cast<float>(rows);
    }
    if (normalize) {
        float norm = 0.0f;
        for (float v : vector) norm += v * v;
        norm = std::max(std::sqrt(norm), 1e-12f);  // torch.nn.functional.normalize's eps
        for (float& v : vector) v /= norm;
    }
    return vector;
}

std::optional<Pooling> sentence_transformers_pooling(const std::filesystem::path& model_dir) {
    const auto path = model_dir / "1_Pooling" / "config.json";
    const std::optional<sdk::Config> config = load_optional_json_file(path);
    if (!config) return std::nullopt;
    if (config->get_or("pooling_mode_cls_token", false)) return Pooling::cls;
    if (config->get_or("pooling_mode_mean_tokens", false)) return Pooling::mean;
    throw sdk::Error(TFX_ERR_UNSUPPORTED, path.string() +
                                              ": only pooling_mode_mean_tokens and pooling_mode_cls_token are "
                                              "supported (max, last-token and weighted-mean pooling are not)");
}

std::vector<TextClassificationPipeline::Score> TextClassificationPipeline::operator()(const std::string& text) {
    return (*this)(std::vector<std::string>{text}).front();
}

std::vector<std::vector<TextClassificationPipeline::Score>> TextClassificationPipeline::operator()(
    const std::vector<std::string>& texts) {
    if (session_->info().output_kind != TFX_OUTPUT_CLASS_LOGITS) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, session_->architecture() + " is not a sequence classifier");
    }
    std::vector<std::vector<int32_t>> ids;
    for (const std::string& text : texts) ids.push_back(tokenizer_->encode(text));
    std::vector<std::vector<Score>> results;
    for (Outputs& out : run_batch(ids, std::vector<std::vector<int32_t>>(ids.size()))) {
        softmax_in_place(out.values);
        const std::vector<std::string> labels = label_names(*session_, static_cast<int64_t>(out.values.size()));
        std::vector<Score> scores;
        for (size_t i = 0; i < out.values.size(); ++i) scores.push_back({labels[i], out.values[i]});
        std::stable_sort(scores.begin(), scores.end(),
                         [](const Score& a, const Score& b) { return a.score > b.score; });
        results.push_back(std::move(scores));
    }
    return results;
}

std::vector<FillMaskPipeline::Candidate> FillMaskPipeline::operator()(const std::string& text, int top_k) {
    if (session_->info().output_kind != TFX_OUTPUT_LOGITS) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, session_->architecture() + " has no language-model head for fill-mask");
    }
    const auto mask_token = tokenizer_->special_token("mask_token");
    const auto mask_id = mask_token ? tokenizer_->token_to_id(*mask_token) : std::nullopt;
    if (!mask_id) throw sdk::Error(TFX_ERR_NOT_FOUND, "the tokenizer has no mask_token (tokenizer_config.json)");
    std::vector<int32_t> ids = tokenizer_->encode(text);
    const auto masks = std::count(ids.begin(), ids.end(), *mask_id);
    if (masks != 1) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "fill-mask needs exactly one " + *mask_token + " in the text, found " + std::to_string(masks));
    }
    const auto position = std::find(ids.begin(), ids.end(), *mask_id) - ids.begin();
    Outputs out = run(ids);
    const auto vocab = static_cast<size_t>(session_->info().output_size);
    std::vector<float> probs(out.values.begin() + position * vocab, out.values.begin() + (position + 1) * vocab);
    const float max = *std::max_element(probs.begin(), probs.end());
    float sum = 0.0f;
    for (float& p : probs) sum += (p = std::exp(p - max));
    std::vector<size_t> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    const size_t k = std::min<size_t>(static_cast<size_t>(std::max(top_k, 1)), vocab);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [&](size_t a, size_t b) { return probs[a] > probs[b]; });
    std::vector<Candidate> candidates;
    for (size_t i = 0; i < k; ++i) {
        const auto token = static_cast<int32_t>(order[i]);
        std::vector<int32_t> filled = ids;
        filled[static_cast<size_t>(position)] = token;
        const std::vector<int32_t> single{token};
        candidates.push_back(
            {token, tokenizer_->decode(single), probs[order[i]] / sum, tokenizer_->decode(filled, true)});
    }
    return candidates;
}

std::string TextGenerationPipeline::operator()(const std::string& prompt, const GenerationConfig& config) {
    GenerationResult result = generate(*session_, {tokenizer_->encode(prompt)}, config);
    return tokenizer_->decode(result.new_tokens[0], true);
}

}  // namespace tfx
