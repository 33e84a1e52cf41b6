// GGUF's Q4_K rewritten as ggml q4_1 blocks, which the q4_1 kernels run without widening.
//
// A Q4_K super-block holds 256 values: an f16 scale d and minimum dmin, then 8 sub-blocks of 32
// values, each with a 6-bit scale sc and minimum mn and 4-bit quants q, value = d·sc·q − dmin·mn.
// That is a q4_1 block per sub-block (value = scale·q + min): the quants stay exact, and the
// block's scale d·sc and minimum −dmin·mn round to f16 (a relative 2^-11, beside the 4-bit
// step's 1/15 of the block's range).
#pragma once

#include <cstdint>

namespace tfx::cpu {

constexpr int64_t kQ4KValues = 256;  // values a super-block holds
constexpr int64_t kQ4KBytes = 144;   // bytes it takes: d, dmin, scales[12], qs[128]

// `rows` rows of k values (k a multiple of 256) stored as Q4_K at `src`, written to `dst` as
// ggml q4_1 rows (20 bytes per 32 values).
void q4_k_rows_as_q4_1(const uint8_t* src, int64_t rows, int64_t k, uint8_t* dst);

}  // namespace tfx::cpu
