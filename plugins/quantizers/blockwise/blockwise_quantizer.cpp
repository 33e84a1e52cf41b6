// Block quantization in ggml's byte layouts (the layouts GGUF files store), so a weight
// quantized here and one read from a GGUF file reach the backend alike. Every block is 32
// consecutive values of a row; 4-bit values q[i] are the low nibble of qs[i] for i < 16 and the
// high nibble of qs[i - 16] otherwise, and q5 formats add bit i of the 32-bit qh as bit 4:
//   q8_0: f16 d, int8 q[32]                      value i = d * q[i]
//   q4_0: f16 d, qs[16]                          value i = d * (q[i] - 8)
//   q4_1: f16 d, f16 m, qs[16]                   value i = d * q[i] + m
//   q5_0: f16 d, qh[4], qs[16]                   value i = d * (q[i] - 16)
//   q5_1: f16 d, f16 m, qh[4], qs[16]            value i = d * q[i] + m
// The scales are chosen as llama.cpp's reference quantizers choose them: q8_0 maps the largest
// magnitude to ±127; q4_0 / q5_0 map the value of largest magnitude to -8 / -16 (the other side
// reaches +7 / +15 at most); q4_1 / q5_1 span the block's minimum to maximum in 15 / 31 steps.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "k_quants.h"
#include "tfx/quantizer.h"
#include "tfx/sdk/error.hpp"
#include "tfx/sdk/half.hpp"
#include "tfx/sdk/plugin.hpp"
#include "tfx/sdk/tensor.hpp"

