// The q8_0 / q4_0 matmuls on every kernel variant the CPU runs, from random ggml-encoded
// weights: against a reference that quantizes x the same way and sums in double (the integer
// sums are exact, so only the float scaling may differ), and against the plain float matmul
// on dequantized weights (what quantizing x costs).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_backend.h"
#include "k_quant_rows.h"
#include "matvec.h"
#include "quant_matvec.h"
#include "tfx/sdk/half.hpp"
#include "tfx/sdk/tensor.hpp"

namespace {

using tfx::cpu::kQuantBlock;
using tfx::cpu::QuantFormat;
using tfx::cpu::QuantKernel;

// Random ggml blocks: a positive f16 scale and random quants; also the values they encode.
struct Encoded {
    std::vector<uint8_t> bytes;
    std::vector<float> values;  // [n, k]
};

Encoded random_weights(QuantFormat format, int64_t n, int64_t k, std::mt19937& rng) {
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> scale(0.001f, 0.05f);
    Encoded e;
    const int64_t blocks = k / kQuantBlock;
    for (int64_t r = 0; r < n; ++r) {
        for (int64_t b = 0; b < blocks; ++b) {
            const uint16_t d = tfx::sdk::f32_to_f16(scale(rng));
            const float df = tfx::sdk::f16_to_f32(d);
            e.bytes.push_back(static_cast<uint8_t>(d & 0xFF));
            e.bytes.push_back(static_cast<uint8_t>(d >> 8));
            float block[kQuantBlock];
            float min = 0.0f;
            if (format == QuantFormat::q4_1) {
                const uint16_t m = tfx::sdk::f32_to_f16(-8.0f * scale(rng));
                min = tfx::sdk::f16_to_f32(m);
                e.bytes.push_back(static_cast<uint8_t>(m & 0xFF));
                e.bytes.push_back(static_cast<uint8_t>(m >> 8));
            }
            if (format == QuantFormat::q8_0) {
                for (int i = 0; i < kQuantBlock; ++i) {
                    const auto q = static_cast<uint8_t>(byte(rng));  // -128 included: ggml files may hold it
                    e.bytes.push_back(q);
                    block[i] = df * static_cast<float>(static_cast<int8_t>(q));
                }
            } else if (format == QuantFormat::q4_1) {
                for (int i = 0; i < kQuantBlock / 2; ++i) {
                    const auto q = static_cast<uint8_t>(byte(rng));
                    e.bytes.push_back(q);
                    block[i] = df * static_cast<float>(q & 0x0F) + min;
                    block[i + kQuantBlock / 2] = df * static_cast<float>(q >> 4) + min;
                }
            } else {
                for (int i = 0; i < kQuantBlock / 2; ++i) {
                    const auto q = static_cast<uint8_t>(byte(rng));
                    e.bytes.push_back(q);
                    block[i] = df * static_cast<float>((q & 0x0F) - 8);
                    block[i + kQuantBlock / 2] = df * static_cast<float>((q >> 4) - 8);
                }
            }
            e.values.insert(e.values.end(), block, block + kQuantBlock);
        }
    }
    return e;
}

// x quantized as the kernels quantize it: per block of 32, scale = largest magnitude / 127.
std::vector<float> quantized_x(const std::vector<float>& x, int64_t k) {
    std::vector<float> out(x.size());
    for (size_t row = 0; row < x.size() / k; ++row) {
        for (int64_t b = 0; b < k; b += kQuantBlock) {
            const float* in = x.data() + row * k + b;
            float amax = 0.0f;
            for (int i = 0; i < kQuantBlock; ++i) amax = std::max(amax, std::fabs(in[i]));
            const float d = amax / 127.0f, inv = d != 0.0f ? 1.0f / d : 0.0f;
            for (int i = 0; i < kQuantBlock; ++i) out[row * k + b + i] = d * std::nearbyint(in[i] * inv);
        }
    }
    return out;
}

std::vector<float> reference(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& bias,
                             int64_t m, int64_t n, int64_t k) {
    std::vector<float> y(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t r = 0; r < n; ++r) {
            double sum = bias.empty() ? 0.0 : bias[r];
            for (int64_t c = 0; c < k; ++c) sum += static_cast<double>(x[i * k + c]) * w[r * k + c];
            y[i * n + r] = static_cast<float>(sum);
        }
    }
    return y;
}

