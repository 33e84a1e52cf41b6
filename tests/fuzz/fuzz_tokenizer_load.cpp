// libFuzzer target: load tokenizer.json from arbitrary bytes. Malformed input must end in
// tfx::tok::Error, never a crash, a leak or another exception. Loaded tokenizers are
// exercised with a short encode/decode round trip.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view json(reinterpret_cast<const char*>(data), size);
    try {
        auto tok = tfx::tok::Tokenizer::from_json_text(json);
        tok.set_padding(std::nullopt);  // a fuzzed fixed length could ask for any amount of memory
        for (const std::string_view text : {"Hello world! caf\xC3\xA9 \xF0\x9F\x8D\x95 12345", "", "  a\tb\nc  "}) {
            const auto e = tok.encode(text, true);
            for (const auto& o : e.offsets)
                if (o.begin > o.end || o.end > text.size()) __builtin_trap();
            (void)tok.decode(e.ids, false);
            auto stream = tok.decode_stream(true);
            for (const int32_t id : e.ids) (void)stream.step(id);
        }
    } catch (const tfx::tok::Error&) {
    }
    return 0;
}
