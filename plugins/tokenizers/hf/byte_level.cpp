#include "byte_level.h"

namespace tfx::tok::byte_level {
namespace {

Table build_table() {
    Table t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        t.byte_to_char[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
        utf8::append(t.byte_to_utf8[static_cast<size_t>(b)], t.byte_to_char[static_cast<size_t>(b)]);
    }
    return t;
}

}  // namespace

const Table& table() {
    static const Table t = build_table();
    return t;
}

std::optional<uint8_t> char_to_byte(char32_t c) {
    if (c < 256) {
        const bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
        if (printable) return static_cast<uint8_t>(c);
        return std::nullopt;
    }
    if (c >= 256 + 68) return std::nullopt;  // 68 bytes are remapped to U+0100..U+0143
    static const auto inverse = [] {
        std::array<uint8_t, 68> inv{};
        const auto& t = table();
        for (int b = 0; b < 256; ++b)
            if (t.byte_to_char[static_cast<size_t>(b)] >= 256)
                inv[t.byte_to_char[static_cast<size_t>(b)] - 256] = static_cast<uint8_t>(b);
        return inv;
    }();
    return inverse[c - 256];
}

void map_bytes(NormalizedString& s) {
    const auto& t = table();
    const std::string& in = s.get();
    const auto& align = s.alignments();
    std::string out;
    out.reserve(in.size() * 2);
    std::vector<Span> spans;
    spans.reserve(in.size() * 2);
    size_t i = 0;
    while (i < in.size()) {
        const size_t len = utf8::seq_len(static_cast<unsigned char>(in[i]));
        for (size_t k = 0; k < len && i + k < in.size(); ++k) {
            // First byte replaces the char (its alignment); the others are insertions that
            // share the alignment of the char's last byte.
            const Span a = k == 0 ? align[i] : align[i + len - 1];
            const std::string& mapped = t.byte_to_utf8[static_cast<unsigned char>(in[i + k])];
            out += mapped;
            spans.insert(spans.end(), mapped.size(), a);
        }
        i += len;
    }
    s.assign(std::move(out), std::move(spans));
}

}  // namespace tfx::tok::byte_level