namespace {

using tfx::sdk::Error;

constexpr int64_t kBlock = 32;

enum class Format { q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k };

struct Layout {
    Format format;
    int64_t block_bytes;
    int64_t block = kBlock;    // values a block
    bool decode_only = false;  // K-quants: read from GGUF files, not produced here
};

constexpr struct {
    const char* name;
    Layout layout;
} kFormats[] = {
    {"q8_0", {Format::q8_0, 2 + kBlock}},
    {"q4_0", {Format::q4_0, 2 + kBlock / 2}},
    {"q4_1", {Format::q4_1, 4 + kBlock / 2}},
    {"q5_0", {Format::q5_0, 2 + 4 + kBlock / 2}},
    {"q5_1", {Format::q5_1, 4 + 4 + kBlock / 2}},
    {"q2_k", {Format::q2_k, blockwise::kQ2KBytes, blockwise::kSuperBlock, true}},
    {"q3_k", {Format::q3_k, blockwise::kQ3KBytes, blockwise::kSuperBlock, true}},
    {"q4_k", {Format::q4_k, blockwise::kQ4KBytes, blockwise::kSuperBlock, true}},
    {"q5_k", {Format::q5_k, blockwise::kQ5KBytes, blockwise::kSuperBlock, true}},
    {"q6_k", {Format::q6_k, blockwise::kQ6KBytes, blockwise::kSuperBlock, true}},
};

// The format's block layout; false when the name is not ours.
bool layout_of(const char* name, Layout& out) {
    if (name == nullptr) return false;
    for (const auto& f : kFormats) {
        if (std::strcmp(name, f.name) == 0) {
            out = f.layout;
            return true;
        }
    }
    return false;
}

Layout require_layout(const char* name) {
    Layout layout{};
    if (!layout_of(name, layout)) {
        throw Error(TFX_ERR_UNSUPPORTED,
                    std::string("blockwise quantizer: unknown weight format '") + (name != nullptr ? name : "(null)") +
                        "' (known: q8_0, q4_0, q4_1, q5_0, q5_1; decoding only: q2_k, q3_k, q4_k, q5_k, q6_k)");
    }
    return layout;
}

void put_f16(uint8_t* p, float v) {
    const uint16_t h = tfx::sdk::f32_to_f16(v);
    std::memcpy(p, &h, 2);
}

float get_f16(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return tfx::sdk::f16_to_f32(h);
}

// 4-bit values into qs (i and i + 16 share a byte) and, for q5 formats, bit 4 into qh.
void put_bits(const int* q, uint8_t* qs, uint8_t* qh) {
    uint32_t high = 0;
    for (int64_t i = 0; i < kBlock / 2; ++i) {
        qs[i] = static_cast<uint8_t>((q[i] & 0x0F) | ((q[i + kBlock / 2] & 0x0F) << 4));
        high |= static_cast<uint32_t>((q[i] >> 4) & 1) << i;
        high |= static_cast<uint32_t>((q[i + kBlock / 2] >> 4) & 1) << (i + kBlock / 2);
    }
    if (qh != nullptr) std::memcpy(qh, &high, 4);
}

void get_bits(const uint8_t* qs, const uint8_t* qh, int* q) {
    uint32_t high = 0;
    if (qh != nullptr) std::memcpy(&high, qh, 4);
    for (int64_t i = 0; i < kBlock / 2; ++i) {
        q[i] = (qs[i] & 0x0F) | static_cast<int>(((high >> i) & 1) << 4);
        q[i + kBlock / 2] = (qs[i] >> 4) | static_cast<int>(((high >> (i + kBlock / 2)) & 1) << 4);
    }
}

void quantize_block(Format format, const float* x, uint8_t* out) {
    int q[kBlock];
    if (format == Format::q8_0) {
        float amax = 0.0f;
        for (int64_t i = 0; i < kBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(out, d);
        for (int64_t i = 0; i < kBlock; ++i)
            out[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[i] * id)));
        return;
    }
    if (format == Format::q4_0 || format == Format::q5_0) {
        const int levels = format == Format::q4_0 ? 16 : 32;  // values -levels/2 .. levels/2 - 1
        float extreme = 0.0f;                                 // the value of largest magnitude, with its sign
        for (int64_t i = 0; i < kBlock; ++i) {
            if (std::fabs(x[i]) > std::fabs(extreme)) extreme = x[i];
        }
        const float d = extreme / static_cast<float>(-levels / 2), id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(out, d);
        // + levels/2 + 0.5 then truncation: round to nearest on the shifted, non-negative value.
        for (int64_t i = 0; i < kBlock; ++i) {
            q[i] = std::min(levels - 1, static_cast<int>(x[i] * id + static_cast<float>(levels / 2) + 0.5f));
        }
        if (format == Format::q4_0) return put_bits(q, out + 2, nullptr);
        return put_bits(q, out + 6, out + 2);
    }
    const int steps = format == Format::q4_1 ? 15 : 31;
    float lo = x[0], hi = x[0];
    for (int64_t i = 1; i < kBlock; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    const float d = (hi - lo) / static_cast<float>(steps), id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    put_f16(out + 2, lo);
    for (int64_t i = 0; i < kBlock; ++i) q[i] = std::min(steps, static_cast<int>((x[i] - lo) * id + 0.5f));
    if (format == Format::q4_1) return put_bits(q, out + 4, nullptr);
    put_bits(q, out + 8, out + 4);
}

void dequantize_block(Format format, const uint8_t* in, float* y) {
    const float d = get_f16(in);
    if (format == Format::q8_0) {
        for (int64_t i = 0; i < kBlock; ++i) y[i] = d * static_cast<float>(static_cast<int8_t>(in[2 + i]));
        return;
    }
    int q[kBlock];
    switch (format) {
        case Format::q4_0:
            get_bits(in + 2, nullptr, q);
            for (int64_t i = 0; i < kBlock; ++i) y[i] = d * static_cast<float>(q[i] - 8);
            return;
        case Format::q5_0:
            get_bits(in + 6, in + 2, q);
            for (int64_t i = 0; i < kBlock; ++i) y[i] = d * static_cast<float>(q[i] - 16);
            return;
        case Format::q4_1:
        case Format::q5_1: {
            const float m = get_f16(in + 2);
            if (format == Format::q4_1) {
                get_bits(in + 4, nullptr, q);
            } else {
                get_bits(in + 8, in + 4, q);
            }
            for (int64_t i = 0; i < kBlock; ++i) y[i] = d * static_cast<float>(q[i]) + m;
            return;
        }
        case Format::q2_k:
            return blockwise::dequantize_q2_k(in, y);
        case Format::q3_k:
            return blockwise::dequantize_q3_k(in, y);
        case Format::q4_k:
            return blockwise::dequantize_q4_k(in, y);
        case Format::q5_k:
            return blockwise::dequantize_q5_k(in, y);
        case Format::q6_k:
            return blockwise::dequantize_q6_k(in, y);
        case Format::q8_0:
            break;
    }
}

// Element (r, c) of a 2-D f32/bf16/f16 tensor as f32.
float element(const tfx_tensor* t, int64_t r, int64_t c) {
    const int64_t rs = t->strides != nullptr ? t->strides[0] : t->shape[1];
    const int64_t cs = t->strides != nullptr ? t->strides[1] : 1;
    const char* base = static_cast<const char*>(t->data) + t->byte_offset;
    const int64_t at = (r * rs + c * cs);
    if (t->dtype == tfx::sdk::kF32) {
        float v;
        std::memcpy(&v, base + at * 4, 4);
        return v;
    }
    uint16_t h;
    std::memcpy(&h, base + at * 2, 2);
    return t->dtype == tfx::sdk::kBF16 ? tfx::sdk::bf16_to_f32(h) : tfx::sdk::f16_to_f32(h);
}

class BlockwiseQuantizer {
  public:
    explicit BlockwiseQuantizer(const tfx_host_services*) {}

