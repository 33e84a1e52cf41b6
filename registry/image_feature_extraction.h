// image-feature-extraction: one vector per image. CLIP (TFX_OUTPUT_EMBEDDING): the image
// embedding CLIPModel returns (projected, L2-normalised), the vector its zero-shot scores
// compare with text embeddings; a vision base model (ViTModel): its last hidden state pooled
// over the image's tokens (mean, or the class token), optionally L2-normalised, as `tfx embed`
// pools texts. Images run in forward calls of up to 32 together.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/model_session.h"
#include "registry/auto_model.h"
#include "registry/image_file.h"
#include "registry/image_processor.h"
#include "registry/pipelines.h"

namespace tfx {

class ImageFeatureExtractionPipeline {
  public:
    // Throws unless the model is a vision base model or embeds images.
    ImageFeatureExtractionPipeline(const std::string& model, const LoadOptions& options);

    std::vector<std::vector<float>> operator()(const std::vector<RgbImage>& images, Pooling pooling, bool normalize);

    ModelSession& session() { return *session_; }

  private:
    std::unique_ptr<ModelSession> session_;
    ImageProcessor processor_;
};

}  // namespace tfx
