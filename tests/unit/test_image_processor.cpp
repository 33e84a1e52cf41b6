// Images as transformers' processors see them: PNG and JPEG decoding (malformed files refused
// with the file's name), PIL's resampling on hand-computed cases, and ViTImageProcessor's and
// CLIPImageProcessor's pixel_values for the goldens' PNG, equal to transformers'.
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>

#include "../integration/golden_logits.h"
#include "error_of.h"
#include "registry/image_file.h"
#include "registry/image_processor.h"
#include "test_data.h"

namespace {

using tfx::test::error_of;

tfx::RgbImage gradient(int64_t width, int64_t height) {
    tfx::RgbImage image{width, height, std::vector<uint8_t>(static_cast<size_t>(width * height * 3))};
    for (int64_t y = 0; y < height; ++y) {
        for (int64_t x = 0; x < width; ++x) {
            uint8_t* p = &image.pixels[static_cast<size_t>((y * width + x) * 3)];
            p[0] = static_cast<uint8_t>(x * 255 / std::max<int64_t>(width - 1, 1));
            p[1] = static_cast<uint8_t>(y * 255 / std::max<int64_t>(height - 1, 1));
            p[2] = static_cast<uint8_t>((x + y) % 256);
        }
    }
    return image;
}

// A JPEG of `image` at quality 95, written by libjpeg itself.
std::vector<uint8_t> encode_jpeg(const tfx::RgbImage& image) {
    jpeg_compress_struct info{};
    jpeg_error_mgr error{};
    info.err = jpeg_std_error(&error);
    jpeg_create_compress(&info);
    unsigned char* buffer = nullptr;
    unsigned long size = 0;
    jpeg_mem_dest(&info, &buffer, &size);
    info.image_width = static_cast<JDIMENSION>(image.width);
    info.image_height = static_cast<JDIMENSION>(image.height);
    info.input_components = 3;
    info.in_color_space = JCS_RGB;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, 95, TRUE);
    jpeg_start_compress(&info, TRUE);
    while (info.next_scanline < info.image_height) {
        auto* row = const_cast<JSAMPROW>(&image.pixels[static_cast<size_t>(info.next_scanline * image.width * 3)]);
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    std::vector<uint8_t> out(buffer, buffer + size);
    std::free(buffer);
    return out;
}

// A PNG of `pixels` in libpng's simplified `format` (what each pixel holds), as libpng writes it.
std::vector<uint8_t> encode_png(const void* pixels, int64_t width, int64_t height, uint32_t format,
                                const void* colormap = nullptr, uint32_t colormap_entries = 0) {
    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    image.width = static_cast<png_uint_32>(width);
    image.height = static_cast<png_uint_32>(height);
    image.format = format;
    image.colormap_entries = colormap_entries;
    png_alloc_size_t size = 0;
    EXPECT_TRUE(png_image_write_to_memory(&image, nullptr, &size, 0, pixels, 0, colormap)) << image.message;
    std::vector<uint8_t> out(size);
    EXPECT_TRUE(png_image_write_to_memory(&image, out.data(), &size, 0, pixels, 0, colormap)) << image.message;
    out.resize(size);
    return out;
}

}  // namespace

