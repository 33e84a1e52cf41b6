// libFuzzer target: image files (PNG through libpng, JPEG through libjpeg-turbo) decoded for
// the image processors, and the decoded image resized as PIL resizes it.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>

#include "registry/image_file.h"
#include "registry/image_processor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const tfx::RgbImage image = tfx::decode_image(std::span(data, size), "fuzz");
        if (image.width * image.height <= 1 << 16) (void)tfx::pil_resize(image, 7, 5, tfx::Resample::bicubic);
    } catch (const std::exception&) {
    }
    return 0;
}
