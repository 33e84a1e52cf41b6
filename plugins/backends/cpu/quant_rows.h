// Rows of x quantized for the block-quantized matmuls (quant_matvec.h): int8 values per block
// of 32 in the weights' pair order, and per block its scale and sums. Shared by the row
// kernels (quant_matvec.cpp) and the lanes kernel (quant_gemm.cpp).
#pragma once

#include <cstdint>
#include <vector>

namespace tfx::cpu {

// q4_0 stores q + 8 and q8_0 stores q + 128, so their sums take 8 or 128 x (x's block sum) back.
struct QuantizedRows {
    std::vector<int8_t> q;          // [m][pairs * 64]
    std::vector<float> scale;       // [m][pairs * 2]
    std::vector<int32_t> neg_sum;   // [m][pairs * 2]: minus the block's sum
    std::vector<float> scaled_sum;  // [m][pairs * 2]: scale x sum, the block's sum of x as quantized
    int64_t pairs = 0;
};

}  // namespace tfx::cpu
