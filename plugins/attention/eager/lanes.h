// f32 vectors of N lanes (GCC vector extensions; 16 for AVX-512, 8 for AVX2, 4 for SSE),
// the cache's element types widened into them, and the lane-wise arithmetic both kernels use.
// Everything here is inlined into the kernels compiled for each instruction set.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <utility>

#include "tfx/sdk/half.hpp"

namespace tfx::eager_attention {

// Cache element types: widening on read, one element or N at a time, and narrowing on write
// (round to nearest even).

template <int N>
struct Lanes {
    typedef float F __attribute__((vector_size(N * sizeof(float))));
    typedef uint32_t U __attribute__((vector_size(N * sizeof(uint32_t))));
    typedef uint16_t H __attribute__((vector_size(N * sizeof(uint16_t))));
};

template <class Vector, class Elem>
[[gnu::always_inline]] inline Vector load(const Elem* p) {
    Vector v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

struct F32 {
    using Elem = float;
    [[gnu::always_inline]] static float widen(float x) { return x; }
    template <int N>
    [[gnu::always_inline]] static typename Lanes<N>::F widen_n(const float* p) {
        return load<typename Lanes<N>::F>(p);
    }
    static float narrow(float x) { return x; }
};

struct BF16 {
    using Elem = uint16_t;
    [[gnu::always_inline]] static float widen(uint16_t h) {
        return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
    }
    template <int N>
    [[gnu::always_inline]] static typename Lanes<N>::F widen_n(const uint16_t* p) {
        using L = Lanes<N>;
        return std::bit_cast<typename L::F>(__builtin_convertvector(load<typename L::H>(p), typename L::U) << 16);
    }
    static uint16_t narrow(float x) { return tfx::sdk::f32_to_bf16(x); }
};

struct F16 {
    using Elem = uint16_t;
    // Exact for every f16 value (normals, subnormals, zeros, infinities, NaNs), without branches:
    // U is uint32_t or Lanes<N>::U, and mask(condition) all ones where it holds.
    template <class U, class F, class Mask>
    [[gnu::always_inline]] static U widen_bits(U h, Mask mask) {
        const U bits = (h & 0x7fffu) << 13;  // exponent and mantissa
        const U exponent = bits & 0x0f800000u;
        const U special = mask(exponent == 0x0f800000u);                // infinity, NaN: exponent 255
        const U tiny = mask(exponent == 0u);                            // zero, subnormal: renormalised
        const U normal = bits + 0x38000000u + (special & 0x38000000u);  // rebias 15 -> 127
        const U subnormal = std::bit_cast<U>(std::bit_cast<F>(bits + 0x38800000u) - std::bit_cast<float>(0x38800000u));
        return ((tiny & subnormal) | (~tiny & normal)) | ((h & 0x8000u) << 16);
    }
    [[gnu::always_inline]] static float widen(uint16_t h) {
        return std::bit_cast<float>(
            widen_bits<uint32_t, float>(h, [](bool c) { return 0u - static_cast<uint32_t>(c); }));
    }
    template <int N>
    [[gnu::always_inline]] static typename Lanes<N>::F widen_n(const uint16_t* p) {
        using L = Lanes<N>;
        const typename L::U h = __builtin_convertvector(load<typename L::H>(p), typename L::U);
        return std::bit_cast<typename L::F>(
            widen_bits<typename L::U, typename L::F>(h, [](auto c) { return std::bit_cast<typename L::U>(c); }));
    }
    static uint16_t narrow(float x) { return tfx::sdk::f32_to_f16(x); }
};

// The sum of v's N lanes, halving the vector each step: log2(N) shuffles and adds in
// registers. (Storing the vector and adding its lanes back from memory stalls on store
// forwarding, and measured the largest cost of a decode step's attention.)
template <int N>
[[gnu::always_inline]] inline float sum_lanes(typename Lanes<N>::F v) {
    if constexpr (N == 1) {
        return v[0];
    } else {
        return [&]<int... I>(std::integer_sequence<int, I...>) {
            const typename Lanes<N / 2>::F low = __builtin_shufflevector(v, v, I...);
            const typename Lanes<N / 2>::F high = __builtin_shufflevector(v, v, (I + N / 2)...);
            return sum_lanes<N / 2>(low + high);
        }
        (std::make_integer_sequence<int, N / 2>{});
    }
}

// e^x in N lanes, within 2 ulp of std::exp for x <= 0 (softmax's range after subtracting
// the maximum): x = n ln2 + r with |r| <= ln2 / 2, e^r by a degree-6 minimax polynomial
// (Cephes' expf coefficients), 2^n put into the exponent bits. Below -87.3 the result is 0
// (exactly so for -inf), where std::exp would give a subnormal or 0.
template <int N>
[[gnu::always_inline]] inline typename Lanes<N>::F exp_lanes(typename Lanes<N>::F x) {
    using F = typename Lanes<N>::F;
    using U = typename Lanes<N>::U;
    const F shifter = F{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    const F t = x * 1.44269504f + shifter;
    const F n = t - shifter;
    const F r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // ln 2 in two parts, exact n * hi
    F p = F{} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const F er = p * r * r + r + 1.0f;
    const U scale = (std::bit_cast<U>(t) - std::bit_cast<uint32_t>(12582912.0f) + 127u) << 23;
    const U keep = std::bit_cast<U>(x >= -87.3f);
    return std::bit_cast<F>(std::bit_cast<U>(er * std::bit_cast<F>(scale)) & keep);
}

}  // namespace tfx::eager_attention
