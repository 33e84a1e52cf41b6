// libFuzzer target: the GGUF header parser (header, metadata, tensor table) on arbitrary bytes.
// The seed files under $TFX_TEST_DATA/quant/gguf make a good corpus start.
#include <cstddef>
#include <cstdint>
#include <exception>

#include "core/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        tfx::gguf::parse({data, size}, "fuzz.gguf");
    } catch (const std::exception&) {
    }
    return 0;
}
