// The CPU backend: f32 compute; f32, bf16 and f16 weights, and q8_0 / q4_0 / q4_1 blocks
// (quant_matvec.h: int8 dot products, for every row count). Matmuls of a few rows (decode)
// stream the weights in their stored format through our matvec kernels (matvec.h: widened in
// registers, so results equal an f32 matmul while bf16/f16 halve the bytes streamed); larger
// ones go through tfx's register-tiled GEMM (gemm.h; with matmul_precision medium, bf16 weights
// take AVX-512 BF16 dot products, gemm_bf16.h). Its device is host memory: alloc hands out
// 64-byte aligned blocks, map_host returns the host's own (memory-mapped) bytes without a copy.
#include "cpu_backend.h"

#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include "gemm.h"
#include "gemm_bf16.h"
#include "k_quant_rows.h"
#include "kernels.h"
#include "matvec.h"
#include "parallel.h"
#include "quant_matvec.h"
#include "tfx/sdk/error.hpp"
#include "tfx/sdk/half.hpp"
#include "tfx/sdk/tensor.hpp"

struct tfx_weight {
    enum class Format { f32, bf16, f16, q8_0, q4_0, q4_1 } format;
    int64_t out_features;
    int64_t in_features;
    // Quantized formats: the block quants start `data`, the f16 scales follow at `scales_offset`
    // bytes and, for q4_1, the f16 minimums at `mins_offset` (quant_matvec.h's layout: rows in
    // groups of four, interleaved pair by pair).
    size_t scales_offset = 0, mins_offset = 0;
    // [out_features, in_features] in `format`, 64-byte aligned (a cache line, an AVX-512
    // vector): malloc's 16-byte alignment split every f32 vector load across two cache lines
    // and measured 0.7x the decode bytes/s (AVX-512, Zen 5). Not zero-filled: pack_weight
    // writes every element.
    struct Free {
        void operator()(void* p) const noexcept { std::free(p); }
    };
    std::unique_ptr<void, Free> data;

    const float* f32() const { return static_cast<const float*>(data.get()); }
    const uint16_t* half() const { return static_cast<const uint16_t*>(data.get()); }
    tfx::cpu::QuantizedWeight quantized() const {
        const auto* bytes = static_cast<const uint8_t*>(data.get());
        const tfx::cpu::QuantFormat f = format == Format::q8_0   ? tfx::cpu::QuantFormat::q8_0
                                        : format == Format::q4_1 ? tfx::cpu::QuantFormat::q4_1
                                                                 : tfx::cpu::QuantFormat::q4_0;
        return {f,
                bytes,
                reinterpret_cast<const uint16_t*>(bytes + scales_offset),
                out_features,
                in_features,
                reinterpret_cast<const uint16_t*>(bytes + mins_offset)};
    }
    bool is_quantized() const { return format == Format::q8_0 || format == Format::q4_0 || format == Format::q4_1; }
};

namespace tfx::cpu {
namespace {

using sdk::Error;
using sdk::kBF16;
using sdk::kF16;
using sdk::kF32;
using sdk::kI32;

int64_t numel(const tfx_tensor* t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; ++i) n *= t->shape[i];
    return n;
}

bool compact(const tfx_tensor* t) {
    if (t->strides == nullptr) return true;
    int64_t expected = 1;
    for (int i = t->ndim - 1; i >= 0; --i) {
        if (t->shape[i] != 1 && t->strides[i] != expected) return false;
        expected *= t->shape[i];
    }
    return true;
}

std::string shape_of(const tfx_tensor* t) {
    std::string s = "[";
    for (int i = 0; i < t->ndim; ++i) s += (i ? ", " : "") + std::to_string(t->shape[i]);
    return s + "]";
}

char* base_of(const tfx_tensor* t) {
    return static_cast<char*>(t->data) + t->byte_offset;
}

// A compact f32 tensor seen as rows of its last dimension.
struct Rows {
    float* data;
    int64_t rows;
    int64_t dim;
};

Rows rows_of(const tfx_tensor* t, const char* op, const char* what) {
    if (t == nullptr || t->data == nullptr) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " is missing");
    }
    if (!(t->dtype == kF32) || t->ndim < 1 || !compact(t)) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " must be a compact f32 tensor, got " +
                                                  sdk::dtype_name(t->dtype) + " " + shape_of(t));
    }
    const int64_t dim = t->shape[t->ndim - 1];
    return {reinterpret_cast<float*>(base_of(t)), dim == 0 ? 0 : numel(t) / dim, dim};
}

// A compact tensor of any dtype seen as rows of its last dimension, in bytes.
struct ByteRows {
    char* data;
    int64_t rows;
    int64_t row_bytes;
};

ByteRows byte_rows_of(const tfx_tensor* t, const char* op, const char* what) {
    if (t == nullptr || t->data == nullptr) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " is missing");
    }
    if (t->ndim < 1 || !compact(t) || t->dtype.bits % 8 != 0 || t->dtype.lanes != 1) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " must be a compact tensor, got " +
                                                  sdk::dtype_name(t->dtype) + " " + shape_of(t));
    }
    const int64_t dim = t->shape[t->ndim - 1];
    return {base_of(t), dim == 0 ? 0 : numel(t) / dim, dim * (t->dtype.bits / 8)};
}

// A compact i32 tensor (ids, positions, rows, expert choices).
struct Indices {
    int32_t* data;
    int64_t count;
};

Indices indices_of(const tfx_tensor* t, const char* op, const char* what) {
    if (t == nullptr || t->data == nullptr) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " is missing");
    }
    if (!(t->dtype == kI32) || !compact(t)) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " must be a compact i32 tensor, got " +
                                                  sdk::dtype_name(t->dtype) + " " + shape_of(t));
    }
    return {reinterpret_cast<int32_t*>(base_of(t)), numel(t)};
}

// The bytes of a compact tensor (upload and download).
uint64_t compact_bytes(const tfx_tensor* t, const char* op, const char* what) {
    if (t == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " is missing");
    for (int i = 0; i < t->ndim; ++i) {
        if (t->shape[i] < 0) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " has a negative dim " + shape_of(t));
        }
    }
    if (!compact(t) || t->dtype.bits % 8 != 0) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " must be a compact tensor, got " +
                                                  sdk::dtype_name(t->dtype) + " " + shape_of(t));
    }
    const uint64_t bytes =
        static_cast<uint64_t>(numel(t)) * (t->dtype.bits / 8u) * std::max<uint16_t>(t->dtype.lanes, 1);
    if (bytes != 0 && t->data == nullptr) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " has no data");
    }
    return bytes;
}

