// The CPU backend: f32 compute; f32, bf16 and f16 weights. f32 weights multiply through
// oneDNN; bf16/f16 weights stay half-size in memory and are widened in registers by our own
// AVX-512 kernel, which keeps results equal to an f32 matmul while halving the bytes that
// memory-bound decoding streams.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels.h"
#include "onednn_matmul.h"
#include "tfx/sdk/half.hpp"
#include "tfx/sdk/host.hpp"
#include "tfx/sdk/plugin.hpp"

struct tfx_weight {
    enum class Format { f32, bf16, f16 } format;
    int64_t out_features;
    int64_t in_features;
    std::vector<float> f32;
    std::vector<uint16_t> half;
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
    auto* data = reinterpret_cast<float*>(static_cast<char*>(t->data) + t->byte_offset);
    return {data, dim == 0 ? 0 : numel(t) / dim, dim};
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

class CpuBackend {
  public:
    explicit CpuBackend(const tfx_host_services* host) {
        sdk::Host h(host);
        if (auto threads = h.option("num_threads"); threads && !threads->empty()) {
            const int n = std::stoi(*threads);
            if (n > 0) omp_set_num_threads(n);
        }
    }

    void pack_weight(const tfx_tensor* w, tfx_weight** out) {
        if (w == nullptr || w->data == nullptr || w->ndim != 2) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "pack_weight: expected a 2-D weight [out, in]");
        }
        auto packed = std::make_unique<tfx_weight>();
        packed->out_features = w->shape[0];
        packed->in_features = w->shape[1];
        const int64_t n = numel(w);
        const char* src = static_cast<const char*>(w->data) + w->byte_offset;
        // Element (r, c) of the view; a transposed view is copied into row-major order here, once.
        const int64_t row_stride = w->strides != nullptr ? w->strides[0] : w->shape[1];
        const int64_t col_stride = w->strides != nullptr ? w->strides[1] : 1;
        auto gather = [&](auto* dst, size_t elem) {
            for (int64_t r = 0; r < packed->out_features; ++r) {
                for (int64_t c = 0; c < packed->in_features; ++c) {
                    std::memcpy(dst + r * packed->in_features + c,
                                src + (r * row_stride + c * col_stride) * static_cast<int64_t>(elem), elem);
                }
            }
        };
        if (w->dtype == kF32) {
            packed->format = tfx_weight::Format::f32;
            packed->f32.resize(static_cast<size_t>(n));
            if (compact(w)) {
                std::memcpy(packed->f32.data(), src, static_cast<size_t>(n) * 4);
            } else {
                gather(packed->f32.data(), 4);
            }
        } else if (w->dtype == kBF16 || w->dtype == kF16) {
            packed->format = w->dtype == kBF16 ? tfx_weight::Format::bf16 : tfx_weight::Format::f16;
            packed->half.resize(static_cast<size_t>(n));
            if (compact(w)) {
                std::memcpy(packed->half.data(), src, static_cast<size_t>(n) * 2);
            } else {
                gather(packed->half.data(), 2);
            }
        } else {
            throw Error(TFX_ERR_UNSUPPORTED, "pack_weight: dtype " + sdk::dtype_name(w->dtype) +
                                                 " is not supported by the cpu backend (f32, bf16, f16)");
        }
        *out = packed.release();
    }

    void release_weight(tfx_weight* w) { delete w; }

    void linear(const tfx_tensor* x, const tfx_weight* w, const tfx_tensor* bias, tfx_tensor* y) {
        if (w == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "linear: weight is missing");
        Rows in = rows_of(x, "linear", "input");
        Rows out = rows_of(y, "linear", "output");
        if (in.dim != w->in_features || out.dim != w->out_features || in.rows != out.rows) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "linear: input " + shape_of(x) + " and output " + shape_of(y) +
                                                      " do not fit weight [" + std::to_string(w->out_features) + ", " +
                                                      std::to_string(w->in_features) + "]");
        }
        const float* b = nullptr;
        if (bias != nullptr) {
            Rows br = rows_of(bias, "linear", "bias");
            require_vector(br, w->out_features, "linear", "bias");
            b = br.data;
        }
        if (in.rows == 0) return;
        if (w->format == tfx_weight::Format::f32) {
            if (in.rows >= kBlockedGemmMinRows ||
                !gemm_f32_small(in.data, w->f32.data(), b, out.data, in.rows, w->out_features, w->in_features)) {
                matmul_.run(in.data, w->f32.data(), b, out.data, in.rows, w->out_features, w->in_features);
            }
        } else if (in.rows >= kBlockedGemmMinRows) {
            // Prefill is compute-bound: widen the weight once into scratch and let oneDNN's
            // blocked f32 GEMM do the work (oneDNN has no f32 x bf16 matmul, and bf16
            // activations would lose the reference's f32 accuracy).
            const int64_t n = w->out_features * w->in_features;
            widened_.resize(static_cast<size_t>(n));
            widen(w->half.data(), w->format == tfx_weight::Format::f16, widened_.data(), n);
            matmul_.run(in.data, widened_.data(), b, out.data, in.rows, w->out_features, w->in_features);
        } else {
            gemm_half_weights(in.data, w->half.data(), w->format == tfx_weight::Format::f16, b, out.data, in.rows,
                              w->out_features, w->in_features);
        }
    }

    void embedding(const tfx_tensor* table, const tfx_tensor* ids, tfx_tensor* y) {
        if (table == nullptr || table->ndim != 2 || !compact(table) ||
            !(table->dtype == kF32 || table->dtype == kBF16 || table->dtype == kF16)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "embedding: table must be a compact 2-D f32/bf16/f16 tensor");
        }
        if (ids == nullptr || !(ids->dtype == kI32) || !compact(ids)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "embedding: ids must be compact int32");
        }
        Rows out = rows_of(y, "embedding", "output");
        const int64_t vocab = table->shape[0];
        const int64_t dim = table->shape[1];
        const int64_t count = numel(ids);
        if (out.dim != dim || out.rows != count) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "embedding: output " + shape_of(y) + " does not fit " +
                                                      std::to_string(count) + " ids of dim " + std::to_string(dim));
        }
        const auto* id = reinterpret_cast<const int32_t*>(static_cast<const char*>(ids->data) + ids->byte_offset);
        const char* base = static_cast<const char*>(table->data) + table->byte_offset;
        for (int64_t i = 0; i < count; ++i) {
            if (id[i] < 0 || id[i] >= vocab) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "input id " + std::to_string(id[i]) +
                                                          " is outside the vocabulary (size " + std::to_string(vocab) +
                                                          ")");
            }
        }
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

    void rope(tfx_tensor* x, const tfx_tensor* cos, const tfx_tensor* sin) {
        Rows v = rows_of(x, "rope", "input");
        Rows c = rows_of(cos, "rope", "cos");
        Rows s = rows_of(sin, "rope", "sin");
        require_same(c, s, "rope");
        if (x->ndim < 2) throw Error(TFX_ERR_INVALID_ARGUMENT, "rope: input must be [tokens, heads, head_dim]");
        const int64_t heads = x->shape[x->ndim - 2];
        const int64_t tokens = v.rows / heads;
        if (c.rows != tokens || 2 * c.dim > v.dim) {
            throw Error(TFX_ERR_INVALID_ARGUMENT,
                        "rope: cos/sin " + shape_of(cos) + " do not fit input " + shape_of(x));
        }
        cpu::rope(v.data, c.data, s.data, tokens, heads, v.dim, c.dim);
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

    // Below this many rows a matmul is memory-bound and the half-weight kernel, which
    // streams half the bytes, is faster than widening the weight first.
    static constexpr int64_t kBlockedGemmMinRows = 8;

    OneDnnMatmul matmul_;
    std::vector<float> widened_;  // scratch for prefill matmuls with half-precision weights
};

const tfx_backend_ops kOps = {
    sizeof(tfx_backend_ops),
    sdk::method<&CpuBackend::pack_weight>,
    [](void* self, tfx_weight* w) { static_cast<CpuBackend*>(self)->release_weight(w); },
    sdk::method<&CpuBackend::linear>,
    sdk::method<&CpuBackend::embedding>,
    sdk::method<&CpuBackend::rms_norm>,
    sdk::method<&CpuBackend::layer_norm>,
    sdk::method<&CpuBackend::rope>,
    sdk::method<&CpuBackend::activation>,
    sdk::method<&CpuBackend::gated_activation>,
    sdk::method<&CpuBackend::add>,
    sdk::method<&CpuBackend::mul>,
    sdk::method<&CpuBackend::scale>,
    sdk::method<&CpuBackend::softmax>,
    sdk::method<&CpuBackend::softcap>,
    sdk::method<&CpuBackend::copy>,
};

}  // namespace
}  // namespace tfx::cpu

TFX_PLUGIN_EXPORT(tfx::cpu::CpuBackend, tfx::cpu::kOps)
