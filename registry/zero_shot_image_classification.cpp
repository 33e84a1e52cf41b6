#include "registry/zero_shot_image_classification.h"

#include <algorithm>
#include <numeric>

#include "core/forward_call.h"
#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

const std::filesystem::path& embedder_dir(const ModelSession& session, const std::string& model) {
    const tfx_model_info& info = session.info();
    if (info.output_kind != TFX_OUTPUT_EMBEDDING || info.image_tokens <= 0 || info.vocab_size <= 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "zero-shot-image-classification needs a model that embeds images and texts (CLIP); " + model +
                             " (" + session.architecture() + ") is not one");
    }
    return session.model_dir();
}

}  // namespace

float embedding_logit(const tfx_model_info& info, std::span<const float> a, std::span<const float> b) {
    double dot = 0.0;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) dot += static_cast<double>(a[i]) * b[i];
    return static_cast<float>(info.embedding_scale * dot);
}

ZeroShotImageClassificationPipeline::ZeroShotImageClassificationPipeline(const std::string& model,
                                                                         const LoadOptions& options)
    : TaskPipeline(model, options), processor_(embedder_dir(*session_, model)) {}

ImageLabelScores ZeroShotImageClassificationPipeline::operator()(const RgbImage& image,
                                                                 const std::vector<std::string>& candidate_labels,
                                                                 const std::string& hypothesis_template) {
    if (candidate_labels.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "candidate_labels: none given");
    const tfx_model_info& info = session_->info();
    const PixelValues pixels = processor_.preprocess(image);
    ForwardCall call(*session_);
    const std::span<const float> image_row = call.run(SequenceInput{.pixels = pixels.values});
    const std::vector<float> image_embeds(image_row.begin(), image_row.end());
    // The texts in one call of their own (a call is all images or all texts).
    std::vector<std::vector<int32_t>> ids;
    for (const std::string& label : candidate_labels)
        ids.push_back(tokenizer_->encode(hypothesis_for(hypothesis_template, label)));
    std::vector<SequenceInput> texts;
    for (const auto& text : ids) texts.push_back({.ids = text});
    const std::span<const float> text_rows = call.run(texts);
    const auto width = static_cast<size_t>(info.output_size);
    std::vector<float> logits(candidate_labels.size());
    for (size_t t = 0; t < logits.size(); ++t)
        logits[t] = embedding_logit(info, text_rows.subspan(t * width, width), image_embeds);
    softmax_in_place(logits);
    std::vector<size_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] > logits[b]; });
    ImageLabelScores result;
    for (size_t i : order) {
        result.labels.push_back(candidate_labels[i]);
        result.scores.push_back(logits[i]);
    }
    return result;
}

}  // namespace tfx
