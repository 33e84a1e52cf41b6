// zero-shot-image-classification, as transformers' ZeroShotImageClassificationPipeline runs
// CLIP: each candidate label becomes a text (hypothesis_template with the label in place of
// "{}"), the image and the texts are embedded, and the labels' scores are the softmax of
// logits_per_image (embedding_scale x the image's dot product with each text), best first.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "registry/image_file.h"
#include "registry/image_processor.h"
#include "registry/pipelines.h"
#include "registry/zero_shot_classification.h"

namespace tfx {

// CLIPModel's logit of two embeddings (an image's and a text's): embedding_scale x their dot product.
float embedding_logit(const tfx_model_info& info, std::span<const float> a, std::span<const float> b);

struct ImageLabelScores {
    std::vector<std::string> labels;  // best first
    std::vector<float> scores;
};

class ZeroShotImageClassificationPipeline : public TaskPipeline {
  public:
    // Throws unless the model embeds images and texts (TFX_OUTPUT_EMBEDDING with a vocabulary).
    ZeroShotImageClassificationPipeline(const std::string& model, const LoadOptions& options);

    ImageLabelScores operator()(const RgbImage& image, const std::vector<std::string>& candidate_labels,
                                const std::string& hypothesis_template = "This is a photo of {}.");

  private:
    ImageProcessor processor_;
};

}  // namespace tfx
