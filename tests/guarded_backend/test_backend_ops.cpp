// The ABI 2.0 backend ops against direct reimplementations of their definitions, run on the cpu
// plugin (CpuBackend/...) and on the guarded one (Guarded/...), which must agree.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend_harness.h"
#include "tfx/sdk/half.hpp"

namespace tfx::test {
namespace {

class BackendOps : public ::testing::TestWithParam<std::string> {
  protected:
    Backend b{GetParam()};
    const tfx_backend_ops& ops = b.ops();
    void* self = b.self();
};

std::vector<float> ramp(int64_t n, float scale, float shift = 0.0f) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = std::sin(static_cast<float>(i) * 0.7f + shift) * scale;
    return v;
}

TEST_P(BackendOps, AllocUploadDownloadRoundTrip) {
    const std::vector<float> values = ramp(15, 3.0f);
    DeviceTensor x = b.upload(values, {3, 5});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(x.t.data) % 64, 0u);
    EXPECT_EQ(b.download(x), values);
    const std::vector<int32_t> ids = {7, -1, 1 << 30};
    DeviceTensor i = b.upload(ids, {3});
    EXPECT_EQ(b.download<int32_t>(i), ids);
    ops.release(self, nullptr);  // a no-op
    void* block = nullptr;
    run_op([&](tfx_error* e) { return ops.alloc(self, 0, &block, e); });
    EXPECT_NE(block, nullptr);
    ops.release(self, block);
}

TEST_P(BackendOps, MapHostGivesTheHostBytes) {
    const std::vector<float> values = ramp(12, 2.0f);
    void* mapped = nullptr;
    run_op([&](tfx_error* e) { return ops.map_host(self, values.data(), values.size() * 4, &mapped, e); });
    DeviceTensor view;
    view.shape = {12};
    view.t.data = mapped;
    view.t.dtype = kF32;
    view.t.ndim = 1;
    view.t.shape = view.shape.data();
    EXPECT_EQ(b.download(view), values);
    ops.release(self, mapped);
    EXPECT_EQ(values[3], ramp(12, 2.0f)[3]);  // the host's bytes survive release
}

// rope's definition: angle = f32(position) * inv_freq[i] in f32; cos and sin times the scaling;
// rotate_half pairing over the first 2*half dims of every head.
TEST_P(BackendOps, RopeMatchesItsFormulaBitForBit) {
    const int64_t tokens = 4, heads = 3, head_dim = 10, half = 4;  // dims 8 and 9 stay as they are
    const std::vector<int32_t> positions = {0, 5, 1234, 70000};
    std::vector<float> inv_freq(half);
    for (int64_t i = 0; i < half; ++i) {
        inv_freq[i] = 1.0f / std::pow(10000.0f, static_cast<float>(2 * i) / static_cast<float>(2 * half));
    }
    const float scaling = 1.25f;
    std::vector<float> x = ramp(tokens * heads * head_dim, 1.5f);
    std::vector<float> expected = x;
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t h = 0; h < heads; ++h) {
            float* v = expected.data() + (t * heads + h) * head_dim;
            for (int64_t i = 0; i < half; ++i) {
                const float angle = static_cast<float>(positions[t]) * inv_freq[i];
                const float c = std::cos(angle) * scaling, s = std::sin(angle) * scaling;
                const float a = v[i], bb = v[i + half];
                v[i] = a * c - bb * s;
                v[i + half] = bb * c + a * s;
            }
        }
    }
    DeviceTensor dx = b.upload(x, {tokens, heads, head_dim});
    DeviceTensor dp = b.upload(positions, {tokens});
    DeviceTensor df = b.upload(inv_freq, {half});
    run_op([&](tfx_error* e) { return ops.rope(self, dx, dp, df, scaling, e); });
    const std::vector<float> got = b.download(dx);
    ASSERT_EQ(got.size(), expected.size());
    EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * 4), 0);
    EXPECT_EQ(got[8], x[8]);
    EXPECT_EQ(got[9], x[9]);
}

