// Image files as transformers' image processors receive them from PIL: decoded to 8-bit RGB,
// rows top to bottom, pixels interleaved (R, G, B). PNG through libpng, JPEG through
// libjpeg-turbo (the libraries PIL itself decodes with). Files are untrusted: a malformed one
// gives an error naming it, never a crash, and dimensions past kMaxImagePixels are refused
// before any pixel buffer is allocated.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace tfx {

struct RgbImage {
    int64_t width = 0, height = 0;
    std::vector<uint8_t> pixels;  // [height][width][3]
};

// The largest image decoded (PIL's default decompression-bomb limit is 89 million pixels).
constexpr int64_t kMaxImagePixels = int64_t{89478485};

// The file's image; its format is told by its first bytes, not its name.
RgbImage read_image(const std::filesystem::path& path);
// The same for bytes in memory; `name` is what errors call them.
RgbImage decode_image(std::span<const uint8_t> bytes, const std::string& name);

}  // namespace tfx
