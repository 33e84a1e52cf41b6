// Block quantization in ggml's byte layouts (the layouts GGUF files store), so a weight
// quantized here and one read from a GGUF file reach the backend alike. Every block is 32
// consecutive values of a row:
//   q8_0: f16 d, int8 q[32];                  value i = d * q[i]
//   q4_0: f16 d, uint8 qs[16] (two 4-bit q);  value i = d * (q[i] - 8), where q[i] is the low
//         nibble of qs[i] for i < 16 and the high nibble of qs[i - 16] otherwise.
// The scales are chosen as llama.cpp's reference quantizers choose them: q8_0 maps the largest
// magnitude to ±127; q4_0 maps the value of largest magnitude to -8, so the other side reaches
// +7 at most.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "tfx/quantizer.h"
#include "tfx/sdk/error.hpp"
#include "tfx/sdk/half.hpp"
#include "tfx/sdk/plugin.hpp"
#include "tfx/sdk/tensor.hpp"

namespace {

using tfx::sdk::Error;

constexpr int64_t kBlock = 32;

enum class Format { q8_0, q4_0 };

struct Layout {
    Format format;
    int64_t block_bytes;
};

// The format's block layout; nullopt-like false when the name is not ours.
bool layout_of(const char* name, Layout& out) {
    if (name == nullptr) return false;
    if (std::strcmp(name, "q8_0") == 0) {
        out = {Format::q8_0, 2 + kBlock};
        return true;
    }
    if (std::strcmp(name, "q4_0") == 0) {
        out = {Format::q4_0, 2 + kBlock / 2};
        return true;
    }
    return false;
}

Layout require_layout(const char* name) {
    Layout layout{};
    if (!layout_of(name, layout)) {
        throw Error(TFX_ERR_UNSUPPORTED, std::string("blockwise quantizer: unknown weight format '") +
                                             (name != nullptr ? name : "(null)") + "' (known: q8_0, q4_0)");
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

void quantize_block(Format format, const float* x, uint8_t* out) {
    if (format == Format::q8_0) {
        float amax = 0.0f;
        for (int64_t i = 0; i < kBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(out, d);
        for (int64_t i = 0; i < kBlock; ++i)
            out[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[i] * id)));
        return;
    }
    float extreme = 0.0f;  // the value of largest magnitude, with its sign
    for (int64_t i = 0; i < kBlock; ++i) {
        if (std::fabs(x[i]) > std::fabs(extreme)) extreme = x[i];
    }
    const float d = extreme / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    for (int64_t i = 0; i < kBlock / 2; ++i) {
        // +8.5 then truncation: round to nearest on the shifted, non-negative value.
        const auto lo = static_cast<uint8_t>(std::min(15, static_cast<int>(x[i] * id + 8.5f)));
        const auto hi = static_cast<uint8_t>(std::min(15, static_cast<int>(x[i + kBlock / 2] * id + 8.5f)));
        out[2 + i] = static_cast<uint8_t>(lo | (hi << 4));
    }
}

void dequantize_block(Format format, const uint8_t* in, float* y) {
    const float d = get_f16(in);
    if (format == Format::q8_0) {
        for (int64_t i = 0; i < kBlock; ++i) y[i] = d * static_cast<float>(static_cast<int8_t>(in[2 + i]));
        return;
    }
    for (int64_t i = 0; i < kBlock / 2; ++i) {
        y[i] = d * static_cast<float>((in[2 + i] & 0x0F) - 8);
        y[i + kBlock / 2] = d * static_cast<float>((in[2 + i] >> 4) - 8);
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
        if (!layout_of(format, layout) || cols <= 0 || cols % kBlock != 0) return 0;
        return static_cast<uint64_t>(cols / kBlock * layout.block_bytes);
    }

    void quantize(const char* format, const tfx_tensor* src, void* dst, uint64_t dst_bytes) {
        const Layout layout = require_layout(format);
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
        float block[kBlock];
        for (int64_t r = 0; r < rows; ++r) {
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
            throw Error(TFX_ERR_INVALID_ARGUMENT,
                        "blockwise quantizer: dequantize needs data and rows of a multiple of " +
                            std::to_string(kBlock) + " values");
        }
        const auto* in = static_cast<const uint8_t*>(src);
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t b = 0; b < cols / kBlock; ++b) {
                dequantize_block(layout.format, in + r * per_row + b * layout.block_bytes, dst + r * cols + b * kBlock);
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
