// libFuzzer target: encode arbitrary bytes with real tokenizers. The first input byte picks
// the tokenizer; invalid UTF-8 must raise tfx::tok::Error. Valid input must give offsets
// inside the text, a decode that does not crash, and a streaming decode that equals it.
// Tokenizers come from $TFX_TEST_DATA/tokenizers; without it a small embedded one is used.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer.h"

namespace {

constexpr const char* kEmbedded = R"({
  "version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [{"id": 5, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false,
                    "normalized": false, "special": true}],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true},
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "\u0120": 2, "\u0120a": 3, "ab": 4}, "merges": ["\u0120 a", "a b"]}
})";

std::vector<std::unique_ptr<tfx::tok::Tokenizer>> load_all() {
    std::vector<std::unique_ptr<tfx::tok::Tokenizer>> out;
    if (const char* root = std::getenv("TFX_TEST_DATA")) {
        const auto dir = std::filesystem::path(root) / "tokenizers";
        for (const char* name :
             {"llama3", "llama2", "bert-base-uncased", "t5-style-unigram", "qwen3", "gpt4o", "deepseek_v3", "claude"}) {
            const auto path = dir / name / "tokenizer.json";
            if (std::filesystem::exists(path))
                out.push_back(std::make_unique<tfx::tok::Tokenizer>(tfx::tok::Tokenizer::from_file(path)));
        }
    }
    if (out.empty())
        out.push_back(std::make_unique<tfx::tok::Tokenizer>(tfx::tok::Tokenizer::from_json_text(kEmbedded)));
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const auto tokenizers = load_all();
    if (size == 0) return 0;
    const auto& tok = *tokenizers[data[0] % tokenizers.size()];
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    tfx::tok::Encoding e;
    try {
        e = tok.encode(text, (data[0] & 0x80) != 0);
    } catch (const tfx::tok::Error&) {
        return 0;  // invalid UTF-8
    }
    for (const auto& o : e.offsets)
        if (o.begin > o.end || o.end > text.size()) __builtin_trap();
    const std::string decoded = tok.decode(e.ids, false);
    auto stream = tok.decode_stream(false);
    std::string streamed;
    try {
        for (const int32_t id : e.ids) streamed += stream.step(id);
        streamed += stream.flush();
        if (streamed != decoded) __builtin_trap();
    } catch (const tfx::tok::Error&) {
        // The decoder made an earlier piece change retroactively (as the Rust DecodeStream reports).
    }
    return 0;
}
