// libFuzzer target: the GGUF header parser (header, metadata, tensor table) on arbitrary bytes,
// then the tokenizer built from a parsed header's metadata. The seed files under
// $TFX_TEST_DATA/quant/gguf make a good corpus start.
#include <cstddef>
#include <cstdint>
#include <exception>

#include "core/gguf.h"
#include "registry/gguf_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const tfx::gguf::Header header = tfx::gguf::parse({data, size}, "fuzz.gguf");
        tfx::tokenizer_of(header, "fuzz.gguf");
    } catch (const std::exception&) {
    }
    return 0;
}