void require_same(const Rows& a, const Rows& b, const char* op) {
    if (a.rows != b.rows || a.dim != b.dim) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": operand shapes differ (" + std::to_string(a.rows) +
                                                  "x" + std::to_string(a.dim) + " vs " + std::to_string(b.rows) + "x" +
                                                  std::to_string(b.dim) + ")");
    }
}

void require_vector(const Rows& v, int64_t dim, const char* op, const char* what) {
    if (v.rows * v.dim != dim) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " must have " + std::to_string(dim) +
                                                  " elements, has " + std::to_string(v.rows * v.dim));
    }
}

float read_float(const void* base, tfx_dtype dtype, int64_t index) {
    if (dtype == kF32) return static_cast<const float*>(base)[index];
    const uint16_t h = static_cast<const uint16_t*>(base)[index];
    return dtype == kBF16 ? sdk::bf16_to_f32(h) : sdk::f16_to_f32(h);
}

// A grow-only scratch buffer: at least n elements, never shrunk (no allocation once warm).
template <class T>
T* grow(std::vector<T>& v, int64_t n) {
    if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
    return v.data();
}

}  // namespace

class CpuBackendImpl {
  public:
    explicit CpuBackendImpl(const tfx_host_services* host) {
        // One device, all cores: cpu:1 names nothing.
        if (host != nullptr && host->device.device_id != 0) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "cpu backend: device cpu:" + std::to_string(host->device.device_id) +
                                                      " does not exist (the cpu backend has one device, cpu:0)");
        }
        // The kernel target (TFX_CPU_ISA applied) is settled here, so a bad cap fails the
        // session's start rather than its first matmul.
        std::string isa;
        try {
            isa = isa_in_use();
        } catch (const std::invalid_argument& e) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string("cpu backend: ") + e.what());
        }
        if (host != nullptr && host->log != nullptr) {
            std::string runnable;
            for (const std::string& target : isa_targets()) runnable += (runnable.empty() ? "" : ", ") + target;
            host->log(host->host, TFX_LOG_DEBUG,
                      ("cpu backend: kernels for " + isa + " (runnable: " + runnable + ")").c_str());
        }
        if (host == nullptr || !TFX_HAS_FIELD(host, tfx_host_services, option) || host->option == nullptr) return;
        if (const char* precision = host->option(host->host, "matmul_precision")) {
            if (std::strcmp(precision, "medium") != 0 && std::strcmp(precision, "highest") != 0) {
                throw Error(TFX_ERR_INVALID_ARGUMENT,
                            std::string("cpu backend: option matmul_precision must be highest or medium, got '") +
                                precision + "'");
            }
            medium_precision_ = std::strcmp(precision, "medium") == 0;
        }
        const char* threads = host->option(host->host, "num_threads");
        if (threads == nullptr || *threads == '\0') return;
        char* end = nullptr;
        errno = 0;
        const long n = std::strtol(threads, &end, 10);
        if (errno != 0 || *end != '\0' || n < 0 || n > 65536) {
            throw Error(TFX_ERR_INVALID_ARGUMENT,
                        std::string("cpu backend: option num_threads must be a thread count, got '") + threads + "'");
        }
        if (n > 0) omp_set_num_threads(static_cast<int>(n));
    }

    ~CpuBackendImpl() {
        for (void* p : owned_) std::free(p);
    }

    // ---- memory and transfers ----

    void alloc(uint64_t bytes, void** data) {
        if (data == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "alloc: data is missing");
        *data = nullptr;
        if (bytes > (uint64_t{1} << 62)) {
            throw Error(TFX_ERR_OUT_OF_MEMORY, "alloc: " + std::to_string(bytes) + " bytes is too large");
        }
        // aligned_alloc wants a multiple of the alignment; a zero-byte block still gets an address.
        const size_t rounded = std::max<size_t>(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
        void* p = std::aligned_alloc(kAlignment, rounded);
        if (p == nullptr) {
            throw Error(TFX_ERR_OUT_OF_MEMORY, "alloc: out of memory allocating " + std::to_string(bytes) + " bytes");
        }
        try {
            std::lock_guard lock(memory_mutex_);
            owned_.insert(p);
        } catch (...) {
            std::free(p);
            throw;
        }
        *data = p;
    }

    // Frees blocks from alloc; map_host's results are the host's own memory: nothing to free.
    void release(void* data) noexcept {
        if (data == nullptr) return;
        std::lock_guard lock(memory_mutex_);
        if (owned_.erase(data) != 0) std::free(data);
    }

    // The device is host memory: the host's bytes are used in place (zero copy).
    void map_host(const void* host, uint64_t bytes, void** data) {
        if (data == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "map_host: data is missing");
        if (host == nullptr && bytes != 0) throw Error(TFX_ERR_INVALID_ARGUMENT, "map_host: host is missing");
        *data = const_cast<void*>(host);
    }

    void upload(const void* host, tfx_tensor* dst) {
        const uint64_t bytes = compact_bytes(dst, "upload", "dst");
        if (bytes == 0) return;
        if (host == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "upload: host is missing");
        std::memcpy(base_of(dst), host, bytes);
    }

    void download(const tfx_tensor* src, void* host) {
        const uint64_t bytes = compact_bytes(src, "download", "src");
        if (bytes == 0) return;
        if (host == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "download: host is missing");
        std::memcpy(host, base_of(src), bytes);
    }

    // ---- weights ----

    // Packs w [out, in] (f32, bf16 or f16, any strides) into `format` (NULL: w's own dtype),
    // row-major. Half formats stay half-size; narrowing rounds to nearest even, like torch.
    void pack_weight(const tfx_tensor* w, const char* format, tfx_weight** out) {
        if (out == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "pack_weight: out is missing");
        if (w == nullptr || w->data == nullptr || w->ndim != 2 || w->shape[0] < 0 || w->shape[1] < 0) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "pack_weight: expected a 2-D weight [out, in]");
        }
        if (format != nullptr && std::strcmp(format, "q4_k") == 0) {
            *out = pack_q4_k(w).release();
            return;
        }
        if (format != nullptr) {
            for (const auto& [name, quant] :
                 {std::pair{"q8_0", QuantFormat::q8_0}, std::pair{"q4_0", QuantFormat::q4_0},
                  std::pair{"q4_1", QuantFormat::q4_1}}) {
                if (std::strcmp(format, name) == 0) {
                    *out = pack_quantized(w, quant, name).release();
                    return;
                }
            }
        }
        if (!(w->dtype == kF32 || w->dtype == kBF16 || w->dtype == kF16)) {
            throw Error(TFX_ERR_UNSUPPORTED, "pack_weight: dtype " + sdk::dtype_name(w->dtype) +
                                                 " is not supported by the cpu backend (f32, bf16, f16)");
        }
        using Format = tfx_weight::Format;
        Format target;
        if (format == nullptr) {
            target = w->dtype == kF32 ? Format::f32 : w->dtype == kBF16 ? Format::bf16 : Format::f16;
        } else if (std::strcmp(format, "f32") == 0) {
            target = Format::f32;
        } else if (std::strcmp(format, "bf16") == 0) {
            target = Format::bf16;
        } else if (std::strcmp(format, "f16") == 0) {
            target = Format::f16;
        } else {
            throw Error(TFX_ERR_UNSUPPORTED,
                        std::string("pack_weight: weight format '") + format +
                            "' is not supported by the cpu backend (supported: f32, bf16, f16, q8_0, q4_0, q4_1, "
                            "q4_k)");
        }
        auto packed = std::make_unique<tfx_weight>();
        packed->format = target;
        const int64_t rows = packed->out_features = w->shape[0];
        const int64_t cols = packed->in_features = w->shape[1];
        const int64_t n = rows * cols;
        const char* src = base_of(w);
        const tfx_dtype dtype = w->dtype;
        const int64_t elem = dtype.bits / 8;
        const size_t bytes = static_cast<size_t>(n) * (target == Format::f32 ? 4 : 2);
        packed->data.reset(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
        if (packed->data == nullptr && bytes > 0) throw Error(TFX_ERR_OUT_OF_MEMORY, "pack_weight: out of memory");
        // Element (r, c) of the view; a transposed view is copied into row-major order here, once.
        const int64_t row_stride = w->strides != nullptr ? w->strides[0] : cols;
        const int64_t col_stride = w->strides != nullptr ? w->strides[1] : 1;
        const bool same = (target == Format::f32 && dtype == kF32) || (target == Format::bf16 && dtype == kBF16) ||
                          (target == Format::f16 && dtype == kF16);
        auto convert = [&](auto* dst, auto element) {
            parallel_for(rows, n > 65536, [&](int64_t r) {
                for (int64_t c = 0; c < cols; ++c) {
                    dst[r * cols + c] = element(src + (r * row_stride + c * col_stride) * elem);
                }
            });
        };
        auto as_float = [dtype](const char* p) { return read_float(p, dtype, 0); };
        auto raw_half = [](const char* p) {
            uint16_t h;
            std::memcpy(&h, p, 2);
            return h;
        };
        if (target == Format::f32) {
            auto* dst = static_cast<float*>(packed->data.get());
            if (same && compact(w)) {
                std::memcpy(dst, src, static_cast<size_t>(n) * 4);
            } else {
                convert(dst, as_float);
            }
        } else {
            auto* dst = static_cast<uint16_t*>(packed->data.get());
            if (same && compact(w)) {
                std::memcpy(dst, src, static_cast<size_t>(n) * 2);
            } else if (same) {
                convert(dst, raw_half);
            } else if (target == Format::bf16) {
                convert(dst, [&](const char* p) { return sdk::f32_to_bf16(as_float(p)); });
            } else {
                convert(dst, [&](const char* p) { return sdk::f32_to_f16(as_float(p)); });
            }
        }
        *out = packed.release();
    }

    // A weight already encoded in ggml's q8_0 / q4_0 / q4_1 blocks (the quantizer's output, a u8
    // tensor [out, row bytes]), repacked into the kernels' layout (quant_matvec.h).
    static void require_encoded_bytes(const tfx_tensor* w, const char* name) {
        if (!(w->dtype == tfx_dtype{TFX_DTYPE_UINT, 8, 1}) || !compact(w)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string("pack_weight: ") + name +
                                                      " weights come as compact u8 bytes [out, row bytes], got " +
                                                      sdk::dtype_name(w->dtype));
        }
    }
    static std::unique_ptr<tfx_weight> pack_quantized(const tfx_tensor* w, QuantFormat format, const char* name) {
        require_encoded_bytes(w, name);
        const int64_t rows = w->shape[0], row_bytes = w->shape[1];
        const int64_t block_bytes = ggml_row_bytes(format, kQuantBlock);
        const int64_t cols = row_bytes / block_bytes * kQuantBlock;
        if (row_bytes == 0 || ggml_row_bytes(format, cols) != row_bytes) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string("pack_weight: a ") + name + " row is a whole number of " +
                                                      std::to_string(block_bytes) + "-byte blocks, got " +
                                                      std::to_string(row_bytes) + " bytes");
        }
        auto packed = std::make_unique<tfx_weight>();
        packed->format = format == QuantFormat::q8_0   ? tfx_weight::Format::q8_0
                         : format == QuantFormat::q4_1 ? tfx_weight::Format::q4_1
                                                       : tfx_weight::Format::q4_0;
        packed->out_features = rows;
        packed->in_features = cols;
        const size_t quant_bytes = static_cast<size_t>(quant_packed_bytes(format, rows, cols));
        const size_t scale_bytes = static_cast<size_t>(quant_scale_count(rows, cols)) * sizeof(uint16_t);
        packed->scales_offset = (quant_bytes + kAlignment - 1) / kAlignment * kAlignment;
        packed->mins_offset = packed->scales_offset + (scale_bytes + kAlignment - 1) / kAlignment * kAlignment;
        const size_t bytes =
            format == QuantFormat::q4_1 ? packed->mins_offset + scale_bytes : packed->scales_offset + scale_bytes;
        packed->data.reset(std::aligned_alloc(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment));
        if (packed->data == nullptr && bytes > 0) throw Error(TFX_ERR_OUT_OF_MEMORY, "pack_weight: out of memory");
        auto* base = static_cast<uint8_t*>(packed->data.get());
        repack_ggml_rows(
            format, reinterpret_cast<const uint8_t*>(base_of(w)), rows, cols, base,
            reinterpret_cast<uint16_t*>(base + packed->scales_offset),
            format == QuantFormat::q4_1 ? reinterpret_cast<uint16_t*>(base + packed->mins_offset) : nullptr);
        return packed;
    }

    // GGUF's Q4_K blocks (a u8 tensor [out, row bytes]) run on the q4_1 kernels, rewritten as
    // q4_1 blocks first (k_quant_rows.h: the quants stay as they are).
    static std::unique_ptr<tfx_weight> pack_q4_k(const tfx_tensor* w) {
        require_encoded_bytes(w, "q4_k");
        const int64_t rows = w->shape[0], row_bytes = w->shape[1];
        if (row_bytes == 0 || row_bytes % kQ4KBytes != 0) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "pack_weight: a q4_k row is a whole number of " +
                                                      std::to_string(kQ4KBytes) + "-byte super-blocks, got " +
                                                      std::to_string(row_bytes) + " bytes");
        }
        const int64_t cols = row_bytes / kQ4KBytes * kQ4KValues;
        int64_t shape[2] = {rows, ggml_row_bytes(QuantFormat::q4_1, cols)};
        std::vector<uint8_t> q4_1(static_cast<size_t>(rows * shape[1]));
        q4_k_rows_as_q4_1(reinterpret_cast<const uint8_t*>(base_of(w)), rows, cols, q4_1.data());
        tfx_tensor blocks{};
        blocks.data = q4_1.data();
        blocks.device = w->device;
        blocks.ndim = 2;
        blocks.dtype = {TFX_DTYPE_UINT, 8, 1};
        blocks.shape = shape;
        return pack_quantized(&blocks, QuantFormat::q4_1, "q4_k");
    }

    void release_weight(tfx_weight* w) noexcept { delete w; }

    // ---- compute ----

    // A linear's operands checked: x [rows, in], y [rows, out], bias [out] or none.
    struct LinearCall {
        Rows in, out;
        const float* bias;
    };
    static LinearCall checked_linear(const tfx_tensor* x, const tfx_weight* w, const tfx_tensor* bias, tfx_tensor* y,
                                     const char* op) {
        if (w == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": weight is missing");
        Rows in = rows_of(x, op, "input");
        Rows out = rows_of(y, op, "output");
        if (in.dim != w->in_features || out.dim != w->out_features || in.rows != out.rows) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": input " + shape_of(x) + " and output " +
                                                      shape_of(y) + " do not fit weight [" +
                                                      std::to_string(w->out_features) + ", " +
                                                      std::to_string(w->in_features) + "]");
        }
        const float* b = nullptr;
        if (bias != nullptr) {
            Rows br = rows_of(bias, op, "bias");
            require_vector(br, w->out_features, op, "bias");
            b = br.data;
        }
        return {in, out, b};
    }

    void linear(const tfx_tensor* x, const tfx_weight* w, const tfx_tensor* bias, tfx_tensor* y) {
        const LinearCall c = checked_linear(x, w, bias, y, "linear");
        matmul(c.in.data, w, c.bias, c.out.data, c.in.rows);
    }

    // Weights of one kind share one pass, one parallel region over all their rows (2 threads of
    // SmolLM-135M decode ran 5 regions a layer before, 3 now): quantized ones through
    // quant_matmul_many (x quantized once), float ones through matvec_many while x has few
    // rows. Any other case runs as that many linear calls.
    void linear_many(const tfx_tensor* x, const tfx_weight* const* ws, const tfx_tensor* const* biases, int32_t count,
                     tfx_tensor* const* ys) {
        if (count < 0 || (count > 0 && (ws == nullptr || ys == nullptr))) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_many: weights and outputs are required");
        }
        bool quantized = count <= kQuantMatmulMany, floats = count <= kQuantMatmulMany;
        for (int32_t i = 0; i < count; ++i) {
            quantized = quantized && ws[i] != nullptr && ws[i]->is_quantized();
            floats = floats && ws[i] != nullptr && !ws[i]->is_quantized();
        }
        LinearCall calls[kQuantMatmulMany];
        for (int32_t i = 0; i < count && (quantized || floats); ++i) {
            calls[i] = checked_linear(x, ws[i], biases != nullptr ? biases[i] : nullptr, ys[i], "linear_many");
        }
        const int64_t rows = count > 0 && (quantized || floats) ? calls[0].in.rows : 0;
        if (quantized && rows > 0) {
            QuantizedWeight q[kQuantMatmulMany];
            const float* bias[kQuantMatmulMany];
            float* out[kQuantMatmulMany];
            for (int32_t i = 0; i < count; ++i) {
                q[i] = ws[i]->quantized();
                bias[i] = calls[i].bias;
                out[i] = calls[i].out.data;
            }
            return quant_matmul_many(calls[0].in.data, q, bias, out, count, rows);
        }
        if (floats && rows > 0) {
            MatvecWeight m[kQuantMatmulMany];
            for (int32_t i = 0; i < count; ++i) m[i] = float_weight(ws[i], calls[i].bias, calls[i].out.data);
            return float_matmuls(calls[0].in.data, m, count, rows, ws[0]->in_features);
        }
        if ((quantized || floats) && rows == 0) return;
        for (int32_t i = 0; i < count; ++i) linear(x, ws[i], biases != nullptr ? biases[i] : nullptr, ys[i]);
    }

    // An embedding's ids (compact i32, each in the vocabulary) and its output rows [count, dim].
    struct Lookup {
        const int32_t* id;
        int64_t count;
        Rows out;
    };
    static Lookup checked_ids(const tfx_tensor* ids, tfx_tensor* y, int64_t vocab, int64_t dim, const char* op) {
        if (ids == nullptr || ids->data == nullptr || !(ids->dtype == kI32) || !compact(ids)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": ids must be compact int32");
        }
        Rows out = rows_of(y, op, "output");
        const int64_t count = numel(ids);
        if (out.dim != dim || out.rows != count) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": output " + shape_of(y) + " does not fit " +
                                                      std::to_string(count) + " ids of dim " + std::to_string(dim));
        }
        const auto* id = reinterpret_cast<const int32_t*>(base_of(ids));
        for (int64_t i = 0; i < count; ++i) {
            if (id[i] < 0 || id[i] >= vocab) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "input id " + std::to_string(id[i]) +
                                                          " is outside the vocabulary (size " + std::to_string(vocab) +
                                                          ")");
            }
        }
        return {id, count, out};
    }

    // Rows of a packed weight as the kernels see them: f32 as packed, half formats widened,
    // quantized rows dequantized (quant_matvec.h's layout).
    void embedding_packed(const tfx_weight* table, const tfx_tensor* ids, tfx_tensor* y) {
        if (table == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "embedding_packed: the table is missing");
        const int64_t dim = table->in_features;
        const auto [id, count, out] = checked_ids(ids, y, table->out_features, dim, "embedding_packed");
        using Format = tfx_weight::Format;
        for (int64_t i = 0; i < count; ++i) {
            float* row = out.data + i * dim;
            const int64_t r = id[i];
            if (table->format == Format::f32) {
                std::memcpy(row, table->f32() + r * dim, static_cast<size_t>(dim) * sizeof(float));
            } else if (table->format == Format::bf16 || table->format == Format::f16) {
                widen(table->half() + r * dim, table->format == Format::bf16 ? WeightFormat::bf16 : WeightFormat::f16,
                      row, dim);
            } else {
                dequantize_packed_row(table->quantized(), r, row);
            }
        }
    }

    void embedding(const tfx_tensor* table, const tfx_tensor* ids, tfx_tensor* y) {
        if (table == nullptr || table->data == nullptr || table->ndim != 2 || !compact(table) ||
            !(table->dtype == kF32 || table->dtype == kBF16 || table->dtype == kF16)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "embedding: table must be a compact 2-D f32/bf16/f16 tensor");
        }
        const auto [id, count, out] = checked_ids(ids, y, table->shape[0], table->shape[1], "embedding");
        const int64_t dim = table->shape[1];
        const char* base = base_of(table);
        const int64_t elem = table->dtype.bits / 8;
        for (int64_t i = 0; i < count; ++i) {
            const char* row = base + id[i] * dim * elem;
            for (int64_t d = 0; d < dim; ++d) out.data[i * dim + d] = read_float(row, table->dtype, d);
        }
    }

    void rms_norm(const tfx_tensor* x, const tfx_tensor* w, float eps, float offset, tfx_tensor* y) {
        Rows in = rows_of(x, "rms_norm", "input");
        Rows out = rows_of(y, "rms_norm", "output");
        Rows weight = rows_of(w, "rms_norm", "weight");
        require_same(in, out, "rms_norm");
        require_vector(weight, in.dim, "rms_norm", "weight");
        cpu::rms_norm(in.data, weight.data, eps, offset, out.data, in.rows, in.dim);
    }

    void layer_norm(const tfx_tensor* x, const tfx_tensor* w, const tfx_tensor* b, float eps, tfx_tensor* y) {
        Rows in = rows_of(x, "layer_norm", "input");
        Rows out = rows_of(y, "layer_norm", "output");
        Rows weight = rows_of(w, "layer_norm", "weight");
        require_same(in, out, "layer_norm");
        require_vector(weight, in.dim, "layer_norm", "weight");
        const float* bias = nullptr;
        if (b != nullptr) {
            Rows br = rows_of(b, "layer_norm", "bias");
            require_vector(br, in.dim, "layer_norm", "bias");
            bias = br.data;
        }
        cpu::layer_norm(in.data, weight.data, bias, eps, out.data, in.rows, in.dim);
    }

    void rope(tfx_tensor* x, const tfx_tensor* positions, const tfx_tensor* inv_freq, float attention_scaling) {
        Rows v = rows_of(x, "rope", "input");
        if (x->ndim < 2) throw Error(TFX_ERR_INVALID_ARGUMENT, "rope: input must be [tokens, heads, head_dim]");
        Indices pos = indices_of(positions, "rope", "positions");
        Rows freq = rows_of(inv_freq, "rope", "inv_freq");
        const int64_t heads = x->shape[x->ndim - 2];
        const int64_t tokens = heads == 0 ? 0 : v.rows / heads;
        const int64_t half = freq.rows * freq.dim;
        if (pos.count != tokens || 2 * half > v.dim) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "rope: positions " + shape_of(positions) + " and inv_freq " +
                                                      shape_of(inv_freq) + " do not fit input " + shape_of(x));
        }
        for (int64_t t = 0; t < tokens; ++t) {
            if (pos.data[t] < 0) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "rope: position " + std::to_string(pos.data[t]) + " of token " +
                                                          std::to_string(t) + " is negative");
            }
        }
        cpu::rope(v.data, pos.data, freq.data, attention_scaling, tokens, heads, v.dim, half);
    }

    void activation(int32_t act, const tfx_tensor* x, tfx_tensor* y) {
        check_activation(act);
        Rows in = rows_of(x, "activation", "input");
        Rows out = rows_of(y, "activation", "output");
        require_same(in, out, "activation");
        cpu::activation(act, in.data, out.data, in.rows * in.dim);
    }

    void gated_activation(int32_t act, const tfx_tensor* gate, const tfx_tensor* up, tfx_tensor* y) {
        check_activation(act);
        Rows g = rows_of(gate, "gated_activation", "gate");
        Rows u = rows_of(up, "gated_activation", "up");
        Rows out = rows_of(y, "gated_activation", "output");
        require_same(g, u, "gated_activation");
        require_same(g, out, "gated_activation");
        cpu::gated_activation(act, g.data, u.data, out.data, g.rows * g.dim);
    }

    void add(const tfx_tensor* a, const tfx_tensor* b, tfx_tensor* y) {
        binary("add", a, b, y, [](float p, float q) { return p + q; });
    }
    void mul(const tfx_tensor* a, const tfx_tensor* b, tfx_tensor* y) {
        binary("mul", a, b, y, [](float p, float q) { return p * q; });
    }

    void scale(const tfx_tensor* x, float factor, tfx_tensor* y) {
        Rows in = rows_of(x, "scale", "input");
        Rows out = rows_of(y, "scale", "output");
        require_same(in, out, "scale");
        for (int64_t i = 0; i < in.rows * in.dim; ++i) out.data[i] = in.data[i] * factor;
    }

    void softmax(const tfx_tensor* x, tfx_tensor* y) {
        Rows in = rows_of(x, "softmax", "input");
        Rows out = rows_of(y, "softmax", "output");
        require_same(in, out, "softmax");
        cpu::softmax(in.data, out.data, in.rows, in.dim);
    }

    void softcap(const tfx_tensor* x, float cap, tfx_tensor* y) {
        if (!(cap > 0.0f)) throw Error(TFX_ERR_INVALID_ARGUMENT, "softcap: cap must be positive");
        Rows in = rows_of(x, "softcap", "input");
        Rows out = rows_of(y, "softcap", "output");
        require_same(in, out, "softcap");
        for (int64_t i = 0; i < in.rows * in.dim; ++i) out.data[i] = cap * std::tanh(in.data[i] / cap);
    }

    // Strided N-d copy of 1-, 2-, 4- or 8-byte elements.
    void copy(const tfx_tensor* src, tfx_tensor* dst) {
        if (src == nullptr || dst == nullptr || src->ndim != dst->ndim ||
            std::memcmp(&src->dtype, &dst->dtype, sizeof(tfx_dtype)) != 0) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "copy: source and destination must have the same rank and dtype");
        }
        for (int i = 0; i < src->ndim; ++i) {
            if (src->shape[i] != dst->shape[i]) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "copy: shapes differ: " + shape_of(src) + " vs " + shape_of(dst));
            }
        }
        const int64_t elem = src->dtype.bits / 8;
        const int64_t total = numel(src);
        if (total == 0) return;
        int64_t src_strides[8], dst_strides[8], index[8] = {};
        strides_of(src, src_strides);
        strides_of(dst, dst_strides);
        const char* s = static_cast<const char*>(src->data) + src->byte_offset;
        char* d = static_cast<char*>(dst->data) + dst->byte_offset;
        const int last = src->ndim - 1;
        for (int64_t done = 0; done < total;) {
            int64_t so = 0, dof = 0;
            for (int i = 0; i < src->ndim; ++i) {
                so += index[i] * src_strides[i];
                dof += index[i] * dst_strides[i];
            }
            const int64_t run = last >= 0 ? src->shape[last] : 1;
            if (last >= 0 && src_strides[last] == 1 && dst_strides[last] == 1) {
                std::memcpy(d + dof * elem, s + so * elem, static_cast<size_t>(run * elem));
            } else {
                for (int64_t j = 0; j < run; ++j) {
                    const int64_t sj = last >= 0 ? src_strides[last] * j : 0;
                    const int64_t dj = last >= 0 ? dst_strides[last] * j : 0;
                    std::memcpy(d + (dof + dj) * elem, s + (so + sj) * elem, static_cast<size_t>(elem));
                }
            }
            done += run;
            for (int i = last - 1; i >= 0; --i) {
                if (++index[i] < src->shape[i]) break;
                index[i] = 0;
            }
        }
    }

    // y[r] = x[rows[r]], rows of any dtype.
    void gather_rows(const tfx_tensor* x, const tfx_tensor* rows, tfx_tensor* y) {
        ByteRows in = byte_rows_of(x, "gather_rows", "x");
        ByteRows out = byte_rows_of(y, "gather_rows", "y");
        Indices index = indices_of(rows, "gather_rows", "rows");
        if (!(x->dtype == y->dtype) || out.rows != index.count || out.row_bytes != in.row_bytes) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "gather_rows: y " + sdk::dtype_name(y->dtype) + " " + shape_of(y) +
                                                      " does not fit " + std::to_string(index.count) + " rows of x " +
                                                      sdk::dtype_name(x->dtype) + " " + shape_of(x));
        }
        for (int64_t r = 0; r < index.count; ++r) {
            if (index.data[r] < 0 || index.data[r] >= in.rows) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "gather_rows: row " + std::to_string(index.data[r]) + " (entry " +
                                                          std::to_string(r) + ") is outside x's " +
                                                          std::to_string(in.rows) + " rows");
            }
        }
        for (int64_t r = 0; r < index.count; ++r) {
            std::memmove(out.data + r * out.row_bytes, in.data + index.data[r] * in.row_bytes,
                         static_cast<size_t>(in.row_bytes));
        }
    }

    // The k largest probabilities per row, highest first (ties: lower index first).
    void top_k(const tfx_tensor* x, int32_t k, int32_t normalize, tfx_tensor* ids, tfx_tensor* weights) {
        Rows p = rows_of(x, "top_k", "x");
        if (k < 1 || k > p.dim) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "top_k: k = " + std::to_string(k) + " must be between 1 and the " +
                                                      std::to_string(p.dim) + " columns of x " + shape_of(x));
        }
        Indices choice = indices_of(ids, "top_k", "ids");
        Rows w = rows_of(weights, "top_k", "weights");
        if (choice.count != p.rows * k || ids->ndim < 1 || ids->shape[ids->ndim - 1] != k || w.rows != p.rows ||
            w.dim != k) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "top_k: ids " + shape_of(ids) + " and weights " + shape_of(weights) +
                                                      " must be [" + std::to_string(p.rows) + ", " + std::to_string(k) +
                                                      "] for x " + shape_of(x));
        }
        int32_t* order = grow(order_, p.dim);
        for (int64_t t = 0; t < p.rows; ++t) {
            const float* pt = p.data + t * p.dim;
            for (int64_t e = 0; e < p.dim; ++e) order[e] = static_cast<int32_t>(e);
            std::partial_sort(order, order + k, order + p.dim,
                              [pt](int32_t i, int32_t j) { return pt[i] > pt[j] || (pt[i] == pt[j] && i < j); });
            float sum = 0.0f;
            for (int64_t s = 0; s < k; ++s) sum += pt[order[s]];
            for (int64_t s = 0; s < k; ++s) {
                choice.data[t * k + s] = order[s];
                w.data[t * k + s] = normalize != 0 ? pt[order[s]] / sum : pt[order[s]];
            }
        }
    }

    // y[t, s] = x[t, s or 0] · experts[ids[t, s]]ᵀ. The (token, slot) pairs are grouped by
    // expert (a counting sort), their rows gathered into scratch, each expert multiplies all of
    // its rows at once, and the results are scattered back.
    void linear_experts(const tfx_tensor* x, const tfx_weight* const* experts, int32_t count, const tfx_tensor* ids,
                        tfx_tensor* y) {
        if (experts == nullptr || count <= 0) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: no experts (count " + std::to_string(count) + ")");
        }
        Indices choice = indices_of(ids, "linear_experts", "ids");
        if (ids->ndim != 2) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: ids must be [n, k], got " + shape_of(ids));
        }
        Rows in = rows_of(x, "linear_experts", "x");
        Rows out = rows_of(y, "linear_experts", "y");
        const int64_t n = ids->shape[0], k = ids->shape[1], routed = n * k;
        if ((in.rows != routed && in.rows != n) || out.rows != routed) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: x " + shape_of(x) + " and y " + shape_of(y) +
                                                      " do not fit ids " + shape_of(ids) +
                                                      " (x [n, k or 1, in], y [n, k, out])");
        }
        const bool shared = in.rows != routed;  // x [n, 1, in]: one input row for all of a token's slots
        int64_t* start = grow(start_, int64_t{count} + 1);
        std::fill(start, start + count + 1, int64_t{0});
        for (int64_t r = 0; r < routed; ++r) {
            const int32_t e = choice.data[r];
            if (e < 0 || e >= count) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: expert id " + std::to_string(e) + " (token " +
                                                          std::to_string(r / k) + ", slot " + std::to_string(r % k) +
                                                          ") is outside the " + std::to_string(count) + " experts");
            }
            if (start[e + 1]++ != 0) continue;
            const tfx_weight* w = experts[e];
            if (w == nullptr) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: expert " + std::to_string(e) + " is missing");
            }
            if (w->in_features != in.dim || w->out_features != out.dim) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: expert " + std::to_string(e) + " [" +
                                                          std::to_string(w->out_features) + ", " +
                                                          std::to_string(w->in_features) + "] does not fit x " +
                                                          shape_of(x) + " and y " + shape_of(y));
            }
        }
        if (routed == 0) return;
        for (int64_t e = 0; e < count; ++e) start[e + 1] += start[e];
        int64_t* fill = grow(fill_, count);
        std::copy(start, start + count, fill);
        int64_t* slot = grow(slot_, routed);  // slot[j] = the (token, slot) pair at grouped row j
        for (int64_t r = 0; r < routed; ++r) slot[fill[choice.data[r]]++] = r;

        float* xs = grow(experts_in_, routed * in.dim);
        float* ys = grow(experts_out_, routed * out.dim);
        const size_t in_bytes = static_cast<size_t>(in.dim) * sizeof(float);
        const size_t out_bytes = static_cast<size_t>(out.dim) * sizeof(float);
        parallel_for(routed, routed * in.dim > 65536, [&](int64_t j) {
            const int64_t row = shared ? slot[j] / k : slot[j];
            std::memcpy(xs + j * in.dim, in.data + row * in.dim, in_bytes);
        });
        for (int64_t e = 0; e < count; ++e) {
            const int64_t first = start[e], rows = start[e + 1] - first;
            if (rows != 0) matmul(xs + first * in.dim, experts[e], nullptr, ys + first * out.dim, rows);
        }
        parallel_for(routed, routed * out.dim > 65536,
                     [&](int64_t j) { std::memcpy(out.data + slot[j] * out.dim, ys + j * out.dim, out_bytes); });
    }

    // y[t] = sum over s of weights[t, s] * x[t, s], in order of s.
    void weighted_sum(const tfx_tensor* x, const tfx_tensor* weights, tfx_tensor* y) {
        Rows in = rows_of(x, "weighted_sum", "x");
        Rows w = rows_of(weights, "weighted_sum", "weights");
        Rows out = rows_of(y, "weighted_sum", "y");
        if (in.rows != w.rows * w.dim || out.rows != w.rows || out.dim != in.dim) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "weighted_sum: x " + shape_of(x) + ", weights " + shape_of(weights) +
                                                      " and y " + shape_of(y) +
                                                      " do not fit (x [n, k, dim], weights [n, k], y [n, dim])");
        }
        cpu::weighted_sum(in.data, w.data, out.data, w.rows, w.dim, in.dim);
    }

  private:
    static void check_activation(int32_t act) {
        if (act < TFX_ACT_SILU || act > TFX_ACT_TANH) {
            throw Error(TFX_ERR_UNSUPPORTED, "unknown activation id " + std::to_string(act));
        }
    }

    static void strides_of(const tfx_tensor* t, int64_t* out) {
        if (t->ndim > 8) throw Error(TFX_ERR_INVALID_ARGUMENT, "copy: more than 8 dims");
        int64_t expected = 1;
        for (int i = t->ndim - 1; i >= 0; --i) {
            out[i] = t->strides != nullptr ? t->strides[i] : expected;
            expected *= t->shape[i];
        }
    }

    template <class Op>
    void binary(const char* name, const tfx_tensor* a, const tfx_tensor* b, tfx_tensor* y, Op op) {
        Rows ra = rows_of(a, name, "a");
        Rows rb = rows_of(b, name, "b");
        Rows out = rows_of(y, name, "output");
        require_same(ra, out, name);
        const int64_t n = ra.rows * ra.dim;
        const int64_t nb = rb.rows * rb.dim;
        if (nb == n) {
            for (int64_t i = 0; i < n; ++i) out.data[i] = op(ra.data[i], rb.data[i]);
        } else if (nb == ra.dim) {
            for (int64_t i = 0; i < n; ++i) out.data[i] = op(ra.data[i], rb.data[i % ra.dim]);
        } else {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(name) + ": b must match a or be a row vector");
        }
    }

    // y[rows, out] = x[rows, in] · wᵀ (+ b), for linear and each expert of linear_experts.
    void matmul(const float* x, const tfx_weight* w, const float* b, float* y, int64_t rows) {
        if (rows == 0) return;
        if (w->is_quantized()) return quant_matmul(x, w->quantized(), b, y, rows);
        const MatvecWeight one = float_weight(w, b, y);
        float_matmuls(x, &one, 1, rows, w->in_features);
    }

    // A float weight (f32, bf16 or f16) as the matvec and GEMM kernels take it.
    static MatvecWeight float_weight(const tfx_weight* w, const float* bias, float* y) {
        const WeightFormat format = w->format == tfx_weight::Format::f32   ? WeightFormat::f32
                                    : w->format == tfx_weight::Format::f16 ? WeightFormat::f16
                                                                           : WeightFormat::bf16;
        return {w->data.get(), format, bias, y, w->out_features};
    }

    // y = x[rows, k] · wᵀ (+ bias) for each float weight of ws over one x (linear, linear_many).
    void float_matmuls(const float* x, const MatvecWeight* ws, int count, int64_t rows, int64_t k) {
        if (rows < kBlockedGemmMinRows) return matvec_many(x, ws, count, rows, k);
        const bool all_bf16 =
            std::all_of(ws, ws + count, [](const MatvecWeight& w) { return w.format == WeightFormat::bf16; });
        // matmul_precision medium: x rounded to bf16 and bf16 dot products (f32 sums) on the
        // weights as stored (gemm_bf16.h).
        if (all_bf16 && bf16_matmuls(k)) return gemm_many_bf16(x, ws, count, rows, k);
        // Compute-bound: tfx's register-tiled GEMM, level with oneDNN's f32 GEMM on
        // SmolLM-135M's projections (AVX-512 Zen 5, bench_gemm) while reading the weights as
        // stored: bf16/f16 are widened a tile at a time, not into a whole f32 copy.
        gemm_many(x, ws, count, rows, k);
    }

    // Below this many rows a matmul is memory-bound: the matvec kernels stream each weight
    // once in its stored format (in L2-sized tiles past 4 rows); from here on the blocked GEMM
    // wins. tfx serve's decode steps of 8 and 16 sequences (SmolLM-135M shape, f32) ran 1.25x
    // and 1.31x faster on the matvec kernels than on oneDNN's GEMM (AVX-512 Zen 5, 2 threads;
    // 1.5x and 1.3x with both capped to AVX2), and level at 32, where gemm.h runs 1.1-1.5x
    // oneDNN's rate (bench_gemm, 1 thread). Below 32 rows gemm.h's 16-row vectors go part
    // empty (17 rows: 0.7x oneDNN).
    static constexpr int64_t kBlockedGemmMinRows = 32;
    static constexpr size_t kAlignment = 64;

    bool medium_precision_ = false;  // the host's matmul_precision option is "medium"

    // bf16 x bf16 prefill matmuls over k columns: asked for, the CPU has AVX-512 BF16 dot
    // products within the dispatch cap (elsewhere they would be emulated, slower than the f32
    // GEMM), and k pairs up.
    bool bf16_matmuls(int64_t k) const { return medium_precision_ && k % 2 == 0 && bf16_dot_products_available(); }
    // linear_experts scratch (grow-only): rows grouped by expert, in and out, and the grouping.
    std::vector<float> experts_in_, experts_out_;
    std::vector<int64_t> start_, fill_, slot_;
    std::vector<int32_t> order_;  // top_k
    std::mutex memory_mutex_;
    std::unordered_set<void*> owned_;  // blocks from alloc
};

