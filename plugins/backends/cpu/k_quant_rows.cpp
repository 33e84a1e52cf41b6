#include "k_quant_rows.h"

#include <cstring>

#include "tfx/sdk/half.hpp"

namespace tfx::cpu {
namespace {

constexpr int64_t kQ41Bytes = 20;  // q4_1 block: f16 scale, f16 minimum, 16 bytes of quants

// Sub-block j's 6-bit scale and minimum, packed in the super-block's 12 scale bytes: the low
// four sub-blocks in the low 6 bits of bytes 0-3 (scales) and 4-7 (minimums), the high four in
// the nibbles of bytes 8-11 with their top 2 bits in the spare top bits of bytes 0-7.
void scale_and_min(const uint8_t* s, int j, int& scale, int& min) {
    if (j < 4) {
        scale = s[j] & 63;
        min = s[j + 4] & 63;
    } else {
        scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

void put_f16(uint8_t* dst, float value) {
    const uint16_t h = sdk::f32_to_f16(value);
    std::memcpy(dst, &h, 2);
}

}  // namespace

void q4_k_rows_as_q4_1(const uint8_t* src, int64_t rows, int64_t k, uint8_t* dst) {
    const int64_t super_blocks = rows * (k / kQ4KValues);
    for (int64_t b = 0; b < super_blocks; ++b) {
        const uint8_t* in = src + b * kQ4KBytes;
        uint8_t* out = dst + b * 8 * kQ41Bytes;
        uint16_t d_bits, dmin_bits;
        std::memcpy(&d_bits, in, 2);
        std::memcpy(&dmin_bits, in + 2, 2);
        const float d = sdk::f16_to_f32(d_bits), dmin = sdk::f16_to_f32(dmin_bits);
        const uint8_t* scales = in + 4;
        const uint8_t* qs = in + 16;
        for (int j = 0; j < 8; ++j) {
            int sc, mn;
            scale_and_min(scales, j, sc, mn);
            uint8_t* block = out + j * kQ41Bytes;
            put_f16(block, d * static_cast<float>(sc));
            put_f16(block + 2, -dmin * static_cast<float>(mn));
            // Chunk j/2 of 32 bytes: its low nibbles are sub-block j (even), its high ones j+1.
            const uint8_t* chunk = qs + (j / 2) * 32;
            const int shift = (j % 2) * 4;
            // q4_1 keeps values i and i+16 of a block in one byte (low, high nibble).
            for (int i = 0; i < 16; ++i) {
                const int lo = (chunk[i] >> shift) & 0x0F, hi = (chunk[i + 16] >> shift) & 0x0F;
                block[4 + i] = static_cast<uint8_t>(lo | (hi << 4));
            }
        }
    }
}

}  // namespace tfx::cpu
