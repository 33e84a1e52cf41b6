#include "registry/image_processor.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "core/json_file.h"
#include "tfx/sdk/config.hpp"
#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

// Pillow's fixed-point weights: 32 bits less 8 for a pixel and 2 of headroom.
constexpr int kPrecisionBits = 32 - 8 - 2;

double bilinear(double x) {
    x = std::fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubic(double x) {
    constexpr double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

// One axis's weights (Pillow's precompute_coeffs and normalize_coeffs_8bpc): output pixel i
// reads `count[i]` input pixels from `first[i]` with weights k[i * ksize ...].
struct Weights {
    int64_t ksize = 0;
    std::vector<int64_t> first, count;
    std::vector<int32_t> k;
};

Weights weights_for(int64_t in_size, int64_t out_size, Resample resample) {
    const double support_1 = resample == Resample::bicubic ? 2.0 : 1.0;
    double (*filter)(double) = resample == Resample::bicubic ? bicubic : bilinear;
    const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
    const double filter_scale = std::max(scale, 1.0);
    const double support = support_1 * filter_scale;
    Weights w;
    w.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
    w.k.assign(static_cast<size_t>(out_size * w.ksize), 0);
    std::vector<double> row(static_cast<size_t>(w.ksize));
    for (int64_t i = 0; i < out_size; ++i) {
        const double center = (static_cast<double>(i) + 0.5) * scale;
        // C's (int) cast truncates toward zero, then the bounds clamp.
        const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
        const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in_size);
        const int64_t n = std::min(hi - lo, w.ksize);
        double total = 0.0;
        for (int64_t x = 0; x < n; ++x) {
            row[static_cast<size_t>(x)] = filter((static_cast<double>(x + lo) - center + 0.5) / filter_scale);
            total += row[static_cast<size_t>(x)];
        }
        for (int64_t x = 0; x < n; ++x) {
            const double v = total != 0.0 ? row[static_cast<size_t>(x)] / total : row[static_cast<size_t>(x)];
            const double fixed = v * static_cast<double>(1 << kPrecisionBits);
            w.k[static_cast<size_t>(i * w.ksize + x)] = static_cast<int32_t>(v < 0.0 ? fixed - 0.5 : fixed + 0.5);
        }
        w.first.push_back(lo);
        w.count.push_back(std::max<int64_t>(n, 0));
    }
    return w;
}

uint8_t clip8(int64_t sum) {
    return static_cast<uint8_t>(std::clamp<int64_t>(sum >> kPrecisionBits, 0, 255));
}

// Pillow's ImagingResampleHorizontal_8bpc over rows [row0, row0 + rows) of `in`.
RgbImage resample_rows(const RgbImage& in, int64_t row0, int64_t rows, int64_t out_width, const Weights& w) {
    RgbImage out{out_width, rows, std::vector<uint8_t>(static_cast<size_t>(out_width * rows * 3))};
    for (int64_t y = 0; y < rows; ++y) {
        const uint8_t* src = &in.pixels[static_cast<size_t>((row0 + y) * in.width * 3)];
        uint8_t* dst = &out.pixels[static_cast<size_t>(y * out_width * 3)];
        for (int64_t x = 0; x < out_width; ++x) {
            const int32_t* k = &w.k[static_cast<size_t>(x * w.ksize)];
            for (int64_t c = 0; c < 3; ++c) {
                int64_t sum = int64_t{1} << (kPrecisionBits - 1);
                for (int64_t i = 0; i < w.count[x]; ++i) sum += int64_t{src[(w.first[x] + i) * 3 + c]} * k[i];
                dst[x * 3 + c] = clip8(sum);
            }
        }
    }
    return out;
}

// Pillow's ImagingResampleVertical_8bpc; `shift` is subtracted from the weights' first rows
// (the rows the horizontal pass skipped).
RgbImage resample_columns(const RgbImage& in, int64_t out_height, const Weights& w, int64_t shift) {
    RgbImage out{in.width, out_height, std::vector<uint8_t>(static_cast<size_t>(in.width * out_height * 3))};
    const int64_t stride = in.width * 3;
    for (int64_t y = 0; y < out_height; ++y) {
        const int32_t* k = &w.k[static_cast<size_t>(y * w.ksize)];
        const int64_t first = w.first[y] - shift;
        uint8_t* dst = &out.pixels[static_cast<size_t>(y * stride)];
        for (int64_t x = 0; x < stride; ++x) {
            int64_t sum = int64_t{1} << (kPrecisionBits - 1);
            for (int64_t i = 0; i < w.count[y]; ++i) sum += int64_t{in.pixels[(first + i) * stride + x]} * k[i];
            dst[x] = clip8(sum);
        }
    }
    return out;
}

RgbImage nearest(const RgbImage& in, int64_t width, int64_t height) {
    RgbImage out{width, height, std::vector<uint8_t>(static_cast<size_t>(width * height * 3))};
    const double sx = static_cast<double>(in.width) / static_cast<double>(width);
    const double sy = static_cast<double>(in.height) / static_cast<double>(height);
    for (int64_t y = 0; y < height; ++y) {
        const auto iy = std::min(static_cast<int64_t>(std::floor((static_cast<double>(y) + 0.5) * sy)), in.height - 1);
        for (int64_t x = 0; x < width; ++x) {
            const auto ix =
                std::min(static_cast<int64_t>(std::floor((static_cast<double>(x) + 0.5) * sx)), in.width - 1);
            std::copy_n(&in.pixels[static_cast<size_t>((iy * in.width + ix) * 3)], 3,
                        &out.pixels[static_cast<size_t>((y * width + x) * 3)]);
        }
    }
    return out;
}

// transformers' center_crop: the middle crop_height x crop_width, zero-padded where the
// image is smaller.
RgbImage center_crop(const RgbImage& in, int64_t crop_height, int64_t crop_width) {
    auto floor_div2 = [](int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
    const int64_t new_height = std::max(crop_height, in.height), new_width = std::max(crop_width, in.width);
    const int64_t top_pad = (new_height - in.height + 1) / 2, left_pad = (new_width - in.width + 1) / 2;
    const int64_t top = floor_div2(in.height - crop_height) + top_pad;
    const int64_t left = floor_div2(in.width - crop_width) + left_pad;
    RgbImage out{crop_width, crop_height, std::vector<uint8_t>(static_cast<size_t>(crop_width * crop_height * 3), 0)};
    for (int64_t y = 0; y < crop_height; ++y) {
        const int64_t sy = top + y - top_pad;  // row in `in`
        if (sy < 0 || sy >= in.height) continue;
        for (int64_t x = 0; x < crop_width; ++x) {
            const int64_t sx = left + x - left_pad;
            if (sx < 0 || sx >= in.width) continue;
            std::copy_n(&in.pixels[static_cast<size_t>((sy * in.width + sx) * 3)], 3,
                        &out.pixels[static_cast<size_t>((y * crop_width + x) * 3)]);
        }
    }
    return out;
}

// {"height": h, "width": w}, {"shortest_edge": n} or a bare number, as transformers' get_size_dict reads them.
struct SizeSetting {
    bool shortest_edge = false;
    int64_t height = 0, width = 0;
};

SizeSetting size_of(const sdk::Config& c, const char* key, bool square_default, SizeSetting fallback) {
    if (!c.has(key)) return fallback;
    const nlohmann::json& v = c.json().at(key);
    SizeSetting s;
    auto positive = [&](const nlohmann::json& n) {
        if (!n.is_number_integer() || n.get<int64_t>() <= 0 || n.get<int64_t>() > 16384)
            c.fail(key, "expected positive pixel counts up to 16384, got " + v.dump());
        return n.get<int64_t>();
    };
    if (v.is_number()) {
        s.height = s.width = positive(v);
        s.shortest_edge = !square_default;
    } else if (v.is_object() && v.contains("height") && v.contains("width")) {
        s.height = positive(v.at("height"));
        s.width = positive(v.at("width"));
    } else if (v.is_object() && v.contains("shortest_edge") && !v.contains("longest_edge")) {
        s.height = s.width = positive(v.at("shortest_edge"));
        s.shortest_edge = true;
    } else {
        c.fail(key, "expected {\"height\", \"width\"}, {\"shortest_edge\"} or a number, got " + v.dump());
    }
    return s;
}

}  // namespace

RgbImage pil_resize(const RgbImage& image, int64_t width, int64_t height, Resample resample) {
    if (width <= 0 || height <= 0) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "resize: the size must be positive");
    if (width == image.width && height == image.height) return image;
    if (resample == Resample::nearest) return nearest(image, width, height);
    const Weights across = weights_for(image.width, width, resample);
    const Weights down = weights_for(image.height, height, resample);
    if (width == image.width) return resample_columns(image, height, down, 0);
    // Only the rows the vertical pass reads go through the horizontal one.
    const int64_t first_row = down.first.front(), end_row = down.first.back() + down.count.back();
    RgbImage wide = resample_rows(image, first_row, end_row - first_row, width, across);
    if (height == image.height) return wide;
    return resample_columns(wide, height, down, first_row);
}