// The same at a realistic size: head_dim 128, positions up to 2^17, llama-like frequencies.
TEST_P(BackendOps, RopeMatchesItsFormulaAtModelSizes) {
    const int64_t tokens = 37, heads = 5, head_dim = 128, half = 64;
    std::vector<int32_t> positions(tokens);
    for (int64_t t = 0; t < tokens; ++t) positions[t] = static_cast<int32_t>((t * 7919 * 13) % 131072);
    std::vector<float> inv_freq(half);
    for (int64_t i = 0; i < half; ++i) {
        inv_freq[i] = 1.0f / std::pow(500000.0f, static_cast<float>(2 * i) / static_cast<float>(head_dim)) / 8.0f;
    }
    for (const float scaling : {1.0f, 0.8f}) {
        std::vector<float> x = ramp(tokens * heads * head_dim, 2.0f, scaling);
        std::vector<float> expected = x;
        for (int64_t t = 0; t < tokens; ++t) {
            for (int64_t i = 0; i < half; ++i) {
                const float angle = static_cast<float>(positions[t]) * inv_freq[i];
                const float c = std::cos(angle) * scaling, s = std::sin(angle) * scaling;
                for (int64_t h = 0; h < heads; ++h) {
                    float* v = expected.data() + (t * heads + h) * head_dim;
                    const float a = v[i], bb = v[i + half];
                    v[i] = a * c - bb * s;
                    v[i + half] = bb * c + a * s;
                }
            }
        }
        DeviceTensor dx = b.upload(x, {tokens, heads, head_dim});
        DeviceTensor dp = b.upload(positions, {tokens});
        DeviceTensor df = b.upload(inv_freq, {half});
        run_op([&](tfx_error* e) { return ops.rope(self, dx, dp, df, scaling, e); });
        const std::vector<float> got = b.download(dx);
        EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * 4), 0) << "scaling " << scaling;
    }
}

