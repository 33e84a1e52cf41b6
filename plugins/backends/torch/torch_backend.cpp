// The torch backend: every op of the backend table computed with ATen (libtorch), on libtorch's
// CPU device. Its memory is host memory, as the cpu backend's, so attention plugins address it
// directly and the host maps checkpoint bytes without a copy; tensors cross into ATen as
// views (at::from_blob over the caller's bytes, DLPack's layout), never copied on the way in,
// and every op writes into the output the caller gave. Activations are f32; weights are packed
// as f32, bf16 or f16 and multiplied in f32 (a half weight is widened at pack time, so every
// op's result equals an f32 matmul on the rounded weights, as on the cpu backend). Its score
// is below the cpu backend's: `--device torch` chooses it.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "tfx/backend.h"
#include "tfx/host.h"
#include "tfx/sdk/error.hpp"
#include "tfx/sdk/plugin.hpp"
#include "tfx/sdk/tensor.hpp"

// A packed weight: [out_features, in_features] as ATen computes with it (f32, contiguous).
struct tfx_weight {
    at::Tensor w;
    int64_t out_features = 0, in_features = 0;
};

namespace tfx::torch_backend {
namespace {

using sdk::Error;
using sdk::kBF16;
using sdk::kF16;
using sdk::kF32;
using sdk::kI32;

constexpr size_t kAlignment = 64;

std::string shape_of(const tfx_tensor* t) {
    std::string s = "[";
    for (int i = 0; i < t->ndim; ++i) s += (i ? ", " : "") + std::to_string(t->shape[i]);
    return s + "]";
}

at::ScalarType scalar_type(tfx_dtype d, const char* op) {
    if (d == kF32) return at::kFloat;
    if (d == kBF16) return at::kBFloat16;
    if (d == kF16) return at::kHalf;
    if (d == kI32) return at::kInt;
    if (d.code == TFX_DTYPE_UINT && d.bits == 8 && d.lanes == 1) return at::kByte;
    throw Error(TFX_ERR_UNSUPPORTED,
                std::string(op) + ": dtype " + sdk::dtype_name(d) + " is not supported by the torch backend");
}

// An ATen view of a tensor (no copy): its bytes, shape and strides as they are.
at::Tensor view(const tfx_tensor* t, const char* op, const char* what) {
    if (t == nullptr || (t->data == nullptr && t->ndim > 0) || t->ndim < 0 || t->ndim > 8) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " is missing or malformed");
    }
    if (t->device.device_type != TFX_DEVICE_CPU) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " is not in host memory");
    }
    std::vector<int64_t> shape(t->shape, t->shape + t->ndim);
    for (int64_t d : shape) {
        if (d < 0) throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " has a negative dim");
    }
    const auto options = at::TensorOptions().dtype(scalar_type(t->dtype, op)).device(at::kCPU);
    void* base = static_cast<char*>(t->data) + t->byte_offset;
    if (t->strides == nullptr) return at::from_blob(base, shape, options);
    return at::from_blob(base, shape, std::vector<int64_t>(t->strides, t->strides + t->ndim), options);
}

// A compact f32 tensor as rows of its last dimension: [rows, dim], a view of the caller's bytes
// (so writes into an output land there).
at::Tensor rows(const tfx_tensor* t, const char* op, const char* what) {
    at::Tensor v = view(t, op, what);
    if (v.scalar_type() != at::kFloat || !v.is_contiguous()) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " must be a compact f32 tensor, is " +
                                                  sdk::dtype_name(t->dtype) + " " + shape_of(t));
    }
    if (v.dim() == 0) return v.reshape({1, 1});
    return v.reshape({-1, v.size(-1)});
}

void require_same(const at::Tensor& a, const at::Tensor& b, const char* op) {
    if (a.sizes() != b.sizes()) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": operand shapes differ (" +
                                                  std::to_string(a.numel()) + " vs " + std::to_string(b.numel()) +
                                                  " elements)");
    }
}

// An i32 index vector as the int64 ATen's indexing takes.
at::Tensor indices(const tfx_tensor* t, const char* op, const char* what) {
    at::Tensor v = view(t, op, what);
    if (v.scalar_type() != at::kInt) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " must be i32");
    }
    return v.reshape({-1}).to(at::kLong);
}

void check_range(const at::Tensor& ids, int64_t limit, const char* op, const char* what) {
    if (ids.numel() == 0) return;
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= limit) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " " + std::to_string(lo < 0 ? lo : hi) +
                                                  " is outside [0, " + std::to_string(limit) + ")");
    }
}