ImageProcessor::ImageProcessor(const std::filesystem::path& model_dir) {
    const std::filesystem::path file = model_dir / "preprocessor_config.json";
    const sdk::Config c = load_json_file(file);
    type_ = c.get_or<std::string>("image_processor_type", c.get_or<std::string>("feature_extractor_type", ""));
    const bool vit = type_ == "ViTImageProcessor" || type_ == "ViTFeatureExtractor";
    const bool clip = type_ == "CLIPImageProcessor" || type_ == "CLIPFeatureExtractor";
    if (!vit && !clip) {
        c.fail("image_processor_type",
               "'" + type_ + "' is not supported (supported: ViTImageProcessor, CLIPImageProcessor)");
    }
    resize_ = c.get_or<bool>("do_resize", true);
    const SizeSetting size = size_of(c, "size", vit, vit ? SizeSetting{false, 224, 224} : SizeSetting{true, 224, 224});
    shortest_edge_ = size.shortest_edge;
    height_ = size.height;
    width_ = size.width;
    const auto resample = c.get_or<int64_t>("resample", vit ? 2 : 3);
    if (resample != 0 && resample != 2 && resample != 3) {
        c.fail("resample", "supported: 0 (nearest), 2 (bilinear), 3 (bicubic); got " + std::to_string(resample));
    }
    resample_ = static_cast<Resample>(resample);
    crop_ = clip && c.get_or<bool>("do_center_crop", true);
    const SizeSetting crop = size_of(c, "crop_size", true, SizeSetting{false, 224, 224});
    crop_height_ = crop.height;
    crop_width_ = crop.width;
    rescale_ = c.get_or<bool>("do_rescale", true);
    rescale_factor_ = c.get_or<double>("rescale_factor", 1.0 / 255.0);
    normalize_ = c.get_or<bool>("do_normalize", true);
    const std::array<float, 3> default_mean =
        vit ? std::array<float, 3>{0.5f, 0.5f, 0.5f} : std::array<float, 3>{0.48145466f, 0.4578275f, 0.40821073f};
    const std::array<float, 3> default_std =
        vit ? std::array<float, 3>{0.5f, 0.5f, 0.5f} : std::array<float, 3>{0.26862954f, 0.26130258f, 0.27577711f};
    auto triple = [&](const char* key, std::array<float, 3> fallback, bool positive) {
        if (!c.has(key)) return fallback;
        const nlohmann::json& v = c.json().at(key);
        std::array<float, 3> out{};
        if (v.is_number()) {
            out.fill(v.get<float>());
        } else if (v.is_array() && v.size() == 3 &&
                   std::all_of(v.begin(), v.end(), [](const auto& e) { return e.is_number(); })) {
            for (size_t i = 0; i < 3; ++i) out[i] = v[i].get<float>();
        } else {
            c.fail(key, "expected three numbers (one per RGB channel), got " + v.dump());
        }
        for (float f : out) {
            if (!std::isfinite(f) || (positive && f <= 0.0f))
                c.fail(key, "expected finite values" + std::string(positive ? " > 0" : "") + ", got " + v.dump());
        }
        return out;
    };
    mean_ = triple("image_mean", default_mean, false);
    std_ = triple("image_std", default_std, true);
}

