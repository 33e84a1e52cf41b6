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

void check_size(const std::string& name, int64_t width, int64_t height) {
    if (width <= 0 || height <= 0) bad_image(name, "it has no pixels");
    if (width > kMaxImagePixels / height) {
        bad_image(name, std::to_string(width) + " x " + std::to_string(height) + " pixels is past the limit of " +
                            std::to_string(kMaxImagePixels));
    }
}

// libpng's simplified API: any PNG (palette, grey, 16-bit, alpha, interlaced) to 8-bit RGB.
// Alpha is dropped as PIL's convert("RGB") drops it, not composited.
RgbImage decode_png(std::span<const uint8_t> bytes, const std::string& name) {
    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) bad_image(name, image.message);
    check_size(name, image.width, image.height);
    const bool alpha = (image.format & PNG_FORMAT_FLAG_ALPHA) != 0;
    image.format = alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
    const int channels = alpha ? 4 : 3;
    std::vector<uint8_t> decoded(static_cast<size_t>(image.width) * image.height * channels);
    if (!png_image_finish_read(&image, nullptr, decoded.data(), 0, nullptr)) {
        const std::string why = image.message;
        png_image_free(&image);
        bad_image(name, why);
    }
    RgbImage out{image.width, image.height, {}};
    if (!alpha) {
        out.pixels = std::move(decoded);
        return out;
    }
    out.pixels.resize(static_cast<size_t>(out.width * out.height * 3));
    for (size_t i = 0, n = static_cast<size_t>(out.width * out.height); i < n; ++i) {
        std::memcpy(&out.pixels[i * 3], &decoded[i * 4], 3);
    }
    return out;
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
    if (bytes.size() >= sizeof(kPng) && std::memcmp(bytes.data(), kPng, sizeof(kPng)) == 0)
        return decode_png(bytes, name);
    if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) {
        RgbImage out;
        std::string why;
        if (!decode_jpeg_into(bytes, out, why)) bad_image(name, why);
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
