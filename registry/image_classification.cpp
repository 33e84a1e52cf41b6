#include "registry/image_classification.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/forward_call.h"
#include "registry/pipelines.h"
#include "tfx/sdk/error.hpp"

namespace tfx {

namespace {

// The folder of an image classifier's session (for its image processor); throws for any other model.
const std::filesystem::path& image_classifier_dir(const ModelSession& session, const std::string& model) {
    const tfx_model_info& info = session.info();
    if (info.image_tokens <= 0 || info.output_kind != TFX_OUTPUT_CLASS_LOGITS) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "image-classification needs an image classifier; " + model + " (" +
                                                       session.architecture() + ") is not one");
    }
    return session.model_dir();
}

}  // namespace

ImageClassificationPipeline::ImageClassificationPipeline(const std::string& model, const LoadOptions& options)
    : session_(AutoModel::from_pretrained(model, options)), processor_(image_classifier_dir(*session_, model)) {}

std::vector<PixelValues> model_pixels(const ModelSession& session, const ImageProcessor& processor,
                                      const std::vector<RgbImage>& images) {
    const tfx_model_info& info = session.info();
    std::vector<PixelValues> pixels;
    for (const RgbImage& image : images) {
        pixels.push_back(processor.preprocess(image));
        if (pixels.back().height != info.image_height || pixels.back().width != info.image_width) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                             "the image processor makes " + std::to_string(pixels.back().width) + " x " +
                                 std::to_string(pixels.back().height) + " images; the model takes " +
                                 std::to_string(info.image_width) + " x " + std::to_string(info.image_height));
        }
    }
    return pixels;
}

std::vector<std::vector<float>> ImageClassificationPipeline::logits(const std::vector<RgbImage>& images) {
    const tfx_model_info& info = session_->info();
    const std::vector<PixelValues> pixels = model_pixels(*session_, processor_, images);
    std::vector<SequenceInput> inputs;
    for (const PixelValues& p : pixels) inputs.push_back({.pixels = p.values});
    std::vector<std::vector<float>> out;
    if (inputs.empty()) return out;
    ForwardCall call(*session_);
    const std::span<const float> all = call.run(inputs);
    const auto labels = static_cast<size_t>(info.output_size);
    for (size_t i = 0; i < images.size(); ++i)
        out.emplace_back(all.begin() + i * labels, all.begin() + (i + 1) * labels);
    return out;
}

std::vector<std::vector<ImageLabel>> ImageClassificationPipeline::classify(const std::vector<RgbImage>& images,
                                                                           int64_t top_k) {
    if (top_k <= 0) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "top_k must be positive");
    const auto count = static_cast<int64_t>(session_->info().output_size);
    const std::vector<std::string> names = label_names(*session_, count);
    // transformers: sigmoid for multi_label_classification or a single label, else softmax.
    const std::string problem = session_->config().get_or<std::string>("problem_type", "");
    const bool sigmoid = problem == "multi_label_classification" || count == 1;
    std::vector<std::vector<ImageLabel>> results;
    for (std::vector<float>& scores : logits(images)) {
        if (sigmoid) {
            for (float& v : scores) v = 1.0f / (1.0f + std::exp(-v));
        } else {
            softmax_in_place(scores);
        }
        std::vector<size_t> order(scores.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
        std::vector<ImageLabel>& best = results.emplace_back();
        for (size_t i = 0; i < std::min<size_t>(order.size(), static_cast<size_t>(top_k)); ++i)
            best.push_back({names[order[i]], scores[order[i]]});
    }
    return results;
}

}  // namespace tfx
