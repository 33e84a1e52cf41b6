// ggml's K-quant super-blocks (256 values), decoded as ggml's reference dequantizers do; GGUF
// files mix them (Q4_K_M: q4_k with q6_k for some tensors). Decoding only: their encoders
// search scales per sub-block and are not written yet.
//   q4_k: f16 d, f16 dmin, scales[12] (eight 6-bit scales and mins), qs[128] (4-bit)
//   q5_k: f16 d, f16 dmin, scales[12], qh[32] (bit 4 of each value), qs[128]
//   q6_k: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d
//   q2_k: scales[16] (4-bit scale | 4-bit min << 4), qs[64] (2-bit), f16 d, f16 dmin
//   q3_k: hmask[32] (bit 2 of each value), qs[64] (low 2 bits), scales[12] (sixteen 6-bit
//         scales), f16 d
// q2_k and q3_k share the order of values: value 128h + 32s + l (half h, shift s, l < 32)
// holds bits 2s..2s+1 of qs[32h + l] and uses scale 8h + 2s + l / 16.
#pragma once

#include <cstdint>

namespace blockwise {

constexpr int64_t kSuperBlock = 256;
constexpr int64_t kQ2KBytes = 84, kQ3KBytes = 110, kQ4KBytes = 144, kQ5KBytes = 176, kQ6KBytes = 210;

void dequantize_q2_k(const uint8_t* block, float* y);
void dequantize_q3_k(const uint8_t* block, float* y);
void dequantize_q4_k(const uint8_t* block, float* y);
void dequantize_q5_k(const uint8_t* block, float* y);
void dequantize_q6_k(const uint8_t* block, float* y);

}  // namespace blockwise
