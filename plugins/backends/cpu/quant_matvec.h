// Matmuls on block-quantized weights (q8_0, q4_0, q4_1: 32 values, an f16 scale and for q4_1 an
// f16 minimum a block) that never widen a weight to float: each row of x is quantized to int8
// per block of 32, and the kernels sum integer products (vpdpbusd on AVX-512 VNNI, vpmaddubsw +
// vpmaddwd on AVX2 and AVX-512 without it), scaled once per block. From 16 rows of x on AVX-512
// VNNI, quant_gemm.h's kernel (x rows along the lanes) runs instead.
//
// The backend's layout differs from the ggml bytes the quantizer hands to pack_weight: a row is
// stored as pairs of blocks (k padded to a multiple of 64; padding blocks have scale 0), whose
// 64 values are permuted so that in every 32-bit lane of the integer sums all four products
// belong to one block and the two blocks alternate lane by lane, so a row's two scales of a
// pair, repeated, are its per-lane scale vector. Rows of x
// are quantized into the same permutation, so the dot products are unchanged. q8_0 values are
// stored plus 128 as unsigned bytes (vpdpbusd's unsigned operand; the sums take 128 x the
// block's sum of x back).
//
// Rows go in groups of four (the kernels' rows computed together), interleaved pair by pair:
// a group's quants are pair 0 of its four rows, then pair 1 of them, ..., and so are its
// scales, so a kernel reads one sequential stream of each. Streamed as four separate rows,
// the weights came in at 0.65x the rate (q8_0 on Zen 5).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tfx::cpu {

enum class QuantFormat { q8_0, q4_0, q4_1 };

// The kernel variants, slowest first; each runs where the CPU has its instructions.
enum class QuantKernel { portable, avx2, avx512, avx512_vnni };

constexpr int64_t kQuantBlock = 32;
constexpr int64_t kQuantPair = 2 * kQuantBlock;
constexpr int64_t kQuantRowGroup = 4;

// Pairs of blocks a row of k values takes (k rounded up to a multiple of 64).
inline int64_t quant_pairs(int64_t k) {
    return (k + kQuantPair - 1) / kQuantPair;
}
// Bytes of packed quants a pair takes in the format (the scales are stored apart).
inline int64_t quant_pair_bytes(QuantFormat format) {
    return format == QuantFormat::q8_0 ? kQuantPair : kQuantPair / 2;  // q4_0, q4_1: two values a byte
}
// Rows packed for n rows: whole groups (padding rows are zero and never written out).
inline int64_t quant_padded_rows(int64_t n) {
    return (n + kQuantRowGroup - 1) / kQuantRowGroup * kQuantRowGroup;
}
// Bytes of packed quants, and f16 scales (and q4_1 minimums) in all, for n rows of k values.
inline int64_t quant_packed_bytes(QuantFormat format, int64_t n, int64_t k) {
    return quant_padded_rows(n) * quant_pairs(k) * quant_pair_bytes(format);
}
inline int64_t quant_scale_count(int64_t n, int64_t k) {
    return quant_padded_rows(n) * quant_pairs(k) * 2;
}
// Bytes a row of k values takes in ggml's encoding (f16 scale + quants a block); 0 when k is
// not a multiple of 32.
int64_t ggml_row_bytes(QuantFormat format, int64_t k);

// Repacks `rows` rows of ggml-encoded blocks (k values a row) into the backend's layout: quants
// [groups][pairs][4 rows][pair_bytes], f16 scales [groups][pairs][4 rows][2] and, for q4_1, f16
// minimums as the scales (`mins`, else unused); sizes from quant_packed_bytes / quant_scale_count.
void repack_ggml_rows(QuantFormat format, const uint8_t* src, int64_t rows, int64_t k, uint8_t* quants,
                      uint16_t* scales, uint16_t* mins = nullptr);

struct QuantizedWeight {
    QuantFormat format;
    const uint8_t* quants;
    const uint16_t* scales;
    int64_t n, k;                    // [n, k] as a float weight would be
    const uint16_t* mins = nullptr;  // q4_1
};

// Row `row` of w as f32 (k values): its blocks dequantized, the values linear computes with.
void dequantize_packed_row(const QuantizedWeight& w, int64_t row, float* out);

// y[m, n] = x[m, k] · wᵀ (+ bias[n]) with each row of x quantized to int8 per block of 32
// (scale = the block's largest magnitude / 127). Rows of w split across the threads.
void quant_matmul(const float* x, const QuantizedWeight& w, const float* bias, float* y, int64_t m);
// quant_matmul for up to kQuantMatmulMany weights of one x (q, k and v; gate and up), every
// ws[i].k the same: x quantized once, and one parallel region over all their rows.
constexpr int kQuantMatmulMany = 8;
void quant_matmul_many(const float* x, const QuantizedWeight* ws, const float* const* biases, float* const* ys,
                       int count, int64_t m);
// The same on one kernel variant and one thread, for the tests.
void quant_matmul_with(QuantKernel kernel, const float* x, const QuantizedWeight& w, const float* bias, float* y,
                       int64_t m);

// The variants this CPU runs, slowest first, and the one quant_matmul uses (the best the CPU
// runs within the dispatch cap of TFX_CPU_ISA / use_isa).
std::vector<QuantKernel> quant_kernels();
QuantKernel quant_kernel_in_use();
std::string quant_kernel_name(QuantKernel kernel);

}  // namespace tfx::cpu
