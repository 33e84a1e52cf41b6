// The image processors of transformers' vision models, from preprocessor_config.json:
// ViTImageProcessor (resize to size.height x size.width) and CLIPImageProcessor (convert to
// RGB, resize the shortest edge, center crop), then rescale and normalize, to pixel_values
// [channels, height, width] f32. Resizing is PIL's (the "slow" processors resize through
// PIL): its separable convolution with the filter widened by the downscale factor, 8-bit
// fixed-point weights, the horizontal pass first and an 8-bit image between the passes, so
// the pixels equal transformers' exactly.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "registry/image_file.h"

namespace tfx {

// PIL's resampling filters, by the numbers transformers' configs store (PIL.Image.Resampling).
enum class Resample { nearest = 0, bilinear = 2, bicubic = 3 };

// image resized to width x height as PIL's Image.resize(size, resample) does.
RgbImage pil_resize(const RgbImage& image, int64_t width, int64_t height, Resample resample);

// One image's pixel_values: f32 [3, height, width], channels first.
struct PixelValues {
    int64_t height = 0, width = 0;
    std::vector<float> values;
};

class ImageProcessor {
  public:
    // Reads `model_dir`/preprocessor_config.json; throws naming the file and field for a
    // processor type or setting tfx does not implement.
    explicit ImageProcessor(const std::filesystem::path& model_dir);

    PixelValues preprocess(const RgbImage& image) const;
    const std::string& type() const { return type_; }

  private:
    std::string type_;
    bool resize_ = true, crop_ = false, rescale_ = true, normalize_ = true;
    bool shortest_edge_ = false;  // size {"shortest_edge": n}: keep the aspect ratio
    int64_t height_ = 224, width_ = 224, crop_height_ = 224, crop_width_ = 224;
    Resample resample_ = Resample::bilinear;
    double rescale_factor_ = 1.0 / 255.0;
    std::array<float, 3> mean_{}, std_{};
};

}  // namespace tfx