at::Tensor activate(int32_t act, const at::Tensor& x) {
    switch (act) {
        case TFX_ACT_SILU:
            return at::silu(x);
        case TFX_ACT_GELU:
            return at::gelu(x);
        case TFX_ACT_GELU_TANH:
            return at::gelu(x, "tanh");
        case TFX_ACT_RELU:
            return at::relu(x);
        case TFX_ACT_TANH:
            return at::tanh(x);
        default:
            throw Error(TFX_ERR_UNSUPPORTED, "unknown activation id " + std::to_string(act));
    }
}

class TorchBackend {
  public:
    explicit TorchBackend(const tfx_host_services* host) {
        // libtorch's CPU device: torch:1 names nothing.
        if (host != nullptr && host->device.device_id != 0) {
            throw Error(TFX_ERR_INVALID_ARGUMENT,
                        "torch backend: device torch:" + std::to_string(host->device.device_id) +
                            " does not exist (it runs on libtorch's CPU device, torch:0)");
        }
        // ATen's intra-op pool; the host's num_threads, else every core (as the cpu backend).
        at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
        if (host == nullptr || !TFX_HAS_FIELD(host, tfx_host_services, option) || host->option == nullptr) return;
        const char* threads = host->option(host->host, "num_threads");
        if (threads == nullptr || *threads == '\0') return;
        char* end = nullptr;
        errno = 0;
        const long n = std::strtol(threads, &end, 10);
        if (errno != 0 || *end != '\0' || n < 0 || n > 65536) {
            throw Error(TFX_ERR_INVALID_ARGUMENT,
                        std::string("torch backend: option num_threads must be a thread count, got '") + threads + "'");
        }
        if (n > 0) at::set_num_threads(static_cast<int>(n));
    }
    ~TorchBackend() {
        for (void* p : owned_) std::free(p);
    }
    TorchBackend(const TorchBackend&) = delete;
    TorchBackend& operator=(const TorchBackend&) = delete;

    // libtorch is here; the cpu backend, tuned for this machine, stays the default.
    static int32_t score() { return 50; }  // the manifest's max_score

    // ---- memory and transfers: host memory, as the cpu backend's ----

    void alloc(uint64_t bytes, void** data) {
        if (data == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "alloc: data is missing");
        *data = nullptr;
        if (bytes > (uint64_t{1} << 62)) {
            throw Error(TFX_ERR_OUT_OF_MEMORY, "alloc: " + std::to_string(bytes) + " bytes is too large");
        }
        const size_t rounded = std::max<size_t>(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
        void* p = std::aligned_alloc(kAlignment, rounded);
        if (p == nullptr) throw Error(TFX_ERR_OUT_OF_MEMORY, "alloc: out of memory for " + std::to_string(bytes));
        std::lock_guard lock(memory_mutex_);
        owned_.insert(p);
        *data = p;
    }
    void release(void* data) noexcept {
        if (data == nullptr) return;
        std::lock_guard lock(memory_mutex_);
        if (owned_.erase(data) != 0) std::free(data);
    }
    void map_host(const void* host, uint64_t bytes, void** data) {
        if (data == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "map_host: data is missing");
        if (host == nullptr && bytes != 0) throw Error(TFX_ERR_INVALID_ARGUMENT, "map_host: host is missing");
        *data = const_cast<void*>(host);
    }
    void upload(const void* host, tfx_tensor* dst) {
        at::Tensor d = view(dst, "upload", "dst");
        if (!d.is_contiguous()) throw Error(TFX_ERR_INVALID_ARGUMENT, "upload: dst must be compact");
        if (d.numel() == 0) return;
        if (host == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "upload: host is missing");
        std::memcpy(d.data_ptr(), host, d.nbytes());
    }
    void download(const tfx_tensor* src, void* host) {
        at::Tensor s = view(src, "download", "src");
        if (!s.is_contiguous()) throw Error(TFX_ERR_INVALID_ARGUMENT, "download: src must be compact");
        if (s.numel() == 0) return;
        if (host == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "download: host is missing");
        std::memcpy(host, s.data_ptr(), s.nbytes());
    }

    // ---- weights ----

    // w [out, in], f32/bf16/f16, any strides; format f32, bf16 or f16 (NULL: w's own): the
    // values are rounded to the format, then kept as f32 for ATen's f32 matmul.
    void pack_weight(const tfx_tensor* w, const char* format, tfx_weight** out) {
        if (out == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "pack_weight: out is missing");
        at::Tensor v = view(w, "pack_weight", "weight");
        if (v.dim() != 2 ||
            !(v.scalar_type() == at::kFloat || v.scalar_type() == at::kBFloat16 || v.scalar_type() == at::kHalf)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "pack_weight: expected a 2-D f32/bf16/f16 weight [out, in], got " +
                                                      sdk::dtype_name(w->dtype) + " " + shape_of(w));
        }
        at::ScalarType rounded = v.scalar_type();
        if (format != nullptr) {
            if (std::strcmp(format, "f32") == 0) {
                rounded = at::kFloat;
            } else if (std::strcmp(format, "bf16") == 0) {
                rounded = at::kBFloat16;
            } else if (std::strcmp(format, "f16") == 0) {
                rounded = at::kHalf;
            } else {
                throw Error(TFX_ERR_UNSUPPORTED, std::string("pack_weight: weight format '") + format +
                                                     "' is not supported by the torch backend (f32, bf16, f16)");
            }
        }
        auto packed = std::make_unique<tfx_weight>();
        packed->w = v.to(rounded).to(at::kFloat).contiguous().clone();
        packed->out_features = v.size(0);
        packed->in_features = v.size(1);
        *out = packed.release();
    }
    void release_weight(tfx_weight* w) noexcept { delete w; }