PixelValues ImageProcessor::preprocess(const RgbImage& image) const {
    if (image.width <= 0 || image.height <= 0) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "the image has no pixels");
    RgbImage current = image;
    if (resize_) {
        int64_t height = height_, width = width_;
        if (shortest_edge_) {
            // get_resize_output_image_size(default_to_square=False): the short side to the
            // size, the long one scaled and truncated.
            const bool portrait = image.width <= image.height;
            const int64_t short_side = portrait ? image.width : image.height;
            const int64_t long_side = portrait ? image.height : image.width;
            const auto scaled = static_cast<int64_t>(static_cast<double>(height_) * static_cast<double>(long_side) /
                                                     static_cast<double>(short_side));
            height = portrait ? scaled : height_;
            width = portrait ? width_ : scaled;
        }
        current = pil_resize(current, width, height, resample_);
    }
    if (crop_) current = center_crop(current, crop_height_, crop_width_);
    // rescale (in f64, then f32) and normalize (in f32), channels first.
    const int64_t plane = current.width * current.height;
    PixelValues result{current.height, current.width, std::vector<float>(static_cast<size_t>(3 * plane))};
    std::vector<float>& out = result.values;
    for (int64_t i = 0; i < plane; ++i) {
        for (int64_t ch = 0; ch < 3; ++ch) {
            const uint8_t v = current.pixels[static_cast<size_t>(i * 3 + ch)];
            float x = rescale_ ? static_cast<float>(static_cast<double>(v) * rescale_factor_) : static_cast<float>(v);
            if (normalize_) x = (x - mean_[ch]) / std_[ch];
            out[static_cast<size_t>(ch * plane + i)] = x;
        }
    }
    return result;
}

}  // namespace tfx
