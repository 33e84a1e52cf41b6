// Element-wise activations (and the gated MLP's act(gate) * up) with Highway's vector exp and
// tanh: the scalar loop called libm's expf once a value and took ~9% of a SmolLM-135M q4_0
// prefill (Zen 5). GELU with erf has no vector erf in Highway 1.0 and stays scalar.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "activation.cpp"
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
// Per-target like this file, so after highway.h.
// clang-format off
#include <hwy/contrib/math/math-inl.h>
// clang-format on

#include <cmath>
#include <cstdint>

#include "tfx/backend.h"

#ifndef TFX_CPU_ACTIVATION_SCALAR
#define TFX_CPU_ACTIVATION_SCALAR
namespace tfx::cpu {
// The reference definitions (transformers' ACT2FN), also the tails past whole vectors.
inline float activate_scalar(int32_t act, float v) {
    switch (act) {
        case TFX_ACT_SILU:
            return v / (1.0f + std::exp(-v));
        case TFX_ACT_GELU:
            return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
        case TFX_ACT_GELU_TANH: {
            const float inner = 0.7978845608028654f * (v + 0.044715f * v * v * v);
            return 0.5f * v * (1.0f + std::tanh(inner));
        }
        case TFX_ACT_RELU:
            return v > 0.0f ? v : 0.0f;
        case TFX_ACT_TANH:
            return std::tanh(v);
        default:
            return v;
    }
}
// y[i] = act(x[i]) * (up ? up[i] : 1) for i in [begin, end), one value at a time.
inline void activate_range_scalar(int32_t act, const float* x, const float* up, float* y, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y[i] = activate_scalar(act, x[i]) * (up != nullptr ? up[i] : 1.0f);
}
}  // namespace tfx::cpu
#endif

HWY_BEFORE_NAMESPACE();
namespace tfx::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// act(v) a vector at a time. exp's argument is capped at 88 (its valid range ends at 104):
// below v = -88 SiLU is v / (1 + e^88), a value under 1e-36, where the reference's is as small.
template <int32_t Act, class D, class V>
V Activate(D d, V v) {
    if constexpr (Act == TFX_ACT_SILU) {
        const V e = hn::Exp(d, hn::Min(hn::Neg(v), hn::Set(d, 88.0f)));
        return hn::Div(v, hn::Add(hn::Set(d, 1.0f), e));
    } else if constexpr (Act == TFX_ACT_GELU_TANH) {
        const V cube = hn::Mul(hn::Mul(v, v), v);
        const V inner = hn::Mul(hn::Set(d, 0.7978845608028654f), hn::MulAdd(hn::Set(d, 0.044715f), cube, v));
        return hn::Mul(hn::Mul(hn::Set(d, 0.5f), v), hn::Add(hn::Set(d, 1.0f), hn::Tanh(d, inner)));
    } else if constexpr (Act == TFX_ACT_RELU) {
        return hn::Max(v, hn::Zero(d));
    } else {
        static_assert(Act == TFX_ACT_TANH);
        return hn::Tanh(d, v);
    }
}

// y[i] = act(x[i]) * (up ? up[i] : 1) for i in [begin, end).
template <int32_t Act>
void ActivateRangeOf(const float* x, const float* up, float* y, int64_t begin, int64_t end) {
    const hn::ScalableTag<float> d;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    int64_t i = begin;
    for (; i + lanes <= end; i += lanes) {
        auto v = Activate<Act>(d, hn::LoadU(d, x + i));
        if (up != nullptr) v = hn::Mul(v, hn::LoadU(d, up + i));
        hn::StoreU(v, d, y + i);
    }
    activate_range_scalar(Act, x, up, y, i, end);
}

// The same for any act: the scalar definition where act has no vector form here.
void ActivateRange(int32_t act, const float* x, const float* up, float* y, int64_t begin, int64_t end) {
    switch (act) {
        case TFX_ACT_SILU:
            return ActivateRangeOf<TFX_ACT_SILU>(x, up, y, begin, end);
        case TFX_ACT_GELU_TANH:
            return ActivateRangeOf<TFX_ACT_GELU_TANH>(x, up, y, begin, end);
        case TFX_ACT_RELU:
            return ActivateRangeOf<TFX_ACT_RELU>(x, up, y, begin, end);
        case TFX_ACT_TANH:
            return ActivateRangeOf<TFX_ACT_TANH>(x, up, y, begin, end);
        default:
            return activate_range_scalar(act, x, up, y, begin, end);
    }
}

}  // namespace tfx::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>

#include "kernels.h"
#include "matvec.h"
#include "parallel.h"

namespace tfx::cpu {
HWY_EXPORT(ActivateRange);

namespace {

// Values a thread takes at least: below this, one thread does it all.
constexpr int64_t kChunk = 4096;

void activate(int32_t act, const float* x, const float* up, float* y, int64_t n) {
    settle_isa_dispatch();
    const auto range = &HWY_DYNAMIC_DISPATCH(ActivateRange);
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    parallel_for(chunks, chunks > 1, [&](int64_t c) {
        const int64_t begin = c * kChunk;
        range(act, x, up, y, begin, std::min(n, begin + kChunk));
    });
}

}  // namespace

void activation(int32_t act, const float* x, float* y, int64_t n) {
    activate(act, x, nullptr, y, n);
}

void gated_activation(int32_t act, const float* gate, const float* up, float* y, int64_t n) {
    activate(act, gate, up, y, n);
}

}  // namespace tfx::cpu
#endif  // HWY_ONCE