    // ---- compute ----

    void linear(const tfx_tensor* x, const tfx_weight* w, const tfx_tensor* bias, tfx_tensor* y) {
        if (w == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "linear: the weight is missing");
        at::Tensor in = rows(x, "linear", "input"), out = rows(y, "linear", "output");
        if (in.size(1) != w->in_features || out.size(1) != w->out_features || in.size(0) != out.size(0)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "linear: input " + shape_of(x) + " and output " + shape_of(y) +
                                                      " do not fit the weight [" + std::to_string(w->out_features) +
                                                      ", " + std::to_string(w->in_features) + "]");
        }
        if (in.size(0) == 0) return;
        if (bias != nullptr) {
            at::Tensor b = rows(bias, "linear", "bias").reshape({-1});
            if (b.numel() != w->out_features) throw Error(TFX_ERR_INVALID_ARGUMENT, "linear: bias does not fit");
            at::addmm_out(out, b, in, w->w.t());
        } else {
            at::mm_out(out, in, w->w.t());
        }
    }

    void linear_many(const tfx_tensor* x, const tfx_weight* const* ws, const tfx_tensor* const* biases, int32_t count,
                     tfx_tensor* const* ys) {
        if (ws == nullptr || ys == nullptr || count < 0)
            throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_many: bad arguments");
        for (int32_t i = 0; i < count; ++i) linear(x, ws[i], biases != nullptr ? biases[i] : nullptr, ys[i]);
    }

    void embedding(const tfx_tensor* table, const tfx_tensor* ids, tfx_tensor* y) {
        at::Tensor t = view(table, "embedding", "table");
        if (t.dim() != 2 || t.scalar_type() == at::kInt || t.scalar_type() == at::kByte) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "embedding: table must be a 2-D f32/bf16/f16 tensor");
        }
        gather_into(t, ids, y, "embedding");
    }

    void embedding_packed(const tfx_weight* table, const tfx_tensor* ids, tfx_tensor* y) {
        if (table == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "embedding_packed: the table is missing");
        gather_into(table->w, ids, y, "embedding_packed");
    }

    void rms_norm(const tfx_tensor* x, const tfx_tensor* w, float eps, float offset, tfx_tensor* y) {
        at::Tensor in = rows(x, "rms_norm", "input"), out = rows(y, "rms_norm", "output");
        at::Tensor weight = rows(w, "rms_norm", "weight").reshape({-1});
        require_same(in, out, "rms_norm");
        if (weight.numel() != in.size(1)) throw Error(TFX_ERR_INVALID_ARGUMENT, "rms_norm: weight does not fit");
        const at::Tensor inv = at::rsqrt(in.pow(2).mean(-1, true) + eps);
        out.copy_((weight + offset) * (in * inv));
    }

    void layer_norm(const tfx_tensor* x, const tfx_tensor* w, const tfx_tensor* b, float eps, tfx_tensor* y) {
        at::Tensor in = rows(x, "layer_norm", "input"), out = rows(y, "layer_norm", "output");
        require_same(in, out, "layer_norm");
        at::Tensor weight = rows(w, "layer_norm", "weight").reshape({-1});
        c10::optional<at::Tensor> bias;
        if (b != nullptr) bias = rows(b, "layer_norm", "bias").reshape({-1});
        out.copy_(at::layer_norm(in, {in.size(1)}, weight, bias, eps));
    }

    // x [tokens, heads, head_dim] in place: the first 2*half dims of each head rotated.
    void rope(tfx_tensor* x, const tfx_tensor* positions, const tfx_tensor* inv_freq, float attention_scaling) {
        at::Tensor v = view(x, "rope", "input");
        if (v.dim() < 2 || v.scalar_type() != at::kFloat || !v.is_contiguous()) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "rope: input must be f32 [tokens, heads, head_dim]");
        }
        const at::Tensor pos = view(positions, "rope", "positions").reshape({-1});
        const at::Tensor freq = rows(inv_freq, "rope", "inv_freq").reshape({-1});
        const int64_t heads = v.size(-2), head_dim = v.size(-1), half = freq.numel();
        const int64_t tokens = heads == 0 ? 0 : v.numel() / (heads * head_dim);
        if (pos.numel() != tokens || 2 * half > head_dim) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "rope: positions " + shape_of(positions) + " and inv_freq " +
                                                      shape_of(inv_freq) + " do not fit input " + shape_of(x));
        }
        if (tokens == 0) return;
        if (pos.min().item<int32_t>() < 0) throw Error(TFX_ERR_INVALID_ARGUMENT, "rope: a position is negative");
        const at::Tensor angle = pos.to(at::kFloat).unsqueeze(1) * freq.unsqueeze(0);  // [tokens, half]
        const at::Tensor cos = (at::cos(angle) * attention_scaling).unsqueeze(1);      // [tokens, 1, half]
        const at::Tensor sin = (at::sin(angle) * attention_scaling).unsqueeze(1);
        at::Tensor t = v.reshape({tokens, heads, head_dim});
        at::Tensor first = t.narrow(-1, 0, half), second = t.narrow(-1, half, half);
        const at::Tensor a = first.clone(), b = second.clone();
        first.copy_(a * cos - b * sin);
        second.copy_(b * cos + a * sin);
    }

    void activation(int32_t act, const tfx_tensor* x, tfx_tensor* y) {
        at::Tensor in = rows(x, "activation", "input"), out = rows(y, "activation", "output");
        require_same(in, out, "activation");
        out.copy_(activate(act, in));
    }

    void gated_activation(int32_t act, const tfx_tensor* gate, const tfx_tensor* up, tfx_tensor* y) {
        at::Tensor g = rows(gate, "gated_activation", "gate"), u = rows(up, "gated_activation", "up");
        at::Tensor out = rows(y, "gated_activation", "output");
        require_same(g, u, "gated_activation");
        require_same(g, out, "gated_activation");
        at::mul_out(out, activate(act, g), u);
    }

    void add(const tfx_tensor* a, const tfx_tensor* b, tfx_tensor* y) { binary("add", a, b, y, true); }
    void mul(const tfx_tensor* a, const tfx_tensor* b, tfx_tensor* y) { binary("mul", a, b, y, false); }

    void scale(const tfx_tensor* x, float factor, tfx_tensor* y) {
        at::Tensor in = rows(x, "scale", "input"), out = rows(y, "scale", "output");
        require_same(in, out, "scale");
        at::mul_out(out, in, at::scalar_tensor(factor, at::kFloat));
    }

    void softmax(const tfx_tensor* x, tfx_tensor* y) {
        at::Tensor in = rows(x, "softmax", "input"), out = rows(y, "softmax", "output");
        require_same(in, out, "softmax");
        out.copy_(at::softmax(in, -1));
    }

    void softcap(const tfx_tensor* x, float cap, tfx_tensor* y) {
        if (!(cap > 0.0f)) throw Error(TFX_ERR_INVALID_ARGUMENT, "softcap: cap must be positive");
        at::Tensor in = rows(x, "softcap", "input"), out = rows(y, "softcap", "output");
        require_same(in, out, "softcap");
        out.copy_(at::tanh(in / cap) * cap);
    }

    void copy(const tfx_tensor* src, tfx_tensor* dst) {
        if (src == nullptr || dst == nullptr || !(src->dtype == dst->dtype)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "copy: source and destination must have the same rank and dtype");
        }
        at::Tensor s = view(src, "copy", "source"), d = view(dst, "copy", "destination");
        if (s.sizes() != d.sizes()) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "copy: shapes differ: " + shape_of(src) + " vs " + shape_of(dst));
        }
        d.copy_(s);
    }

    // y[r] = x[rows[r]] for rows of any dtype (bytes).
    void gather_rows(const tfx_tensor* x, const tfx_tensor* rows_index, tfx_tensor* y) {
        if (x == nullptr || y == nullptr || !(x->dtype == y->dtype)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "gather_rows: x and y must have the same dtype");
        }
        at::Tensor in = view(x, "gather_rows", "x"), out = view(y, "gather_rows", "y");
        if (in.dim() == 0 || out.dim() == 0 || !in.is_contiguous() || !out.is_contiguous()) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "gather_rows: x and y must be compact, with rows");
        }
        const at::Tensor index = indices(rows_index, "gather_rows", "rows");
        const at::Tensor in_rows = in.reshape({-1, in.size(-1)});
        at::Tensor out_rows = out.reshape({-1, out.size(-1)});
        if (out_rows.size(0) != index.numel() || out_rows.size(1) != in_rows.size(1)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "gather_rows: y " + shape_of(y) + " does not fit " +
                                                      std::to_string(index.numel()) + " rows of x " + shape_of(x));
        }
        check_range(index, in_rows.size(0), "gather_rows", "row");
        at::index_select_out(out_rows, in_rows, 0, index);
    }

    // ids, weights [n, k]: the k largest per row, highest first, ties to the lower index (a
    // stable descending sort keeps equal values in index order).
    void top_k(const tfx_tensor* x, int32_t k, int32_t normalize, tfx_tensor* ids, tfx_tensor* weights) {
        at::Tensor p = rows(x, "top_k", "x");
        if (k < 1 || k > p.size(1)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "top_k: k = " + std::to_string(k) + " must be between 1 and the " +
                                                      std::to_string(p.size(1)) + " columns of x " + shape_of(x));
        }
        at::Tensor choice = view(ids, "top_k", "ids"), w = rows(weights, "top_k", "weights");
        if (choice.scalar_type() != at::kInt || choice.numel() != p.size(0) * k || w.size(0) != p.size(0) ||
            w.size(1) != k) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "top_k: ids " + shape_of(ids) + " and weights " + shape_of(weights) +
                                                      " must be [" + std::to_string(p.size(0)) + ", " +
                                                      std::to_string(k) + "] for x " + shape_of(x));
        }
        const auto [values, order] = at::sort(p, /*stable=*/true, /*dim=*/-1, /*descending=*/true);
        const at::Tensor top = values.narrow(1, 0, k);
        choice.reshape({p.size(0), k}).copy_(order.narrow(1, 0, k));
        w.copy_(normalize != 0 ? top / top.sum(-1, true) : top);
    }

    // y[t, s] = x[t, s or 0] · experts[ids[t, s]]ᵀ, grouped by expert.
    void linear_experts(const tfx_tensor* x, const tfx_weight* const* experts, int32_t count, const tfx_tensor* ids,
                        tfx_tensor* y) {
        if (experts == nullptr || count <= 0) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: no experts (count " + std::to_string(count) + ")");
        }
        const at::Tensor choice = indices(ids, "linear_experts", "ids");
        if (ids->ndim != 2) throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: ids must be [n, k]");
        const int64_t n = ids->shape[0], k = ids->shape[1], routed = n * k;
        at::Tensor in = rows(x, "linear_experts", "x"), out = rows(y, "linear_experts", "y");
        if ((in.size(0) != routed && in.size(0) != n) || out.size(0) != routed) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: x " + shape_of(x) + " and y " + shape_of(y) +
                                                      " do not fit ids " + shape_of(ids) +
                                                      " (x [n, k or 1, in], y [n, k, out])");
        }
        check_range(choice, count, "linear_experts", "expert id");
        if (routed == 0) return;
        const bool shared = in.size(0) != routed;  // x [n, 1, in]: one input row for all of a token's slots
        for (int32_t e = 0; e < count; ++e) {
            const at::Tensor slots = at::nonzero(choice == e).reshape({-1});
            if (slots.numel() == 0) continue;
            const tfx_weight* w = experts[e];
            if (w == nullptr || w->in_features != in.size(1) || w->out_features != out.size(1)) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: expert " + std::to_string(e) +
                                                          " is missing or does not fit x " + shape_of(x) + " and y " +
                                                          shape_of(y));
            }
            const at::Tensor xs = in.index_select(0, shared ? at::div(slots, k, "floor") : slots);
            out.index_copy_(0, slots, at::mm(xs, w->w.t()));
        }
    }

    // y[t] = sum over s of weights[t, s] * x[t, s]: x [n, k, dim], weights [n, k].
    void weighted_sum(const tfx_tensor* x, const tfx_tensor* weights, tfx_tensor* y) {
        at::Tensor in = rows(x, "weighted_sum", "x"), w = rows(weights, "weighted_sum", "weights");
        at::Tensor out = rows(y, "weighted_sum", "y");
        const int64_t n = w.size(0), k = w.size(1);
        if (in.size(0) != n * k || out.size(0) != n || out.size(1) != in.size(1)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "weighted_sum: x " + shape_of(x) + ", weights " + shape_of(weights) +
                                                      " and y " + shape_of(y) +
                                                      " do not fit (x [n, k, dim], weights [n, k], y [n, dim])");
        }
        const at::Tensor terms = in.reshape({n, k, in.size(1)}) * w.unsqueeze(-1);
        out.zero_();
        for (int64_t s = 0; s < k; ++s) out.add_(terms.select(1, s));  // in order of s, as the contract says
    }

  private:
    // y [n, dim] (f32) = table[ids] for a [vocab, dim] table of any float dtype.
    static void gather_into(const at::Tensor& table, const tfx_tensor* ids, tfx_tensor* y, const char* op) {
        const at::Tensor index = indices(ids, op, "ids");
        at::Tensor out = rows(y, op, "output");
        if (out.size(0) != index.numel() || out.size(1) != table.size(1)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": output " + shape_of(y) + " does not fit " +
                                                      std::to_string(index.numel()) + " rows of " +
                                                      std::to_string(table.size(1)));
        }
        check_range(index, table.size(0), op, "id");
        out.copy_(table.index_select(0, index));
    }

    // y = a op b, b the same shape as a or a vector broadcast over its rows.
    static void binary(const char* op, const tfx_tensor* a, const tfx_tensor* b, tfx_tensor* y, bool sum) {
        at::Tensor ra = rows(a, op, "a"), rb = rows(b, op, "b"), out = rows(y, op, "output");
        require_same(ra, out, op);
        if (rb.numel() == ra.numel()) {
            rb = rb.reshape(ra.sizes());
        } else if (rb.numel() == ra.size(1)) {
            rb = rb.reshape({1, ra.size(1)});
        } else {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": b must match a or be a row vector");
        }
        if (sum) {
            at::add_out(out, ra, rb);
        } else {
            at::mul_out(out, ra, rb);
        }
    }

    std::mutex memory_mutex_;
    std::unordered_set<void*> owned_;
};

