#include "registry/image_feature_extraction.h"

#include <algorithm>

#include "core/forward_call.h"
#include "registry/image_classification.h"
#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

constexpr size_t kBatchImages = 32;

// The folder of a vision base model or image embedder (for its image processor); throws for any other model.
const std::filesystem::path& image_encoder_dir(const ModelSession& session, const std::string& model) {
    const tfx_model_info& info = session.info();
    if (info.image_tokens <= 0 ||
        (info.output_kind != TFX_OUTPUT_HIDDEN_STATE && info.output_kind != TFX_OUTPUT_EMBEDDING)) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "image feature extraction needs a vision base model (ViTModel) or an image embedder (CLIP); " +
                             model + " (" + session.architecture() + ") is neither");
    }
    return session.model_dir();
}

}  // namespace

ImageFeatureExtractionPipeline::ImageFeatureExtractionPipeline(const std::string& model, const LoadOptions& options)
    : session_(AutoModel::from_pretrained(model, options)), processor_(image_encoder_dir(*session_, model)) {}

std::vector<std::vector<float>> ImageFeatureExtractionPipeline::operator()(const std::vector<RgbImage>& images,
                                                                           Pooling pooling, bool normalize) {
    const tfx_model_info& info = session_->info();
    const bool embedder = info.output_kind == TFX_OUTPUT_EMBEDDING;
    const int64_t rows_each = embedder ? 1 : info.image_tokens, width = info.output_size;
    std::vector<std::vector<float>> vectors;
    ForwardCall call(*session_);
    for (size_t first = 0; first < images.size(); first += kBatchImages) {
        const std::vector<RgbImage> group(
            images.begin() + static_cast<std::ptrdiff_t>(first),
            images.begin() + static_cast<std::ptrdiff_t>(std::min(images.size(), first + kBatchImages)));
        const std::vector<PixelValues> pixels = model_pixels(*session_, processor_, group);
        std::vector<SequenceInput> inputs;
        for (const PixelValues& p : pixels)
            inputs.push_back({.output = SequenceInput::Output::all, .pixels = p.values});
        const std::span<const float> all = call.run(inputs);
        for (size_t i = 0; i < group.size(); ++i) {
            const std::span<const float> rows =
                all.subspan(i * static_cast<size_t>(rows_each * width), static_cast<size_t>(rows_each * width));
            vectors.push_back(pool_hidden_states(rows, rows_each, width, pooling, normalize));
        }
    }
    return vectors;
}

}  // namespace tfx
