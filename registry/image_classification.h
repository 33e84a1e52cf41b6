// image-classification, as transformers' ImageClassificationPipeline runs a vision classifier
// (ViTForImageClassification): the model folder's image processor turns each image into
// pixel_values, one forward classifies a batch of them, and the logits become scores
// (softmax, or sigmoid for multi-label and one-label models), the top_k best first.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/model_session.h"
#include "registry/auto_model.h"
#include "registry/image_processor.h"

namespace tfx {

// Each image through `processor`, checked against the size the model's vision encoder takes.
std::vector<PixelValues> model_pixels(const ModelSession& session, const ImageProcessor& processor,
                                      const std::vector<RgbImage>& images);

struct ImageLabel {
    std::string label;
    float score = 0.0f;
};

class ImageClassificationPipeline {
  public:
    // model: a folder or a Hub id; throws unless its model classifies images.
    ImageClassificationPipeline(const std::string& model, const LoadOptions& options);

    // Each image's top_k labels (all of them when top_k exceeds the model's), best first.
    std::vector<std::vector<ImageLabel>> classify(const std::vector<RgbImage>& images, int64_t top_k = 5);
    // Each image's raw logits [num_labels], in one batch.
    std::vector<std::vector<float>> logits(const std::vector<RgbImage>& images);

    ModelSession& session() { return *session_; }
    const ImageProcessor& processor() const { return processor_; }

  private:
    std::unique_ptr<ModelSession> session_;
    ImageProcessor processor_;
};

}  // namespace tfx