// As PIL reads them: 16-bit samples cut to their high byte whatever the gamma chunk says (libpng
// tags linear 16-bit files gAMA 1.0), grey replicated, palettes expanded, alpha dropped.
TEST(ImageFile, PngsOfEveryLayoutDecodeAsPilReadsThem) {
    const std::vector<uint16_t> deep = {0x1234, 0xABCD, 0xFFFF, 0x0001, 0x8000, 0x7FFF};
    const tfx::RgbImage wide = tfx::decode_image(encode_png(deep.data(), 2, 1, PNG_FORMAT_LINEAR_RGB), "deep.png");
    EXPECT_EQ(wide.pixels, (std::vector<uint8_t>{0x12, 0xAB, 0xFF, 0x00, 0x80, 0x7F}));
    const std::vector<uint8_t> grey = {0, 77, 255};
    EXPECT_EQ(tfx::decode_image(encode_png(grey.data(), 3, 1, PNG_FORMAT_GRAY), "grey.png").pixels,
              (std::vector<uint8_t>{0, 0, 0, 77, 77, 77, 255, 255, 255}));
    const std::vector<uint8_t> rgba = {1, 2, 3, 0, 4, 5, 6, 128};
    EXPECT_EQ(tfx::decode_image(encode_png(rgba.data(), 2, 1, PNG_FORMAT_RGBA), "rgba.png").pixels,
              (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
    const std::vector<uint8_t> palette = {10, 20, 30, 40, 50, 60}, indices = {1, 0, 1};
    const tfx::RgbImage mapped =
        tfx::decode_image(encode_png(indices.data(), 3, 1, PNG_FORMAT_RGB_COLORMAP, palette.data(), 2), "map.png");
    EXPECT_EQ(mapped.pixels, (std::vector<uint8_t>{40, 50, 60, 10, 20, 30, 40, 50, 60}));
    std::vector<uint8_t> cut = encode_png(grey.data(), 3, 1, PNG_FORMAT_GRAY);
    cut.resize(cut.size() - 20);
    EXPECT_NE(error_of([&] { (void)tfx::decode_image(cut, "cut.png"); }).find("cut.png: not a readable image"),
              std::string::npos);
}

TEST(ImageFile, AJpegDecodesToItsPixelsAndBrokenFilesAreRefusedByName) {
    const tfx::RgbImage image = gradient(40, 24);
    const std::vector<uint8_t> jpeg = encode_jpeg(image);
    const tfx::RgbImage decoded = tfx::decode_image(jpeg, "gradient.jpg");
    ASSERT_EQ(decoded.width, 40);
    ASSERT_EQ(decoded.height, 24);
    int worst = 0;
    for (size_t i = 0; i < image.pixels.size(); ++i)
        worst = std::max(worst, std::abs(image.pixels[i] - decoded.pixels[i]));
    EXPECT_LE(worst, 24) << "quality 95 keeps a smooth gradient close";

    // A file cut short is refused, as PIL refuses it (libjpeg alone would pad it with grey).
    const std::vector<uint8_t> truncated(jpeg.begin(), jpeg.begin() + static_cast<std::ptrdiff_t>(jpeg.size() / 2));
    EXPECT_NE(error_of([&] { (void)tfx::decode_image(truncated, "cut.jpg"); }).find("cut.jpg: not a readable image"),
              std::string::npos);
    const std::vector<uint8_t> header_only(jpeg.begin(), jpeg.begin() + 20);
    EXPECT_NE(
        error_of([&] { (void)tfx::decode_image(header_only, "header.jpg"); }).find("header.jpg: not a readable image"),
        std::string::npos);
    const std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o'};
    EXPECT_NE(error_of([&] { (void)tfx::decode_image(text, "notes.txt"); }).find("only PNG and JPEG"),
              std::string::npos);
    const std::vector<uint8_t> png_magic = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
    EXPECT_NE(error_of([&] { (void)tfx::decode_image(png_magic, "bad.png"); }).find("bad.png: not a readable image"),
              std::string::npos);
}

TEST(PilResize, MatchesPillowsFixedPointConvolutionOnHandComputedCases) {
    // 2 x 1 -> 1 x 1, bilinear: the filter widened by the scale (2) gives both pixels weight
    // 1/2, and Pillow rounds half up: (10 + 21) / 2 = 15.5 -> 16.
    tfx::RgbImage two{2, 1, {10, 0, 255, 21, 1, 0}};
    const tfx::RgbImage one = tfx::pil_resize(two, 1, 1, tfx::Resample::bilinear);
    EXPECT_EQ(one.pixels, (std::vector<uint8_t>{16, 1, 128}));
    // 1 x 1 -> 3 x 1 upscales to the same value everywhere, whatever the filter.
    tfx::RgbImage dot{1, 1, {7, 8, 9}};
    EXPECT_EQ(tfx::pil_resize(dot, 3, 1, tfx::Resample::bicubic).pixels,
              (std::vector<uint8_t>{7, 8, 9, 7, 8, 9, 7, 8, 9}));
    // 4 -> 2 columns, nearest: the source pixel under each output pixel's centre (1 and 3).
    tfx::RgbImage four{4, 1, {0, 0, 0, 10, 10, 10, 20, 20, 20, 30, 30, 30}};
    EXPECT_EQ(tfx::pil_resize(four, 2, 1, tfx::Resample::nearest).pixels,
              (std::vector<uint8_t>{10, 10, 10, 30, 30, 30}));
}

// A family's processor on its golden's image: transformers' pixel_values [3, 224, 224].
void expect_golden_pixel_values(const std::string& family, const std::string& type) {
    TFX_TEST_DATA_OR_SKIP(model, "tiny/" + family);
    TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tiny/" + family + ".json");
    const nlohmann::json golden = tfx::test::read_json(golden_path);
    const tfx::ImageProcessor processor(model);
    EXPECT_EQ(processor.type(), type);
    for (const auto& prompt : golden.at("prompts")) {
        const tfx::RgbImage image = tfx::read_image(model / prompt.at("image").at("file").get<std::string>());
        EXPECT_EQ(image.width, prompt["image"]["width"].get<int64_t>());
        const tfx::PixelValues got = processor.preprocess(image);
        const std::vector<float> want = tfx::test::logits_of(prompt.at("pixel_values"));
        EXPECT_EQ(got.height, 224);
        EXPECT_EQ(got.width, 224);
        ASSERT_EQ(got.values.size(), want.size());
        EXPECT_LE(tfx::test::max_abs_diff(got.values, want), 1e-6f);
    }
}

// ViT's: bilinear to 224 x 224, mean and std 0.5.
TEST(ImageProcessor, ViTPixelValuesEqualTransformers) {
    expect_golden_pixel_values("vit", "ViTImageProcessor");
}

// CLIP's: the shortest edge to 224 with bicubic resampling (320 x 240 -> 298 x 224), the middle
// 224 x 224, OpenAI's mean and std.
TEST(ImageProcessor, ClipPixelValuesEqualTransformers) {
    expect_golden_pixel_values("clip", "CLIPImageProcessor");
}

TEST(ImageProcessor, UnsupportedSettingsAreNamed) {
    const auto dir = std::filesystem::temp_directory_path() / "tfx_image_processor_test";
    std::filesystem::create_directories(dir);
    auto write = [&](const char* json) { std::ofstream(dir / "preprocessor_config.json") << json; };
    write(R"({"image_processor_type": "SiglipImageProcessor"})");
    EXPECT_NE(error_of([&] { tfx::ImageProcessor p(dir); }).find("SiglipImageProcessor"), std::string::npos);
    write(R"({"image_processor_type": "ViTImageProcessor", "resample": 1})");
    EXPECT_NE(error_of([&] { tfx::ImageProcessor p(dir); }).find("resample"), std::string::npos);
    write(R"({"image_processor_type": "ViTImageProcessor", "image_std": [0.5, 0, 0.5]})");
    EXPECT_NE(error_of([&] { tfx::ImageProcessor p(dir); }).find("image_std"), std::string::npos);
    write(R"({"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 8}, "crop_size": 6})");
    const tfx::ImageProcessor clip(dir);
    const tfx::PixelValues p = clip.preprocess(gradient(20, 10));  // 16 x 8, then the middle 6 x 6
    EXPECT_EQ(p.width, 6);
    EXPECT_EQ(p.height, 6);
    std::filesystem::remove_all(dir);
}