int32_t run_kernel(void*, tfx_kernel_fn kernel, void* ctx, tfx_error* error) noexcept {
    if (kernel == nullptr) {
        sdk::fill_error(error, TFX_ERR_INVALID_ARGUMENT, "run_kernel: kernel is missing");
        return TFX_ERR_INVALID_ARGUMENT;
    }
    return kernel(ctx, error);
}

template <auto Method>
inline constexpr auto op = sdk::method<Method>;

const tfx_backend_ops kOps = {
    sizeof(tfx_backend_ops),
    op<&TorchBackend::alloc>,
    [](void* self, void* data) { static_cast<TorchBackend*>(self)->release(data); },
    op<&TorchBackend::map_host>,
    op<&TorchBackend::upload>,
    op<&TorchBackend::download>,
    run_kernel,
    op<&TorchBackend::pack_weight>,
    [](void* self, tfx_weight* w) { static_cast<TorchBackend*>(self)->release_weight(w); },
    op<&TorchBackend::linear>,
    op<&TorchBackend::embedding>,
    op<&TorchBackend::rms_norm>,
    op<&TorchBackend::layer_norm>,
    op<&TorchBackend::rope>,
    op<&TorchBackend::activation>,
    op<&TorchBackend::gated_activation>,
    op<&TorchBackend::add>,
    op<&TorchBackend::mul>,
    op<&TorchBackend::scale>,
    op<&TorchBackend::softmax>,
    op<&TorchBackend::softcap>,
    op<&TorchBackend::copy>,
    op<&TorchBackend::gather_rows>,
    op<&TorchBackend::top_k>,
    op<&TorchBackend::linear_experts>,
    op<&TorchBackend::weighted_sum>,
    op<&TorchBackend::embedding_packed>,
    op<&TorchBackend::linear_many>,
};

}  // namespace
}  // namespace tfx::torch_backend

TFX_PLUGIN_EXPORT(tfx::torch_backend::TorchBackend, tfx::torch_backend::kOps)
