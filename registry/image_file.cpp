#include "registry/image_file.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include <jpeglib.h>
#include <png.h>

// After jpeglib.h, which it needs: the codes of libjpeg's messages.
#include <jerror.h>

#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

[[noreturn]] void bad_image(const std::string& name, const std::string& why) {
    throw sdk::Error(TFX_ERR_FORMAT, name + ": not a readable image: " + why);
}

// libpng reports errors through a callback that must not return: it jumps back here.
struct PngReader {
    std::span<const uint8_t> bytes;
    size_t at = 0;
    char message[200] = {};
};

void png_fail(png_structp png, png_const_charp message) {
    auto* reader = static_cast<PngReader*>(png_get_error_ptr(png));
    std::snprintf(reader->message, sizeof(reader->message), "%s", message);
    png_longjmp(png, 1);
}

void png_quiet(png_structp, png_const_charp) {}

void png_read_bytes(png_structp png, png_bytep out, size_t count) {
    auto* reader = static_cast<PngReader*>(png_get_io_ptr(png));
    if (count > reader->bytes.size() - reader->at) png_error(png, "the file ends early");
    std::memcpy(out, reader->bytes.data() + reader->at, count);
    reader->at += count;
}

// Any PNG to 8-bit RGB as PIL's decoder and convert("RGB") give it: palettes expanded, grey
// replicated, 16-bit samples cut to their high byte, alpha dropped, gamma chunks ignored (the
// low-level API, since libpng's simplified one converts 16-bit and gamma-tagged files through
// linear light). No C++ object with a destructor lives between setjmp and a longjmp to it.
bool decode_png_into(std::span<const uint8_t> bytes, RgbImage& out, std::string& why) {
    PngReader reader{bytes};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, png_fail, png_quiet);
    if (png == nullptr) {
        why = "libpng could not start";
        return false;
    }
    png_infop info = png_create_info_struct(png);
    if (info == nullptr || setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, nullptr);
        why = reader.message[0] != '\0' ? reader.message : "libpng could not start";
        return false;
    }
    png_set_read_fn(png, &reader, png_read_bytes);
    png_set_user_limits(png, 1u << 20, 1u << 20);
    png_read_info(png, info);
    const int64_t width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    if (width <= 0 || height <= 0 || width > kMaxImagePixels / std::max<int64_t>(height, 1)) {
        png_destroy_read_struct(&png, &info, nullptr);
        why = "its size (" + std::to_string(width) + " x " + std::to_string(height) + ") is outside the limit";
        return false;
    }
    const int color = png_get_color_type(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    const int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != static_cast<size_t>(width) * 3) {
        png_destroy_read_struct(&png, &info, nullptr);
        why = "unexpected sample layout";
        return false;
    }
    try {
        out.pixels.resize(static_cast<size_t>(width * height * 3));
    } catch (...) {
        png_destroy_read_struct(&png, &info, nullptr);
        throw;
    }
    for (int pass = 0; pass < passes; ++pass) {  // an interlaced image is read once per pass
        for (int64_t y = 0; y < height; ++y)
            png_read_row(png, &out.pixels[static_cast<size_t>(y * width * 3)], nullptr);
    }
    png_read_end(png, nullptr);
    png_destroy_read_struct(&png, &info, nullptr);
    out.width = width;
    out.height = height;
    return true;
}

// libjpeg reports errors through a callback that must not return: it jumps back here.
struct JpegError {
    jpeg_error_mgr manager;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr info) {
    auto* error = reinterpret_cast<JpegError*>(info->err);
    (*info->err->format_message)(info, error->message);
    std::longjmp(error->jump, 1);
}

// Warnings (recoverable corruption) are not printed; data that ends early is an error, as PIL
// makes it one (libjpeg would fill the rest with grey).
void jpeg_warning(j_common_ptr info, int level) {
    if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) jpeg_fail(info);
}

// Decodes with libjpeg's defaults (islow DCT, fancy upsampling), as PIL does. No C++ object
// with a destructor lives between setjmp and a longjmp to it.
bool decode_jpeg_into(std::span<const uint8_t> bytes, RgbImage& out, std::string& why) {
    jpeg_decompress_struct info{};
    JpegError error{};
    info.err = jpeg_std_error(&error.manager);
    error.manager.error_exit = jpeg_fail;
    error.manager.emit_message = jpeg_warning;
    if (setjmp(error.jump)) {
        jpeg_destroy_decompress(&info);
        why = error.message;
        return false;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, bytes.data(), static_cast<unsigned long>(bytes.size()));
    jpeg_read_header(&info, TRUE);
    info.out_color_space = JCS_RGB;  // grey and YCbCr alike; CMYK is refused below
    if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&info);
        why = "CMYK JPEG files are not supported";
        return false;
    }
    const int64_t width = info.image_width, height = info.image_height;
    if (width <= 0 || height <= 0 || width > kMaxImagePixels / std::max<int64_t>(height, 1)) {
        jpeg_destroy_decompress(&info);
        why = "its size (" + std::to_string(width) + " x " + std::to_string(height) + ") is outside the limit";
        return false;
    }
    try {
        out.pixels.resize(static_cast<size_t>(width * height * 3));
    } catch (...) {
        jpeg_destroy_decompress(&info);
        throw;
    }
    jpeg_start_decompress(&info);
    if (info.output_components != 3) {
        jpeg_destroy_decompress(&info);
        why = "unexpected colour components";
        return false;
    }
    out.width = width;
    out.height = height;
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = &out.pixels[static_cast<size_t>(info.output_scanline) * static_cast<size_t>(width) * 3];
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    jpeg_destroy_decompress(&info);
    return true;
}

}  // namespace

RgbImage decode_image(std::span<const uint8_t> bytes, const std::string& name) {
    static constexpr uint8_t kPng[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const bool png = bytes.size() >= sizeof(kPng) && std::memcmp(bytes.data(), kPng, sizeof(kPng)) == 0;
    const bool jpeg = bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
    if (png || jpeg) {
        RgbImage out;
        std::string why;
        if (!(png ? decode_png_into(bytes, out, why) : decode_jpeg_into(bytes, out, why))) bad_image(name, why);
        return out;
    }
    bad_image(name, "only PNG and JPEG files are supported");
}

RgbImage read_image(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw sdk::Error(TFX_ERR_NOT_FOUND, path.string() + ": cannot open");
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return decode_image(bytes, path.string());
}

}  // namespace tfx
