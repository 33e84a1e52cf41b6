// libFuzzer target: the safetensors header parser on arbitrary bytes (a whole "file").
#include <cstddef>
#include <cstdint>
#include <exception>

#include "core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        tfx::safetensors::parse_header({data, size}, "fuzz.safetensors");
    } catch (const std::exception&) {
    }
    return 0;
}