struct Packed {
    std::vector<uint8_t> quants;
    std::vector<uint16_t> scales, mins;
    tfx::cpu::QuantizedWeight weight;
};

Packed pack(QuantFormat format, const Encoded& e, int64_t n, int64_t k) {
    Packed p;
    p.quants.resize(static_cast<size_t>(tfx::cpu::quant_packed_bytes(format, n, k)));
    p.scales.resize(static_cast<size_t>(tfx::cpu::quant_scale_count(n, k)));
    p.mins.resize(p.scales.size());
    tfx::cpu::repack_ggml_rows(format, e.bytes.data(), n, k, p.quants.data(), p.scales.data(), p.mins.data());
    p.weight = {format, p.quants.data(), p.scales.data(), n, k, p.mins.data()};
    return p;
}

float largest(const std::vector<float>& v) {
    float m = 0.0f;
    for (float x : v) m = std::max(m, std::fabs(x));
    return m;
}

TEST(QuantMatmul, EqualsTheReferenceOnEveryKernelFormatAndShape) {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const auto kernels = tfx::cpu::quant_kernels();
    ASSERT_FALSE(kernels.empty());
    // k: one block (a padded pair), whole pairs, an odd block count; m: decode, the row kernels'
    // x tiles, and from 16 rows the lanes kernel's tiles of 16 (one; three, the last part
    // padding; three and two).
    for (QuantFormat format : {QuantFormat::q8_0, QuantFormat::q4_0, QuantFormat::q4_1}) {
        for (int64_t k : {32, 64, 96, 576}) {
            for (int64_t m : {1, 3, 9, 16, 37, 80}) {
                const int64_t n = 37;
                const Encoded w = random_weights(format, n, k, rng);
                const Packed packed = pack(format, w, n, k);
                std::vector<float> x(static_cast<size_t>(m * k)), bias(static_cast<size_t>(n));
                for (float& v : x) v = normal(rng);
                for (float& v : bias) v = normal(rng);
                x[0] = 0.0f;  // a zero and a block of zeros: scale 0 must not divide
                if (k >= 64) std::fill(x.begin() + 32, x.begin() + 64, 0.0f);
                const auto want = reference(quantized_x(x, k), w.values, bias, m, n, k);
                const auto exact = reference(x, w.values, bias, m, n, k);
                const float scale = std::max(1.0f, largest(want));
                for (QuantKernel kernel : kernels) {
                    const char* name = format == QuantFormat::q8_0   ? "q8_0"
                                       : format == QuantFormat::q4_1 ? "q4_1"
                                                                     : "q4_0";
                    SCOPED_TRACE(name + std::string(" kernel ") + tfx::cpu::quant_kernel_name(kernel) +
                                 " k=" + std::to_string(k) + " m=" + std::to_string(m));
                    std::vector<float> y(static_cast<size_t>(m * n), NAN);
                    tfx::cpu::quant_matmul_with(kernel, x.data(), packed.weight, bias.data(), y.data(), m);
                    float diff = 0.0f, from_exact = 0.0f;
                    for (size_t i = 0; i < y.size(); ++i) {
                        diff = std::max(diff, std::fabs(y[i] - want[i]));
                        from_exact = std::max(from_exact, std::fabs(y[i] - exact[i]));
                    }
                    EXPECT_LE(diff, 2e-5f * scale);
                    // Quantizing x costs at most half a step (amax / 254) a value.
                    EXPECT_LE(from_exact, 0.02f * std::max(1.0f, largest(exact)));
                }
            }
        }
    }
}

// The threaded entry point equals one variant's result, and follows the dispatch cap: for
// decode rows, and for prefill rows (the lanes kernel on AVX-512 VNNI, split by row groups).
TEST(QuantMatmul, DispatchFollowsTheIsaCap) {
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t n = 512, k = 256;
    const Encoded w = random_weights(QuantFormat::q4_0, n, k, rng);
    const Packed packed = pack(QuantFormat::q4_0, w, n, k);
    for (const int64_t m : {2, 40}) {
        std::vector<float> x(static_cast<size_t>(m * k));
        for (float& v : x) v = normal(rng);
        for (const std::string& target : tfx::cpu::isa_targets()) {
            SCOPED_TRACE("target " + target + " m=" + std::to_string(m));
            tfx::cpu::use_isa(target);
            const QuantKernel kernel = tfx::cpu::quant_kernel_in_use();
            if (target == "avx2") {
                EXPECT_EQ(kernel, QuantKernel::avx2);
            } else if (target.rfind("avx3", 0) != 0) {
                EXPECT_EQ(kernel, QuantKernel::portable);
            }
            std::vector<float> threaded(static_cast<size_t>(m * n)), single(threaded.size());
            tfx::cpu::quant_matmul(x.data(), packed.weight, nullptr, threaded.data(), m);
            tfx::cpu::quant_matmul_with(kernel, x.data(), packed.weight, nullptr, single.data(), m);
            EXPECT_EQ(threaded, single);
        }
    }
    tfx::cpu::use_isa("");
}

