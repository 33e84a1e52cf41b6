#include "k_quants.h"

#include <cstring>

#include "tfx/sdk/half.hpp"

namespace blockwise {
namespace {

float f16_at(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return tfx::sdk::f16_to_f32(h);
}

// Scale and min of sub-block j (0..7) from the 12 packed bytes: sub-blocks 0-3 keep theirs in
// the low 6 bits of bytes j and j + 4; 4-7 split theirs between a nibble of byte j + 4 and the
// top 2 bits of bytes j - 4 (scale) and j (min).
void scale_min(int j, const uint8_t* q, uint8_t& scale, uint8_t& min) {
    if (j < 4) {
        scale = q[j] & 63;
        min = q[j + 4] & 63;
    } else {
        scale = static_cast<uint8_t>((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
        min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// q4_k and q5_k share the layout of scales; q5_k adds one high bit a value from qh.
void dequantize_k(const uint8_t* block, const uint8_t* qh, const uint8_t* qs, float* y) {
    const float d = f16_at(block), dmin = f16_at(block + 2);
    const uint8_t* scales = block + 4;
    for (int chunk = 0; chunk < 4; ++chunk) {  // 64 values: the low nibbles of 32 bytes, then the high
        uint8_t s0, m0, s1, m1;
        scale_min(2 * chunk, scales, s0, m0);
        scale_min(2 * chunk + 1, scales, s1, m1);
        const float d0 = d * s0, min0 = dmin * m0, d1 = d * s1, min1 = dmin * m1;
        for (int l = 0; l < 32; ++l) {
            int lo = qs[l] & 0x0F, hi = qs[l] >> 4;
            if (qh != nullptr) {
                lo += (qh[l] >> (2 * chunk)) & 1 ? 16 : 0;
                hi += (qh[l] >> (2 * chunk + 1)) & 1 ? 16 : 0;
            }
            y[l] = d0 * static_cast<float>(lo) - min0;
            y[l + 32] = d1 * static_cast<float>(hi) - min1;
        }
        qs += 32;
        y += 64;
    }
}

// The 6-bit scale k (0..15) of a q3_k block: its low nibble is the low (k < 8) or high nibble of
// byte k % 8, its top 2 bits are bits 2 (k / 4)..+1 of byte 8 + k % 4; stored with an offset of 32.
int q3_k_scale(const uint8_t* scales, int k) {
    const int low = k < 8 ? scales[k] & 0x0F : scales[k - 8] >> 4;
    const int high = (scales[8 + k % 4] >> (2 * (k / 4))) & 3;
    return (low | (high << 4)) - 32;
}

}  // namespace

void dequantize_q2_k(const uint8_t* block, float* y) {
    const uint8_t* scales = block;
    const uint8_t* qs = block + 16;
    const float d = f16_at(block + 80), dmin = f16_at(block + 82);
    for (int half = 0; half < 2; ++half) {
        for (int shift = 0; shift < 4; ++shift) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t scale_min = scales[8 * half + 2 * shift + l / 16];
                const int q = (qs[32 * half + l] >> (2 * shift)) & 3;
                y[128 * half + 32 * shift + l] = d * static_cast<float>(scale_min & 0x0F) * static_cast<float>(q) -
                                                 dmin * static_cast<float>(scale_min >> 4);
            }
        }
    }
}

void dequantize_q3_k(const uint8_t* block, float* y) {
    const uint8_t* hmask = block;
    const uint8_t* qs = block + 32;
    const uint8_t* scales = block + 96;
    const float d = f16_at(block + 108);
    for (int half = 0; half < 2; ++half) {
        for (int shift = 0; shift < 4; ++shift) {
            const int high_bit = 4 * half + shift;  // bit of hmask[l] that holds bit 2 of the value
            for (int l = 0; l < 32; ++l) {
                const int scale = q3_k_scale(scales, 8 * half + 2 * shift + l / 16);
                // The stored value is q + 4 when the high bit is set: values span -4..3.
                const int q = ((qs[32 * half + l] >> (2 * shift)) & 3) - (((hmask[l] >> high_bit) & 1) != 0 ? 0 : 4);
                y[128 * half + 32 * shift + l] = d * static_cast<float>(scale) * static_cast<float>(q);
            }
        }
    }
}

void dequantize_q4_k(const uint8_t* block, float* y) {
    dequantize_k(block, nullptr, block + 16, y);
}

void dequantize_q5_k(const uint8_t* block, float* y) {
    dequantize_k(block, block + 16, block + 48, y);
}

void dequantize_q6_k(const uint8_t* block, float* y) {
    const uint8_t* ql = block;
    const uint8_t* qh = block + 128;
    const auto* scales = reinterpret_cast<const int8_t*>(block + 192);
    const float d = f16_at(block + 208);
    for (int half = 0; half < 2; ++half) {  // 128 values each
        for (int l = 0; l < 32; ++l) {
            const int s = l / 16;
            const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * scales[s] * static_cast<float>(q1);
            y[l + 32] = d * scales[s + 2] * static_cast<float>(q2);
            y[l + 64] = d * scales[s + 4] * static_cast<float>(q3);
            y[l + 96] = d * scales[s + 6] * static_cast<float>(q4);
        }
        y += 128;
        ql += 64;
        qh += 32;
        scales += 8;
    }
}

}  // namespace blockwise