    static uint64_t row_bytes(const char* format, int64_t cols) {
        Layout layout{};
        if (!layout_of(format, layout) || cols <= 0 || cols % layout.block != 0) return 0;
        return static_cast<uint64_t>(cols / layout.block * layout.block_bytes);
    }

    void quantize(const char* format, const tfx_tensor* src, void* dst, uint64_t dst_bytes) {
        const Layout layout = require_layout(format);
        if (layout.decode_only) {
            throw Error(TFX_ERR_UNSUPPORTED, std::string("blockwise quantizer: ") + format +
                                                 " blocks are decoded (GGUF files), not produced; quantize to q8_0, "
                                                 "q4_0, q4_1, q5_0 or q5_1");
        }
        if (src == nullptr || src->data == nullptr || src->ndim != 2 || src->shape[0] < 0 || src->shape[1] < 0) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "blockwise quantizer: expected a 2-D source tensor [rows, cols]");
        }
        using tfx::sdk::kBF16, tfx::sdk::kF16, tfx::sdk::kF32;
        if (!(src->dtype == kF32 || src->dtype == kBF16 || src->dtype == kF16)) {
            throw Error(TFX_ERR_UNSUPPORTED, "blockwise quantizer: source dtype " + tfx::sdk::dtype_name(src->dtype) +
                                                 " (expected f32, bf16 or f16)");
        }
        const int64_t rows = src->shape[0], cols = src->shape[1];
        const uint64_t per_row = row_bytes(format, cols);
        if (per_row == 0 && rows > 0) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "blockwise quantizer: " + std::string(format) +
                                                      " needs rows of a multiple of " + std::to_string(kBlock) +
                                                      " values, got " + std::to_string(cols));
        }
        if (dst == nullptr || dst_bytes < per_row * static_cast<uint64_t>(rows)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "blockwise quantizer: destination holds " +
                                                      std::to_string(dst_bytes) + " bytes, " +
                                                      std::to_string(per_row * rows) + " needed");
        }
        auto* out = static_cast<uint8_t*>(dst);
        // Rows are independent: split across the threads (a 0.5B model has ~500M values).
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * cols >= (int64_t{1} << 20))
#endif
        for (int64_t r = 0; r < rows; ++r) {
            float block[kBlock];
            for (int64_t b = 0; b < cols / kBlock; ++b) {
                for (int64_t i = 0; i < kBlock; ++i) block[i] = element(src, r, b * kBlock + i);
                quantize_block(layout.format, block, out + r * per_row + b * layout.block_bytes);
            }
        }
    }

    void dequantize(const char* format, const void* src, int64_t rows, int64_t cols, float* dst) {
        const Layout layout = require_layout(format);
        const uint64_t per_row = row_bytes(format, cols);
        if (src == nullptr || dst == nullptr || rows < 0 || (per_row == 0 && rows > 0)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "blockwise quantizer: " + std::string(format) +
                                                      " decodes rows of a multiple of " + std::to_string(layout.block) +
                                                      " values, got " + std::to_string(cols));
        }
        const auto* in = static_cast<const uint8_t*>(src);
        const int64_t blocks = cols / layout.block;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * cols >= (int64_t{1} << 20))
#endif
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t b = 0; b < blocks; ++b) {
                dequantize_block(layout.format, in + r * per_row + b * layout.block_bytes,
                                 dst + r * cols + b * layout.block);
            }
        }
    }
};

const tfx_quantizer_table kTable = {
    sizeof(tfx_quantizer_table),
    [](void*, const char* format, int64_t cols) { return BlockwiseQuantizer::row_bytes(format, cols); },
    tfx::sdk::method<&BlockwiseQuantizer::quantize>,
    tfx::sdk::method<&BlockwiseQuantizer::dequantize>,
};

}  // namespace

TFX_PLUGIN_EXPORT(BlockwiseQuantizer, kTable)