// GGUF's Q4_K rows rewritten as q4_1 blocks run on the q4_1 kernels, against the values Q4_K's
// own decoding gives (super-blocks of 256: f16 d and dmin, 6-bit scales and minimums for 8
// sub-blocks, 4-bit quants). The quants stay exact; a block's scale d·sc and minimum dmin·mn
// round to f16, so a weight may move by 2^-11 of their sizes, and no more.
TEST(QuantMatmul, Q4KRowsRunOnTheQ41Kernels) {
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> scale(0.0005f, 0.01f);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t n = 19, k = 512, m = 2;
    std::vector<uint8_t> q4_k;
    std::vector<float> values, rounding;  // per weight: the largest move f16 rounding allows
    for (int64_t b = 0; b < n * k / tfx::cpu::kQ4KValues; ++b) {
        const uint16_t d = tfx::sdk::f32_to_f16(scale(rng)), dmin = tfx::sdk::f32_to_f16(scale(rng));
        uint8_t block[tfx::cpu::kQ4KBytes];
        std::memcpy(block, &d, 2);
        std::memcpy(block + 2, &dmin, 2);
        for (int i = 4; i < tfx::cpu::kQ4KBytes; ++i) block[i] = static_cast<uint8_t>(byte(rng));
        q4_k.insert(q4_k.end(), block, block + tfx::cpu::kQ4KBytes);
        const uint8_t* s = block + 4;
        const uint8_t* qs = block + 16;
        for (int j = 0; j < 8; ++j) {
            const int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
            const int mn = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
            const float step = tfx::sdk::f16_to_f32(d) * static_cast<float>(sc);
            const float min = tfx::sdk::f16_to_f32(dmin) * static_cast<float>(mn);
            for (int l = 0; l < 32; ++l) {
                const int q = (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0x0F;
                values.push_back(step * static_cast<float>(q) - min);
                rounding.push_back(std::ldexp(step * 15.0f + min, -11));
            }
        }
    }
    std::vector<uint8_t> q4_1(static_cast<size_t>(n * tfx::cpu::ggml_row_bytes(QuantFormat::q4_1, k)));
    tfx::cpu::q4_k_rows_as_q4_1(q4_k.data(), n, k, q4_1.data());
    const Packed packed = pack(QuantFormat::q4_1, Encoded{q4_1, {}}, n, k);
    std::vector<float> x(static_cast<size_t>(m * k));
    for (float& v : x) v = normal(rng);
    const std::vector<float> xq = quantized_x(x, k);
    const auto want = reference(xq, values, {}, m, n, k);
    for (QuantKernel kernel : tfx::cpu::quant_kernels()) {
        SCOPED_TRACE("kernel " + tfx::cpu::quant_kernel_name(kernel));
        std::vector<float> y(static_cast<size_t>(m * n), NAN);
        tfx::cpu::quant_matmul_with(kernel, x.data(), packed.weight, nullptr, y.data(), m);
        for (int64_t i = 0; i < m; ++i) {
            for (int64_t r = 0; r < n; ++r) {
                double bound = 2e-5 * std::max(1.0f, largest(want));
                for (int64_t c = 0; c < k; ++c) bound += std::fabs(xq[i * k + c]) * rounding[r * k + c];
                EXPECT_NEAR(y[i * n + r], want[i * n + r], bound) << "row " << r;
            }
        }
    }
}

TEST(QuantMatmul, GgmlRowBytes) {
    EXPECT_EQ(tfx::cpu::ggml_row_bytes(QuantFormat::q8_0, 64), 68);
    EXPECT_EQ(tfx::cpu::ggml_row_bytes(QuantFormat::q4_0, 64), 36);
    EXPECT_EQ(tfx::cpu::ggml_row_bytes(QuantFormat::q4_1, 64), 40);
    EXPECT_EQ(tfx::cpu::ggml_row_bytes(QuantFormat::q4_0, 48), 0);
}

}  // namespace