namespace {

// void CpuBackendImpl::fn(Args...) becomes int32_t fn(void* self, Args..., tfx_error*), self a CpuBackend*.
template <auto Method>
struct Op;
template <class... Args, void (CpuBackendImpl::*Method)(Args...)>
struct Op<Method> {
    static int32_t call(void* self, Args... args, tfx_error* error) noexcept {
        return sdk::guard(error, [&] { (static_cast<CpuBackend*>(self)->impl().*Method)(args...); });
    }
};
template <auto Method>
inline constexpr auto op = &Op<Method>::call;

int32_t run_kernel(void*, tfx_kernel_fn kernel, void* ctx, tfx_error* error) noexcept {
    if (kernel == nullptr) {
        sdk::fill_error(error, TFX_ERR_INVALID_ARGUMENT, "run_kernel: kernel is missing");
        return TFX_ERR_INVALID_ARGUMENT;
    }
    return kernel(ctx, error);
}

const tfx_backend_ops kOps = {
    sizeof(tfx_backend_ops),
    op<&CpuBackendImpl::alloc>,
    [](void* self, void* data) { static_cast<CpuBackend*>(self)->impl().release(data); },
    op<&CpuBackendImpl::map_host>,
    op<&CpuBackendImpl::upload>,
    op<&CpuBackendImpl::download>,
    run_kernel,
    op<&CpuBackendImpl::pack_weight>,
    [](void* self, tfx_weight* w) { static_cast<CpuBackend*>(self)->impl().release_weight(w); },
    op<&CpuBackendImpl::linear>,
    op<&CpuBackendImpl::embedding>,
    op<&CpuBackendImpl::rms_norm>,
    op<&CpuBackendImpl::layer_norm>,
    op<&CpuBackendImpl::rope>,
    op<&CpuBackendImpl::activation>,
    op<&CpuBackendImpl::gated_activation>,
    op<&CpuBackendImpl::add>,
    op<&CpuBackendImpl::mul>,
    op<&CpuBackendImpl::scale>,
    op<&CpuBackendImpl::softmax>,
    op<&CpuBackendImpl::softcap>,
    op<&CpuBackendImpl::copy>,
    op<&CpuBackendImpl::gather_rows>,
    op<&CpuBackendImpl::top_k>,
    op<&CpuBackendImpl::linear_experts>,
    op<&CpuBackendImpl::weighted_sum>,
    op<&CpuBackendImpl::embedding_packed>,
    op<&CpuBackendImpl::linear_many>,
};

}  // namespace

CpuBackend::CpuBackend(const tfx_host_services* host) : impl_(std::make_unique<CpuBackendImpl>(host)) {}
CpuBackend::~CpuBackend() = default;

int32_t CpuBackend::score() {
    return 100;
}

const tfx_backend_ops& CpuBackend::ops() {
    return kOps;
}

}  // namespace tfx::cpu