TEST_P(BackendOps, RopeRejectsNegativePositionsAndMismatchedShapes) {
    DeviceTensor dx = b.upload(ramp(2 * 1 * 4, 1.0f), {2, 1, 4});
    DeviceTensor dp = b.upload(std::vector<int32_t>{3, -1}, {2});
    DeviceTensor df = b.upload(std::vector<float>{1.0f, 0.5f}, {2});
    Failure f = failure_of([&](tfx_error* e) { return ops.rope(self, dx, dp, df, 1.0f, e); });
    EXPECT_EQ(f.status, TFX_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(f.message, "rope: position -1 of token 1 is negative");
    DeviceTensor wide = b.upload(std::vector<float>{1.0f, 0.5f, 0.25f}, {3});  // 2 * 3 > head_dim 4
    DeviceTensor ok = b.upload(std::vector<int32_t>{3, 1}, {2});
    f = failure_of([&](tfx_error* e) { return ops.rope(self, dx, ok, wide, 1.0f, e); });
    EXPECT_EQ(f.status, TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(f.message.find("rope: positions [2] and inv_freq [3] do not fit input [2, 1, 4]"), std::string::npos)
        << f.message;
}

TEST_P(BackendOps, GatherRowsPicksRows) {
    const std::vector<float> x = ramp(4 * 3, 1.0f);
    DeviceTensor dx = b.upload(x, {4, 3});
    DeviceTensor rows = b.upload(std::vector<int32_t>{2, 0, 2, 3}, {4});
    DeviceTensor y = b.alloc(kF32, {4, 3});
    run_op([&](tfx_error* e) { return ops.gather_rows(self, dx, rows, y, e); });
    const std::vector<float> got = b.download(y);
    const int order[] = {2, 0, 2, 3};
    for (int r = 0; r < 4; ++r) {
        for (int d = 0; d < 3; ++d) EXPECT_EQ(got[r * 3 + d], x[order[r] * 3 + d]);
    }
    DeviceTensor bad = b.upload(std::vector<int32_t>{1, 4, 0, 0}, {4});
    Failure f = failure_of([&](tfx_error* e) { return ops.gather_rows(self, dx, bad, y, e); });
    EXPECT_EQ(f.status, TFX_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(f.message, "gather_rows: row 4 (entry 1) is outside x's 4 rows");
}

TEST_P(BackendOps, TopKOrdersTiesByIndexAndNormalizes) {
    const std::vector<float> probs = {0.1f, 0.3f, 0.3f, 0.2f, 0.1f,  // tie 1, 2
                                      0.2f, 0.2f, 0.2f, 0.2f, 0.2f,  // all equal
                                      0.0f, 0.1f, 0.0f, 0.6f, 0.3f};
    DeviceTensor x = b.upload(probs, {3, 5});
    DeviceTensor ids = b.alloc(kI32, {3, 3});
    DeviceTensor w = b.alloc(kF32, {3, 3});
    run_op([&](tfx_error* e) { return ops.top_k(self, x, 3, 0, ids, w, e); });
    EXPECT_EQ(b.download<int32_t>(ids), (std::vector<int32_t>{1, 2, 3, 0, 1, 2, 3, 4, 1}));
    EXPECT_EQ(b.download(w), (std::vector<float>{0.3f, 0.3f, 0.2f, 0.2f, 0.2f, 0.2f, 0.6f, 0.3f, 0.1f}));

    run_op([&](tfx_error* e) { return ops.top_k(self, x, 3, 1, ids, w, e); });
    EXPECT_EQ(b.download<int32_t>(ids), (std::vector<int32_t>{1, 2, 3, 0, 1, 2, 3, 4, 1}));
    const std::vector<float> got = b.download(w);
    const float sums[] = {0.3f + 0.3f + 0.2f, 0.2f + 0.2f + 0.2f, 0.6f + 0.3f + 0.1f};
    const float raw[] = {0.3f, 0.3f, 0.2f, 0.2f, 0.2f, 0.2f, 0.6f, 0.3f, 0.1f};
    for (int i = 0; i < 9; ++i) EXPECT_EQ(got[i], raw[i] / sums[i / 3]) << i;

    Failure f = failure_of([&](tfx_error* e) { return ops.top_k(self, x, 6, 0, ids, w, e); });
    EXPECT_EQ(f.status, TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(f.message.find("top_k: k = 6"), std::string::npos) << f.message;
}

// linear_experts groups rows by expert; each result must be the expert's linear of its row.
void expect_experts_match_linear(Backend& b, const char* format, int64_t n, int64_t k, bool shared,
                                 const std::vector<int32_t>& choice) {
    const tfx_backend_ops& ops = b.ops();
    const int64_t count = 4, in = 37, out = 19;  // odd sizes: masked tails in the kernels
    std::vector<tfx_weight*> experts;
    for (int64_t e = 0; e < count; ++e) {
        DeviceTensor w = b.upload(ramp(out * in, 0.2f, static_cast<float>(e)), {out, in});
        experts.push_back(b.pack(w, format));
    }
    const int64_t x_slots = shared ? 1 : k;
    const std::vector<float> xs = ramp(n * x_slots * in, 1.0f, 0.3f);
    DeviceTensor x = b.upload(xs, {n, x_slots, in});
    DeviceTensor ids = b.upload(choice, {n, k});
    DeviceTensor y = b.alloc(kF32, {n, k, out});
    run_op([&](tfx_error* e) {
        return ops.linear_experts(b.self(), x, experts.data(), static_cast<int32_t>(count), ids, y, e);
    });
    const std::vector<float> got = b.download(y);
    for (int64_t t = 0; t < n; ++t) {
        for (int64_t s = 0; s < k; ++s) {
            const int64_t row = shared ? t : t * k + s;
            DeviceTensor xr = b.upload(std::vector<float>(xs.begin() + row * in, xs.begin() + (row + 1) * in), {1, in});
            DeviceTensor yr = b.alloc(kF32, {1, out});
            run_op([&](tfx_error* e) { return ops.linear(b.self(), xr, experts[choice[t * k + s]], nullptr, yr, e); });
            const std::vector<float> ref = b.download(yr);
            for (int64_t o = 0; o < out; ++o) {
                EXPECT_NEAR(got[(t * k + s) * out + o], ref[o], 1e-5f * (1.0f + std::fabs(ref[o])))
                    << format << " token " << t << " slot " << s << " feature " << o;
            }
        }
    }
}

TEST_P(BackendOps, LinearExpertsMatchesPerRowLinear) {
    const std::vector<int32_t> choice = {2, 0, 0, 3, 2, 1, 0, 2, 3, 3};  // n 5, k 2; expert 1 once
    for (const char* format : {"f32", "bf16", "f16"}) {
        expect_experts_match_linear(b, format, 5, 2, false, choice);
        expect_experts_match_linear(b, format, 5, 2, true, choice);
    }
    // Many rows per expert: the blocked (prefill) matmul path.
    std::vector<int32_t> many(40);
    for (size_t i = 0; i < many.size(); ++i) many[i] = static_cast<int32_t>(i % 7 == 0 ? 3 : i % 2);
    for (const char* format : {"f32", "bf16"}) expect_experts_match_linear(b, format, 20, 2, false, many);
}

TEST_P(BackendOps, LinearExpertsRejectsAnOutOfRangeExpertId) {
    DeviceTensor w = b.upload(ramp(3 * 4, 1.0f), {3, 4});
    tfx_weight* expert = b.pack(w, nullptr);
    const tfx_weight* experts[] = {expert, expert};
    DeviceTensor x = b.upload(ramp(2 * 4, 1.0f), {2, 1, 4});
    DeviceTensor ids = b.upload(std::vector<int32_t>{0, 1, 1, 2}, {2, 2});
    DeviceTensor y = b.alloc(kF32, {2, 2, 3});
    Failure f = failure_of([&](tfx_error* e) { return ops.linear_experts(self, x, experts, 2, ids, y, e); });
    EXPECT_EQ(f.status, TFX_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(f.message, "linear_experts: expert id 2 (token 1, slot 1) is outside the 2 experts");
}

TEST_P(BackendOps, WeightedSumAccumulatesInSlotOrder) {
    const int64_t n = 3, k = 4, dim = 21;
    const std::vector<float> x = ramp(n * k * dim, 10.0f);
    const std::vector<float> w = ramp(n * k, 1.0f, 1.0f);
    std::vector<float> expected(static_cast<size_t>(n * dim));
    for (int64_t t = 0; t < n; ++t) {
        for (int64_t d = 0; d < dim; ++d) {
            float acc = 0.0f;
            for (int64_t s = 0; s < k; ++s) acc += w[t * k + s] * x[(t * k + s) * dim + d];
            expected[t * dim + d] = acc;
        }
    }
    DeviceTensor dx = b.upload(x, {n, k, dim});
    DeviceTensor dw = b.upload(w, {n, k});
    DeviceTensor y = b.alloc(kF32, {n, dim});
    run_op([&](tfx_error* e) { return ops.weighted_sum(self, dx, dw, y, e); });
    EXPECT_EQ(b.download(y), expected);
}

// y = x · wᵀ with x the identity gives wᵀ exactly: the packed weight's values.
std::vector<float> packed_values(Backend& b, tfx_tensor* w, const char* format) {
    const int64_t out = w->shape[0], in = w->shape[1];
    tfx_weight* packed = b.pack(w, format);
    std::vector<float> eye(static_cast<size_t>(in * in), 0.0f);
    for (int64_t i = 0; i < in; ++i) eye[i * in + i] = 1.0f;
    DeviceTensor x = b.upload(eye, {in, in});
    DeviceTensor y = b.alloc(kF32, {in, out});
    run_op([&](tfx_error* e) { return b.ops().linear(b.self(), x, packed, nullptr, y, e); });
    const std::vector<float> yt = b.download(y);
    std::vector<float> values(static_cast<size_t>(out * in));
    for (int64_t o = 0; o < out; ++o) {
        for (int64_t i = 0; i < in; ++i) values[o * in + i] = yt[i * out + o];
    }
    return values;
}

TEST_P(BackendOps, PackWeightConvertsBetweenFormats) {
    // Halfway cases round to even: bf16 keeps 8 bits of mantissa, f16 11.
    const std::vector<float> w = {1.0f + 0x1p-8f,  1.0f + 3 * 0x1p-8f,  -2.5f,    0.1f,
                                  1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65504.0f, -1e-3f};
    DeviceTensor dw = b.upload(w, {2, 4});
    const std::vector<float> bf16 = packed_values(b, dw, "bf16");
    EXPECT_EQ(bf16[0], 1.0f);
    EXPECT_EQ(bf16[1], 1.015625f);
    EXPECT_EQ(bf16[2], -2.5f);
    EXPECT_EQ(bf16[3], 0.10009765625f);
    EXPECT_EQ(bf16[6], 65536.0f);
    const std::vector<float> f16 = packed_values(b, dw, "f16");
    EXPECT_EQ(f16[4], 1.0f);
    EXPECT_EQ(f16[5], 1.0f + 0x1p-9f);
    EXPECT_EQ(f16[6], 65504.0f);
    EXPECT_EQ(f16[3], sdk::f16_to_f32(sdk::f32_to_f16(0.1f)));
    EXPECT_EQ(packed_values(b, dw, "f32"), w);
    EXPECT_EQ(packed_values(b, dw, nullptr), w);

    // A larger weight: every format within its rounding of the f32 product.
    const int64_t out = 9, in = 70;
    const std::vector<float> big = ramp(out * in, 0.5f);
    DeviceTensor dbig = b.upload(big, {out, in});
    const std::vector<float> xs = ramp(3 * in, 1.0f, 0.5f);
    DeviceTensor x = b.upload(xs, {3, in});
    auto product = [&](tfx_weight* packed) {
        DeviceTensor y = b.alloc(kF32, {3, out});
        run_op([&](tfx_error* e) { return ops.linear(self, x, packed, nullptr, y, e); });
        return b.download(y);
    };
    const std::vector<float> ref = product(b.pack(dbig, nullptr));
    for (const char* format : {"bf16", "f16"}) {
        const std::vector<float> got = product(b.pack(dbig, format));
        // Each weight moves by at most half an ulp: 2^-9 (bf16) or 2^-12 (f16) of its size.
        const float ulp = std::strcmp(format, "bf16") == 0 ? 0x1p-8f : 0x1p-11f;
        for (int64_t r = 0; r < 3; ++r) {
            for (int64_t o = 0; o < out; ++o) {
                float bound = 0.0f;
                for (int64_t i = 0; i < in; ++i) bound += std::fabs(xs[r * in + i] * big[o * in + i]);
                EXPECT_NEAR(got[r * out + o], ref[r * out + o], bound * ulp) << format << " " << r << " " << o;
            }
        }
    }

    // Half sources: bf16 widens exactly to f32, and re-narrows to itself; f16 -> bf16 rounds.
    std::vector<uint16_t> halves;
    for (float v : w) halves.push_back(sdk::f32_to_bf16(v));
    DeviceTensor dh = b.upload(halves, kBF16, {2, 4});
    const std::vector<float> widened = packed_values(b, dh, "f32");
    for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(widened[i], sdk::bf16_to_f32(halves[i]));
    EXPECT_EQ(packed_values(b, dh, nullptr), widened);
    std::vector<uint16_t> f16s;
    for (float v : w) f16s.push_back(sdk::f32_to_f16(v));
    DeviceTensor df = b.upload(f16s, kF16, {2, 4});
    const std::vector<float> narrowed = packed_values(b, df, "bf16");
    for (size_t i = 0; i < w.size(); ++i) {
        EXPECT_EQ(narrowed[i], sdk::bf16_to_f32(sdk::f32_to_bf16(sdk::f16_to_f32(f16s[i])))) << i;
    }
}

TEST_P(BackendOps, PackWeightReadsTransposedViews) {
    // Stored [in 3, out 2] (GPT-2's Conv1D), passed as the transposed view [out 2, in 3].
    const std::vector<float> stored = {1, 2, 3, 4, 5, 6};
    DeviceTensor dw = b.upload(stored, {3, 2});
    int64_t strides[] = {1, 2};
    dw.t.strides = strides;
    dw.shape = {2, 3};
    dw.t.shape = dw.shape.data();
    EXPECT_EQ(packed_values(b, dw, "f32"), (std::vector<float>{1, 3, 5, 2, 4, 6}));
    EXPECT_EQ(packed_values(b, dw, "bf16"), (std::vector<float>{1, 3, 5, 2, 4, 6}));
}

TEST_P(BackendOps, PackWeightRejectsAnUnknownFormat) {
    DeviceTensor dw = b.upload(ramp(4, 1.0f), {2, 2});
    tfx_weight* out = nullptr;
    Failure f = failure_of([&](tfx_error* e) { return ops.pack_weight(self, dw, "q5_k", &out, e); });
    EXPECT_EQ(f.status, TFX_ERR_UNSUPPORTED);
    EXPECT_NE(f.message.find("'q5_k'"), std::string::npos) << f.message;
    EXPECT_NE(f.message.find("f32, bf16, f16"), std::string::npos) << f.message;
    EXPECT_EQ(out, nullptr);
}

int32_t sum_kernel(void* ctx, tfx_error*) {
    auto* t = static_cast<tfx_tensor*>(ctx);  // reads device memory directly: allowed in a kernel
    const float* v = static_cast<const float*>(t->data);
    float* out = static_cast<float*>(t->data);
    out[0] = v[0] + v[1] + v[2];
    return TFX_OK;
}

int32_t failing_kernel(void*, tfx_error* error) {
    sdk::fill_error(error, TFX_ERR_INTERNAL, "kernel failed on purpose");
    return TFX_ERR_INTERNAL;
}

TEST_P(BackendOps, RunKernelRunsTheKernel) {
    DeviceTensor x = b.upload(std::vector<float>{1, 2, 4}, {3});
    run_op([&](tfx_error* e) { return ops.run_kernel(self, sum_kernel, static_cast<tfx_tensor*>(x), e); });
    EXPECT_EQ(b.download(x), (std::vector<float>{7, 2, 4}));
    Failure f = failure_of([&](tfx_error* e) { return ops.run_kernel(self, failing_kernel, nullptr, e); });
    EXPECT_EQ(f.status, TFX_ERR_INTERNAL);
    EXPECT_NE(f.message.find("kernel failed on purpose"), std::string::npos) << f.message;
}

TEST_P(BackendOps, ManifestDeclaresFormatsAndEveryOp) {
    const nlohmann::json manifest = nlohmann::json::parse(b.descriptor().manifest_json);
    const nlohmann::json& provides = manifest.at("provides");
    const std::vector<std::string> formats = {"f32", "bf16", "f16"};
    // The cpu backend also computes on block-quantized weights; the guarded one (device memory
    // no one may address, so the host cannot quantize into it) lists the float formats only.
    std::vector<std::string> weight_formats = formats;
    if (GetParam().find("guarded") == std::string::npos)
        weight_formats.insert(weight_formats.end(), {"q8_0", "q4_0", "q4_1", "q4_k"});
    EXPECT_EQ(provides.at("weight_formats").get<std::vector<std::string>>(), weight_formats);
    EXPECT_EQ(provides.at("kv_dtypes").get<std::vector<std::string>>(), formats);
    EXPECT_FALSE(provides.contains("weight_dtypes"));
    const std::vector<std::string> all_ops = {"alloc",
                                              "release",
                                              "map_host",
                                              "upload",
                                              "download",
                                              "run_kernel",
                                              "pack_weight",
                                              "release_weight",
                                              "linear",
                                              "embedding",
                                              "rms_norm",
                                              "layer_norm",
                                              "rope",
                                              "activation",
                                              "gated_activation",
                                              "add",
                                              "mul",
                                              "scale",
                                              "softmax",
                                              "softcap",
                                              "copy",
                                              "gather_rows",
                                              "top_k",
                                              "linear_experts",
                                              "weighted_sum",
                                              "embedding_packed",
                                              "linear_many"};
    EXPECT_EQ(provides.at("ops").get<std::vector<std::string>>(), all_ops);
    EXPECT_EQ(all_ops.size(), (sizeof(tfx_backend_ops) - 8) / sizeof(void*));
    EXPECT_EQ(b.ops().struct_size, sizeof(tfx_backend_ops));
}

INSTANTIATE_TEST_SUITE_P(CpuBackend, BackendOps, ::testing::Values(std::string(TFX_CPU_BACKEND_PLUGIN)),
                         [](const auto&) { return std::string("cpu"); });
INSTANTIATE_TEST_SUITE_P(Guarded, BackendOps, ::testing::Values(std::string(TFX_GUARDED_BACKEND_PLUGIN)),
                         [](const auto&) { return std::string("guarded"); });

}  // namespace
}  // namespace tfx::test
