// GPT-2's reversible byte <-> printable-char map used by the ByteLevel components.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "normalized_string.h"

namespace tfx::tok::byte_level {

struct Table {
    std::array<char32_t, 256> byte_to_char;
    std::array<std::string, 256> byte_to_utf8;  // byte_to_char, UTF-8 encoded
};

const Table& table();

// Inverse map: the byte a mapped char stands for.
std::optional<uint8_t> char_to_byte(char32_t c);

// Replaces every byte of `s` by its mapped char; each new char keeps the alignment of the
// original char the byte belonged to.
void map_bytes(NormalizedString& s);

}  // namespace tfx::tok::byte_level