namespace {

// A host tensor over `data` and `shape` (both outlive it), compact.
tfx_tensor host_tensor(void* data, tfx_dtype dtype, int32_t ndim, int64_t* shape) {
    tfx_tensor t{};
    t.data = data;
    t.device = tfx::sdk::kHostDevice;
    t.ndim = ndim;
    t.dtype = dtype;
    t.shape = shape;
    return t;
}

// pack_weight takes the quantizer's bytes (a u8 tensor [out, row bytes]) and linear multiplies
// by them; malformed bytes are refused, naming what was expected.
struct Backend {
    tfx::cpu::CpuBackend cpu{nullptr};
    const tfx_backend_ops& ops = tfx::cpu::CpuBackend::ops();
    tfx_error error{};
    int32_t pack(void* data, int64_t rows, int64_t row_bytes, tfx_dtype dtype, const char* format, tfx_weight** out) {
        int64_t shape[2] = {rows, row_bytes};
        tfx_tensor t = host_tensor(data, dtype, 2, shape);
        error = {};
        return ops.pack_weight(&cpu, &t, format, out, &error);
    }
};

TEST(QuantPack, LinearOnPackedBytesAndMalformedBytesRefused) {
    std::mt19937 rng(11);
    const int64_t n = 5, k = 96;
    const tfx_dtype u8{TFX_DTYPE_UINT, 8, 1};
    Encoded w = random_weights(QuantFormat::q4_0, n, k, rng);
    Backend b;
    tfx_weight* packed = nullptr;
    ASSERT_EQ(b.pack(w.bytes.data(), n, k / 32 * 18, u8, "q4_0", &packed), TFX_OK) << b.error.message;
    std::vector<float> x(k, 0.5f), y(n);
    int64_t xs[2] = {1, k}, ys[2] = {1, n};
    tfx_tensor xt = host_tensor(x.data(), tfx::sdk::kF32, 2, xs), yt = host_tensor(y.data(), tfx::sdk::kF32, 2, ys);
    ASSERT_EQ(b.ops.linear(&b.cpu, &xt, packed, nullptr, &yt, &b.error), TFX_OK) << b.error.message;
    const auto want = reference(x, w.values, {}, 1, n, k);  // 0.5 is exact in int8: no rounding of x
    for (int64_t r = 0; r < n; ++r) EXPECT_NEAR(y[r], want[r], 1e-4f * std::max(1.0f, std::fabs(want[r])));
    b.ops.release_weight(&b.cpu, packed);

    tfx_weight* out = nullptr;
    EXPECT_EQ(b.pack(w.bytes.data(), n, 35, u8, "q4_0", &out), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(b.error.message).find("whole number of 18-byte blocks, got 35 bytes"), std::string::npos)
        << b.error.message;
    EXPECT_EQ(b.pack(w.bytes.data(), n, 9, tfx::sdk::kF32, "q8_0", &out), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(b.error.message).find("compact u8 bytes"), std::string::npos) << b.error.message;
    EXPECT_EQ(out, nullptr);
}

// embedding_packed reads rows of packed weights as the values linear computes with: every
// quantized format (k not a multiple of 64: a padding block), and the float formats.
TEST(QuantPack, EmbeddingRowsOfPackedWeights) {
    std::mt19937 rng(12);
    const int64_t n = 7, k = 96;
    const tfx_dtype u8{TFX_DTYPE_UINT, 8, 1};
    Backend b;
    std::vector<int32_t> ids = {6, 0, 3, 3, 5};
    int64_t id_shape[1] = {static_cast<int64_t>(ids.size())}, y_shape[2] = {id_shape[0], k};
    std::vector<float> y(ids.size() * k);
    tfx_tensor idt = host_tensor(ids.data(), tfx::sdk::kI32, 1, id_shape);
    tfx_tensor yt = host_tensor(y.data(), tfx::sdk::kF32, 2, y_shape);
    for (const auto& [format, name, block_bytes] :
         {std::tuple{QuantFormat::q8_0, "q8_0", 34}, std::tuple{QuantFormat::q4_0, "q4_0", 18},
          std::tuple{QuantFormat::q4_1, "q4_1", 20}}) {
        Encoded w = random_weights(format, n, k, rng);
        tfx_weight* packed = nullptr;
        ASSERT_EQ(b.pack(w.bytes.data(), n, k / 32 * block_bytes, u8, name, &packed), TFX_OK) << b.error.message;
        ASSERT_EQ(b.ops.embedding_packed(&b.cpu, packed, &idt, &yt, &b.error), TFX_OK) << b.error.message;
        for (size_t i = 0; i < ids.size(); ++i) {
            for (int64_t c = 0; c < k; ++c) {
                const float want = w.values[ids[i] * k + c];  // scale x q (+ min): one rounding apart at most
                ASSERT_NEAR(y[i * k + c], want, 1e-6f * std::max(1.0f, std::fabs(want))) << name << " " << i;
            }
        }
        b.ops.release_weight(&b.cpu, packed);
    }
    std::vector<float> table(static_cast<size_t>(n * k));
    std::uniform_real_distribution<float> value(-2.0f, 2.0f);
    for (float& v : table) v = value(rng);
    for (const char* format : {"f32", "bf16", "f16"}) {
        tfx_weight* packed = nullptr;
        ASSERT_EQ(b.pack(table.data(), n, k, tfx::sdk::kF32, format, &packed), TFX_OK) << b.error.message;
        ASSERT_EQ(b.ops.embedding_packed(&b.cpu, packed, &idt, &yt, &b.error), TFX_OK) << b.error.message;
        for (size_t i = 0; i < ids.size(); ++i) {
            for (int64_t c = 0; c < k; ++c) {
                const float v = table[ids[i] * k + c];
                const float want = std::string(format) == "bf16"  ? tfx::sdk::bf16_to_f32(tfx::sdk::f32_to_bf16(v))
                                   : std::string(format) == "f16" ? tfx::sdk::f16_to_f32(tfx::sdk::f32_to_f16(v))
                                                                  : v;
                ASSERT_EQ(y[i * k + c], want) << format;
            }
        }
        b.ops.release_weight(&b.cpu, packed);
    }
    ids[2] = static_cast<int32_t>(n);
    tfx_weight* packed = nullptr;
    ASSERT_EQ(b.pack(table.data(), n, k, tfx::sdk::kF32, "f32", &packed), TFX_OK);
    EXPECT_EQ(b.ops.embedding_packed(&b.cpu, packed, &idt, &yt, &b.error), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(b.error.message).find("input id 7 is outside the vocabulary (size 7)"), std::string::npos)
        << b.error.message;
    b.ops.release_weight(&b.cpu, packed);
}

// linear_many gives what one linear call per weight gives, bit for bit: quantized weights of
// every format in one shared pass (rows not a multiple of the 4-row groups included), float
// weights of every format in another (and through the blocked GEMM from 32 rows of x), a mix of both weight
// by weight.
TEST(QuantPack, LinearManyEqualsOneLinearPerWeight) {
    std::mt19937 rng(13);
    const int64_t k = 128;
    const tfx_dtype u8{TFX_DTYPE_UINT, 8, 1};
    Backend b;
    struct Part {
        QuantFormat format;
        const char* name;
        int64_t n, block_bytes;
    };
    std::vector<tfx_weight*> weights;
    for (const Part& p : {Part{QuantFormat::q4_1, "q4_1", 9, 20}, Part{QuantFormat::q8_0, "q8_0", 4, 34},
                          Part{QuantFormat::q4_0, "q4_0", 13, 18}}) {
        Encoded w = random_weights(p.format, p.n, k, rng);
        tfx_weight* packed = nullptr;
        ASSERT_EQ(b.pack(w.bytes.data(), p.n, k / 32 * p.block_bytes, u8, p.name, &packed), TFX_OK) << b.error.message;
        weights.push_back(packed);
    }
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    std::vector<float> table(static_cast<size_t>(7 * k));
    for (float& v : table) v = value(rng);
    std::vector<tfx_weight*> floats;  // f32, bf16 and f16 weights of 5, 7 and 6 rows
    for (const auto& [format, n] : {std::pair{"f32", 5}, std::pair{"bf16", 7}, std::pair{"f16", 6}}) {
        tfx_weight* packed = nullptr;
        ASSERT_EQ(b.pack(table.data(), n, k, tfx::sdk::kF32, format, &packed), TFX_OK) << b.error.message;
        floats.push_back(packed);
    }
    tfx_weight* f32 = floats[0];
    // Quantized only (one shared pass), quantized and float (one by one), float only (one
    // shared pass while x has few rows).
    const std::vector<std::vector<tfx_weight*>> sets = {weights, {weights[0], weights[1], weights[2], f32}, floats};
    const std::vector<std::vector<int64_t>> rows_of_set = {{9, 4, 13}, {9, 4, 13, 5}, {5, 7, 6}};
    for (int64_t m : {1, 3, 9, 17, 40}) {
        for (size_t set = 0; set < sets.size(); ++set) {
            const std::vector<tfx_weight*>& ws = sets[set];
            const std::vector<int64_t>& rows_of = rows_of_set[set];
            std::vector<float> x(static_cast<size_t>(m * k));
            for (float& v : x) v = value(rng);
            int64_t x_shape[2] = {m, k};
            tfx_tensor xt = host_tensor(x.data(), tfx::sdk::kF32, 2, x_shape);
            const size_t count = ws.size();
            std::vector<std::vector<float>> together(count), apart(count), bias(count);
            std::vector<std::array<int64_t, 2>> y_shapes(count);
            std::vector<std::array<int64_t, 1>> b_shapes(count);
            std::vector<tfx_tensor> ys(count), bs(count), ys_apart(count);
            std::vector<tfx_tensor*> y_ptrs(count);
            std::vector<const tfx_tensor*> b_ptrs(count);
            for (size_t i = 0; i < count; ++i) {
                const int64_t n = rows_of[i];
                together[i].assign(static_cast<size_t>(m * n), 0.0f);
                apart[i].assign(static_cast<size_t>(m * n), 0.0f);
                bias[i].resize(static_cast<size_t>(n));
                for (float& v : bias[i]) v = value(rng);
                y_shapes[i] = {m, n};
                b_shapes[i] = {n};
                ys[i] = host_tensor(together[i].data(), tfx::sdk::kF32, 2, y_shapes[i].data());
                ys_apart[i] = host_tensor(apart[i].data(), tfx::sdk::kF32, 2, y_shapes[i].data());
                bs[i] = host_tensor(bias[i].data(), tfx::sdk::kF32, 1, b_shapes[i].data());
                y_ptrs[i] = &ys[i];
                b_ptrs[i] = i % 2 == 0 ? &bs[i] : nullptr;  // some with a bias, some without
                ASSERT_EQ(b.ops.linear(&b.cpu, &xt, ws[i], b_ptrs[i], &ys_apart[i], &b.error), TFX_OK)
                    << b.error.message;
            }
            std::vector<const tfx_weight*> const_ws(ws.begin(), ws.end());
            ASSERT_EQ(b.ops.linear_many(&b.cpu, &xt, const_ws.data(), b_ptrs.data(), static_cast<int32_t>(count),
                                        y_ptrs.data(), &b.error),
                      TFX_OK)
                << b.error.message;
            for (size_t i = 0; i < count; ++i) {
                EXPECT_EQ(together[i], apart[i]) << "set " << set << ", weight " << i << ", m " << m;
            }
        }
    }
    // A weight that does not fit x is named.
    int64_t bad_shape[2] = {1, 64};
    std::vector<float> short_x(64, 1.0f), y(9);
    int64_t y_shape[2] = {1, 9};
    tfx_tensor xt = host_tensor(short_x.data(), tfx::sdk::kF32, 2, bad_shape);
    tfx_tensor yt = host_tensor(y.data(), tfx::sdk::kF32, 2, y_shape);
    tfx_tensor* y_ptr = &yt;
    const tfx_weight* first = weights[0];
    EXPECT_EQ(b.ops.linear_many(&b.cpu, &xt, &first, nullptr, 1, &y_ptr, &b.error), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(b.error.message).find("linear_many: input [1, 64]"), std::string::npos) << b.error.message;
    for (tfx_weight* w : weights) b.ops.release_weight(&b.cpu, w);
    for (tfx_weight* w : floats) b.ops.release_weight(&b.cpu, w);
}

}  // namespace
