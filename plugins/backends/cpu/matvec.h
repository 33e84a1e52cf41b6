// Matmuls for a few rows of activations (decode, small batches): memory-bound, so they stream
// each weight once, in its stored format (f32, or bf16/f16 kept half-size and widened in
// registers), split across threads by output rows. One Highway source compiled for every x86
// target (AVX-512, AVX2+FMA+F16C, SSE4, SSSE3, portable), the best the CPU supports chosen at
// run time; TFX_CPU_ISA caps it (avx512, avx2, sse4, ssse3, portable).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tfx::cpu {

enum class WeightFormat { f32, bf16, f16 };

// y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]). The sum is f32 in the target's order: the
// result equals an f32 matmul on upcast weights to rounding.
void matvec(const float* x, const void* w, WeightFormat format, const float* bias, float* y, int64_t m, int64_t n,
            int64_t k);

// matvec for several weights of one x (q, k and v; gate and up), in one split across the
// threads over all their rows.
struct MatvecWeight {
    const void* w;
    WeightFormat format;
    const float* bias;
    float* y;   // [m, n]
    int64_t n;  // rows of w
};
void matvec_many(const float* x, const MatvecWeight* ws, int count, int64_t m, int64_t k);

// dst[i] = f32(src[i]) for bf16 or f16 values (embedding rows).
void widen(const uint16_t* src, WeightFormat format, float* dst, int64_t n);

// The dispatch targets compiled in that this CPU runs, best first ("AVX3", "AVX2", ...), and
// the one in use.
std::vector<std::string> isa_targets();
std::string isa_in_use();
// Settles the dispatch target (TFX_CPU_ISA's cap) once, before any thread reads Highway's
// dispatch tables (a first dispatch would otherwise initialize them from several threads at
// once). Every Highway kernel calls it first.
void settle_isa_dispatch();
// Runs the kernels on `target` (one of isa_targets()) from now on, as TFX_CPU_ISA does at
// load; "" restores the best. Throws std::invalid_argument for a target this CPU cannot run.
void use_isa(const std::string& target);

}  // namespace tfx::cpu
