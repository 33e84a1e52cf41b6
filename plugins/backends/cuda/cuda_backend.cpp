// The cuda backend: activations, KV blocks and weights in device memory (cudaMalloc), weights
// moved to the device once at load (map_host), matmuls by cuBLAS (f32, without TF32 so results
// stay within the goldens' 1e-4), every other op by this plugin's kernels (cuda_kernels.cu), all
// on the default stream in call order (cuBLAS opened at run time, see Cublas). Weights are packed as f32 holding the
// values of their format (bf16/f16 rounded), as on the cpu backend. score() is 0 where no driver or device is present,
// so the host never picks it there (and never fails because of it).
//
// First version: correct before fast. It has been compiled, not yet run on a GPU; the golden
// tests run on it where a device exists (tests/integration, backend "cuda").
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "cuda_kernels.h"
#include "tfx/backend.h"
#include "tfx/host.h"
#include "tfx/sdk/error.hpp"
#include "tfx/sdk/plugin.hpp"
#include "tfx/sdk/tensor.hpp"

// A packed weight: [out_features, in_features] f32, row-major, in device memory.
struct tfx_weight {
    float* data = nullptr;
    int64_t out_features = 0, in_features = 0;
};

namespace tfx::cuda {
namespace {

using sdk::Error;
using sdk::kBF16;
using sdk::kF16;
using sdk::kF32;
using sdk::kI32;

void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) {
        throw Error(status == cudaErrorMemoryAllocation ? TFX_ERR_OUT_OF_MEMORY : TFX_ERR_INTERNAL,
                    std::string(what) + ": " + cudaGetErrorString(status));
    }
}

void check(cublasStatus_t status, const char* what) {
    if (status != CUBLAS_STATUS_SUCCESS) {
        throw Error(TFX_ERR_INTERNAL,
                    std::string(what) + ": cuBLAS status " + std::to_string(static_cast<int>(status)));
    }
}

std::string shape_of(const tfx_tensor* t) {
    std::string s = "[";
    for (int i = 0; i < t->ndim; ++i) s += (i ? ", " : "") + std::to_string(t->shape[i]);
    return s + "]";
}

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

char* base_of(const tfx_tensor* t) {
    return static_cast<char*>(t->data) + t->byte_offset;
}

// A tensor's data on this device, checked: present, at most 8 dims, no negative dims.
void require(const tfx_tensor* t, const char* op, const char* what) {
    if (t == nullptr || t->ndim < 0 || t->ndim > 8 || (t->data == nullptr && numel(t) != 0)) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " is missing or malformed");
    }
    for (int i = 0; i < t->ndim; ++i) {
        if (t->shape[i] < 0)
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " has a negative dim");
    }
}

// A compact f32 tensor as rows of its last dimension.
struct Rows {
    float* data;
    int64_t rows, dim;
};
Rows rows_of(const tfx_tensor* t, const char* op, const char* what) {
    require(t, op, what);
    if (!(t->dtype == kF32) || !compact(t)) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " must be a compact f32 tensor, is " +
                                                  sdk::dtype_name(t->dtype) + " " + shape_of(t));
    }
    const int64_t dim = t->ndim == 0 ? 1 : t->shape[t->ndim - 1];
    return {reinterpret_cast<float*>(base_of(t)), dim == 0 ? 0 : numel(t) / dim, dim};
}

const int32_t* indices_of(const tfx_tensor* t, const char* op, const char* what, int64_t* count) {
    require(t, op, what);
    if (!(t->dtype == kI32) || !compact(t)) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": " + what + " must be a compact i32 tensor");
    }
    *count = numel(t);
    return reinterpret_cast<const int32_t*>(base_of(t));
}

void require_same(const Rows& a, const Rows& b, const char* op) {
    if (a.rows != b.rows || a.dim != b.dim) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": operand shapes differ");
    }
}

Elem elem_of(tfx_dtype d, const char* op) {
    if (d == kF32) return Elem::f32;
    if (d == kBF16) return Elem::bf16;
    if (d == kF16) return Elem::f16;
    throw Error(TFX_ERR_UNSUPPORTED, std::string(op) + ": dtype " + sdk::dtype_name(d) + " is not f32, bf16 or f16");
}

// cuBLAS, opened when a backend is created (so where a device is): linked, its 600 MB of
// libraries would load into every run, GPU or not, just to learn there is no device (67 ms).
class Cublas {
  public:
    Cublas() {
        const std::string name = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
        library_ = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (library_ == nullptr) throw Error(TFX_ERR_NOT_FOUND, "cuda backend: cannot open " + name + ": " + dlerror());
        create = symbol<decltype(&cublasCreate_v2)>("cublasCreate_v2");
        destroy = symbol<decltype(&cublasDestroy_v2)>("cublasDestroy_v2");
        set_math_mode = symbol<decltype(&cublasSetMathMode)>("cublasSetMathMode");
        sgemm = symbol<decltype(&cublasSgemm_v2)>("cublasSgemm_v2");
    }
    ~Cublas() { dlclose(library_); }
    Cublas(const Cublas&) = delete;
    Cublas& operator=(const Cublas&) = delete;

    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetMathMode) set_math_mode;
    decltype(&cublasSgemm_v2) sgemm;

  private:
    template <class Fn>
    Fn symbol(const char* name) {
        void* address = dlsym(library_, name);
        if (address == nullptr) throw Error(TFX_ERR_NOT_FOUND, std::string("cuda backend: cuBLAS lacks ") + name);
        return reinterpret_cast<Fn>(address);
    }
    void* library_ = nullptr;
};

class CudaBackend {
  public:
    explicit CudaBackend(const tfx_host_services* host) {
        // --device cuda:N: the host stamps N on every tensor; this backend computes there.
        const int index = host != nullptr ? host->device.device_id : 0;
        int count = 0;
        check(cudaGetDeviceCount(&count), "cuda backend: cudaGetDeviceCount");
        if (index >= count) {
            throw Error(TFX_ERR_INVALID_ARGUMENT,
                        "cuda backend: device cuda:" + std::to_string(index) + " does not exist (" +
                            std::to_string(count) +
                            " CUDA device(s) here: cuda:0 to cuda:" + std::to_string(count - 1) + ")");
        }
        index_ = index;
        check(cudaSetDevice(index), "cuda backend: cudaSetDevice");
        check(cublas_.create(&blas_), "cuda backend: cublasCreate");
        // Plain f32 FMA: TF32 tensor cores would be 1e-3 off the goldens.
        check(cublas_.set_math_mode(blas_, CUBLAS_PEDANTIC_MATH), "cuda backend: cublasSetMathMode");
    }
    ~CudaBackend() {
        for (void* p : owned_) cudaFree(p);
        cudaFree(scratch_);
        cublas_.destroy(blas_);
    }
    // The device this backend computes on, made current on the calling thread before each op
    // (the host may call from any thread; cudaSetDevice is per thread).
    int index() const { return index_; }
    CudaBackend(const CudaBackend&) = delete;
    CudaBackend& operator=(const CudaBackend&) = delete;

    // 0 without a driver or a device: the host then never creates it.
    static int32_t score() { return unavailable_reason().empty() ? 200 : 0; }
    // What `tfx env` shows when score() is 0.
    static std::string unavailable_reason() {
        int count = 0;
        const cudaError_t status = cudaGetDeviceCount(&count);
        cudaGetLastError();  // clear the sticky "no driver" error
        if (status == cudaErrorInsufficientDriver) {
            return std::string("no CUDA driver (or one older than this CUDA runtime, ") +
                   std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10) +
                   "): " + cudaGetErrorString(status);
        }
        if (status == cudaErrorNoDevice || (status == cudaSuccess && count == 0)) return "no CUDA device";
        if (status != cudaSuccess) return std::string("CUDA cannot list devices: ") + cudaGetErrorString(status);
        return {};
    }

    // ---- memory and transfers ----

    void alloc(uint64_t bytes, void** data) {
        if (data == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "alloc: data is missing");
        *data = nullptr;
        void* p = nullptr;
        check(cudaMalloc(&p, std::max<uint64_t>(bytes, 64)), "alloc");  // 256-byte aligned
        std::lock_guard lock(memory_mutex_);
        owned_.insert(p);
        *data = p;
    }
    void release(void* data) noexcept {
        if (data == nullptr) return;
        std::lock_guard lock(memory_mutex_);
        if (owned_.erase(data) != 0) cudaFree(data);
    }
    // Checkpoint bytes move to the device once.
    void map_host(const void* host, uint64_t bytes, void** data) {
        if (host == nullptr && bytes != 0) throw Error(TFX_ERR_INVALID_ARGUMENT, "map_host: host is missing");
        alloc(bytes, data);
        check(cudaMemcpy(*data, host, bytes, cudaMemcpyHostToDevice), "map_host");
    }
    void upload(const void* host, tfx_tensor* dst) {
        require(dst, "upload", "dst");
        if (!compact(dst)) throw Error(TFX_ERR_INVALID_ARGUMENT, "upload: dst must be compact");
        const uint64_t bytes = static_cast<uint64_t>(numel(dst)) * (dst->dtype.bits / 8);
        if (bytes == 0) return;
        if (host == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "upload: host is missing");
        check(cudaMemcpy(base_of(dst), host, bytes, cudaMemcpyHostToDevice), "upload");
    }
    void download(const tfx_tensor* src, void* host) {
        require(src, "download", "src");
        if (!compact(src)) throw Error(TFX_ERR_INVALID_ARGUMENT, "download: src must be compact");
        const uint64_t bytes = static_cast<uint64_t>(numel(src)) * (src->dtype.bits / 8);
        if (bytes == 0) return;
        if (host == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "download: host is missing");
        check(cudaMemcpy(host, base_of(src), bytes, cudaMemcpyDeviceToHost), "download");
    }

    // ---- weights ----

    void pack_weight(const tfx_tensor* w, const char* format, tfx_weight** out) {
        if (out == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "pack_weight: out is missing");
        require(w, "pack_weight", "weight");
        if (w->ndim != 2) throw Error(TFX_ERR_INVALID_ARGUMENT, "pack_weight: expected a 2-D weight [out, in]");
        const Elem stored = elem_of(w->dtype, "pack_weight");
        Elem rounded = stored;
        if (format != nullptr) {
            if (std::strcmp(format, "f32") == 0) {
                rounded = Elem::f32;
            } else if (std::strcmp(format, "bf16") == 0) {
                rounded = Elem::bf16;
            } else if (std::strcmp(format, "f16") == 0) {
                rounded = Elem::f16;
            } else {
                throw Error(TFX_ERR_UNSUPPORTED, std::string("pack_weight: weight format '") + format +
                                                     "' is not supported by the cuda backend (f32, bf16, f16)");
            }
        }
        const int64_t n = numel(w);
        auto packed = std::make_unique<tfx_weight>();
        packed->out_features = w->shape[0];
        packed->in_features = w->shape[1];
        void* data = nullptr;
        alloc(static_cast<uint64_t>(n) * sizeof(float), &data);
        packed->data = static_cast<float*>(data);
        // Any strides (GPT-2's Conv1D comes transposed): a compact copy in the stored dtype first.
        const int32_t elem_bytes = w->dtype.bits / 8;
        void* source = base_of(w);
        void* staged = nullptr;
        if (!compact(w)) {
            alloc(static_cast<uint64_t>(n) * elem_bytes, &staged);
            StridedCopy layout{
                2, elem_bytes, {w->shape[0], w->shape[1]}, {w->strides[0], w->strides[1]}, {w->shape[1], 1}};
            strided_copy(source, staged, layout, n, nullptr);
            source = staged;
        }
        widen_to_f32(source, stored, packed->data, n, nullptr);
        if (rounded != Elem::f32) round_through(packed->data, rounded, n, nullptr);
        check(cudaGetLastError(), "pack_weight");
        release(staged);
        *out = packed.release();
    }
    void release_weight(tfx_weight* w) noexcept {
        if (w == nullptr) return;
        release(w->data);
        delete w;
    }

    // ---- compute ----

    void linear(const tfx_tensor* x, const tfx_weight* w, const tfx_tensor* bias, tfx_tensor* y) {
        if (w == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "linear: the weight is missing");
        Rows in = rows_of(x, "linear", "input"), out = rows_of(y, "linear", "output");
        if (in.dim != w->in_features || out.dim != w->out_features || in.rows != out.rows) {
            throw Error(TFX_ERR_INVALID_ARGUMENT,
                        "linear: input " + shape_of(x) + " and output " + shape_of(y) + " do not fit the weight");
        }
        matmul(in.data, w, out.data, in.rows);
        if (bias != nullptr) {
            Rows b = rows_of(bias, "linear", "bias");
            if (b.rows * b.dim != out.dim) throw Error(TFX_ERR_INVALID_ARGUMENT, "linear: bias does not fit");
            add_bias(out.data, b.data, out.rows, out.dim, nullptr);
        }
        check(cudaGetLastError(), "linear");
    }
    void linear_many(const tfx_tensor* x, const tfx_weight* const* ws, const tfx_tensor* const* biases, int32_t count,
                     tfx_tensor* const* ys) {
        if (ws == nullptr || ys == nullptr || count < 0)
            throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_many: bad arguments");
        for (int32_t i = 0; i < count; ++i) linear(x, ws[i], biases != nullptr ? biases[i] : nullptr, ys[i]);
    }

    void embedding(const tfx_tensor* table, const tfx_tensor* ids, tfx_tensor* y) {
        require(table, "embedding", "table");
        if (table->ndim != 2 || !compact(table)) throw Error(TFX_ERR_INVALID_ARGUMENT, "embedding: table must be 2-D");
        gather_table(base_of(table), elem_of(table->dtype, "embedding"), table->shape[1], ids, y, "embedding");
    }
    void embedding_packed(const tfx_weight* table, const tfx_tensor* ids, tfx_tensor* y) {
        if (table == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "embedding_packed: the table is missing");
        gather_table(table->data, Elem::f32, table->in_features, ids, y, "embedding_packed");
    }

    void rms_norm(const tfx_tensor* x, const tfx_tensor* w, float eps, float offset, tfx_tensor* y) {
        Rows in = rows_of(x, "rms_norm", "input"), out = rows_of(y, "rms_norm", "output");
        Rows weight = rows_of(w, "rms_norm", "weight");
        require_same(in, out, "rms_norm");
        if (weight.rows * weight.dim != in.dim) throw Error(TFX_ERR_INVALID_ARGUMENT, "rms_norm: weight does not fit");
        cuda::rms_norm(in.data, weight.data, eps, offset, out.data, in.rows, in.dim, nullptr);
        check(cudaGetLastError(), "rms_norm");
    }
    void layer_norm(const tfx_tensor* x, const tfx_tensor* w, const tfx_tensor* b, float eps, tfx_tensor* y) {
        Rows in = rows_of(x, "layer_norm", "input"), out = rows_of(y, "layer_norm", "output");
        Rows weight = rows_of(w, "layer_norm", "weight");
        require_same(in, out, "layer_norm");
        const float* bias = b != nullptr ? rows_of(b, "layer_norm", "bias").data : nullptr;
        cuda::layer_norm(in.data, weight.data, bias, eps, out.data, in.rows, in.dim, nullptr);
        check(cudaGetLastError(), "layer_norm");
    }
    void rope(tfx_tensor* x, const tfx_tensor* positions, const tfx_tensor* inv_freq, float attention_scaling) {
        Rows v = rows_of(x, "rope", "input");
        if (x->ndim < 2) throw Error(TFX_ERR_INVALID_ARGUMENT, "rope: input must be [tokens, heads, head_dim]");
        int64_t count = 0;
        const int32_t* pos = indices_of(positions, "rope", "positions", &count);
        Rows freq = rows_of(inv_freq, "rope", "inv_freq");
        const int64_t heads = x->shape[x->ndim - 2];
        const int64_t tokens = heads == 0 ? 0 : v.rows / heads;
        const int64_t half = freq.rows * freq.dim;
        if (count != tokens || 2 * half > v.dim) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "rope: positions " + shape_of(positions) + " and inv_freq " +
                                                      shape_of(inv_freq) + " do not fit input " + shape_of(x));
        }
        cuda::rope(v.data, pos, freq.data, attention_scaling, tokens, heads, v.dim, half, nullptr);
        check(cudaGetLastError(), "rope");
    }
    void activation(int32_t act, const tfx_tensor* x, tfx_tensor* y) {
        check_activation(act);
        Rows in = rows_of(x, "activation", "input"), out = rows_of(y, "activation", "output");
        require_same(in, out, "activation");
        cuda::activation(act, in.data, out.data, in.rows * in.dim, nullptr);
        check(cudaGetLastError(), "activation");
    }
    void gated_activation(int32_t act, const tfx_tensor* gate, const tfx_tensor* up, tfx_tensor* y) {
        check_activation(act);
        Rows g = rows_of(gate, "gated_activation", "gate"), u = rows_of(up, "gated_activation", "up");
        Rows out = rows_of(y, "gated_activation", "output");
        require_same(g, u, "gated_activation");
        require_same(g, out, "gated_activation");
        cuda::gated_activation(act, g.data, u.data, out.data, g.rows * g.dim, nullptr);
        check(cudaGetLastError(), "gated_activation");
    }
    void add(const tfx_tensor* a, const tfx_tensor* b, tfx_tensor* y) { binary_op("add", true, a, b, y); }
    void mul(const tfx_tensor* a, const tfx_tensor* b, tfx_tensor* y) { binary_op("mul", false, a, b, y); }
    void scale(const tfx_tensor* x, float factor, tfx_tensor* y) {
        Rows in = rows_of(x, "scale", "input"), out = rows_of(y, "scale", "output");
        require_same(in, out, "scale");
        cuda::scale(in.data, factor, out.data, in.rows * in.dim, nullptr);
        check(cudaGetLastError(), "scale");
    }
    void softmax(const tfx_tensor* x, tfx_tensor* y) {
        Rows in = rows_of(x, "softmax", "input"), out = rows_of(y, "softmax", "output");
        require_same(in, out, "softmax");
        cuda::softmax(in.data, out.data, in.rows, in.dim, nullptr);
        check(cudaGetLastError(), "softmax");
    }
    void softcap(const tfx_tensor* x, float cap, tfx_tensor* y) {
        if (!(cap > 0.0f)) throw Error(TFX_ERR_INVALID_ARGUMENT, "softcap: cap must be positive");
        Rows in = rows_of(x, "softcap", "input"), out = rows_of(y, "softcap", "output");
        require_same(in, out, "softcap");
        cuda::softcap(in.data, cap, out.data, in.rows * in.dim, nullptr);
        check(cudaGetLastError(), "softcap");
    }
    void copy(const tfx_tensor* src, tfx_tensor* dst) {
        require(src, "copy", "source");
        require(dst, "copy", "destination");
        if (src->ndim != dst->ndim || !(src->dtype == dst->dtype)) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "copy: source and destination must have the same rank and dtype");
        }
        StridedCopy layout{src->ndim, src->dtype.bits / 8, {}, {}, {}};
        int64_t s = 1, d = 1;  // compact strides, for a view without its own
        for (int i = src->ndim - 1; i >= 0; --i) {
            if (src->shape[i] != dst->shape[i]) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "copy: shapes differ: " + shape_of(src) + " vs " + shape_of(dst));
            }
            layout.shape[i] = src->shape[i];
            layout.src_strides[i] = src->strides != nullptr ? src->strides[i] : s;
            layout.dst_strides[i] = dst->strides != nullptr ? dst->strides[i] : d;
            s *= src->shape[i];
            d *= dst->shape[i];
        }
        strided_copy(base_of(src), base_of(dst), layout, numel(src), nullptr);
        check(cudaGetLastError(), "copy");
    }
    void gather_rows(const tfx_tensor* x, const tfx_tensor* rows, tfx_tensor* y) {
        require(x, "gather_rows", "x");
        require(y, "gather_rows", "y");
        if (!(x->dtype == y->dtype) || !compact(x) || !compact(y) || x->ndim == 0 || y->ndim == 0) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "gather_rows: x and y must be compact, with rows, of one dtype");
        }
        int64_t count = 0;
        const int32_t* index = indices_of(rows, "gather_rows", "rows", &count);
        const int64_t row_bytes = x->shape[x->ndim - 1] * (x->dtype.bits / 8);
        if (y->shape[y->ndim - 1] * (y->dtype.bits / 8) != row_bytes || numel(y) / y->shape[y->ndim - 1] != count) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "gather_rows: y " + shape_of(y) + " does not fit " +
                                                      std::to_string(count) + " rows of x " + shape_of(x));
        }
        cuda::gather_rows(base_of(x), index, base_of(y), count, row_bytes, nullptr);
        check(cudaGetLastError(), "gather_rows");
    }
    void top_k(const tfx_tensor* x, int32_t k, int32_t normalize, tfx_tensor* ids, tfx_tensor* weights) {
        Rows p = rows_of(x, "top_k", "x");
        if (k < 1 || k > p.dim) throw Error(TFX_ERR_INVALID_ARGUMENT, "top_k: k out of range for x " + shape_of(x));
        int64_t count = 0;
        const int32_t* choice = indices_of(ids, "top_k", "ids", &count);
        Rows w = rows_of(weights, "top_k", "weights");
        if (count != p.rows * k || w.rows != p.rows || w.dim != k) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "top_k: ids and weights must be [rows of x, k]");
        }
        cuda::top_k(p.data, k, normalize != 0, const_cast<int32_t*>(choice), w.data, p.rows, p.dim, nullptr);
        check(cudaGetLastError(), "top_k");
    }
    // Each token through its chosen experts: the expert ids come to the host (a few bytes) to
    // group the rows by expert; each group is gathered, multiplied by cuBLAS and scattered back.
    void linear_experts(const tfx_tensor* x, const tfx_weight* const* experts, int32_t count, const tfx_tensor* ids,
                        tfx_tensor* y) {
        if (experts == nullptr || count <= 0) throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: no experts");
        int64_t routed = 0;
        const int32_t* choice = indices_of(ids, "linear_experts", "ids", &routed);
        if (ids->ndim != 2) throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: ids must be [n, k]");
        const int64_t n = ids->shape[0], k = ids->shape[1];
        Rows in = rows_of(x, "linear_experts", "x"), out = rows_of(y, "linear_experts", "y");
        if ((in.rows != routed && in.rows != n) || out.rows != routed) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: x " + shape_of(x) + " and y " + shape_of(y) +
                                                      " do not fit ids " + shape_of(ids));
        }
        if (routed == 0) return;
        std::vector<int32_t> host_ids(static_cast<size_t>(routed));
        check(cudaMemcpy(host_ids.data(), choice, routed * sizeof(int32_t), cudaMemcpyDeviceToHost), "linear_experts");
        const bool shared = in.rows != routed;
        std::vector<std::vector<int32_t>> slots(static_cast<size_t>(count));
        for (int64_t r = 0; r < routed; ++r) {
            const int32_t e = host_ids[static_cast<size_t>(r)];
            if (e < 0 || e >= count || experts[e] == nullptr || experts[e]->in_features != in.dim ||
                experts[e]->out_features != out.dim) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "linear_experts: expert id " + std::to_string(e) +
                                                          " is out of range, missing or does not fit");
            }
            slots[static_cast<size_t>(e)].push_back(static_cast<int32_t>(r));
        }
        // Scratch: the group's input rows, output rows and both index lists.
        const size_t floats = static_cast<size_t>(routed) * static_cast<size_t>(in.dim + out.dim);
        char* base = grow_scratch(floats * sizeof(float) + 2 * static_cast<size_t>(routed) * sizeof(int32_t));
        float* xs = reinterpret_cast<float*>(base);
        float* ys = xs + routed * in.dim;
        auto* sources = reinterpret_cast<int32_t*>(ys + routed * out.dim);
        int32_t* targets = sources + routed;
        for (int32_t e = 0; e < count; ++e) {
            const std::vector<int32_t>& rows = slots[static_cast<size_t>(e)];
            if (rows.empty()) continue;
            std::vector<int32_t> from(rows);
            if (shared) {
                for (int32_t& r : from) r = static_cast<int32_t>(r / k);
            }
            const auto m = static_cast<int64_t>(rows.size());
            check(cudaMemcpy(sources, from.data(), m * sizeof(int32_t), cudaMemcpyHostToDevice), "linear_experts");
            check(cudaMemcpy(targets, rows.data(), m * sizeof(int32_t), cudaMemcpyHostToDevice), "linear_experts");
            cuda::gather_rows(in.data, sources, xs, m, in.dim * static_cast<int64_t>(sizeof(float)), nullptr);
            matmul(xs, experts[e], ys, m);
            scatter_rows(ys, targets, out.data, m, out.dim, nullptr);
        }
        check(cudaGetLastError(), "linear_experts");
    }
    void weighted_sum(const tfx_tensor* x, const tfx_tensor* weights, tfx_tensor* y) {
        Rows in = rows_of(x, "weighted_sum", "x"), w = rows_of(weights, "weighted_sum", "weights");
        Rows out = rows_of(y, "weighted_sum", "y");
        if (in.rows != w.rows * w.dim || out.rows != w.rows || out.dim != in.dim) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "weighted_sum: x [n, k, dim], weights [n, k], y [n, dim] do not fit");
        }
        cuda::weighted_sum(in.data, w.data, out.data, w.rows, w.dim, in.dim, nullptr);
        check(cudaGetLastError(), "weighted_sum");
    }

  private:
    static void check_activation(int32_t act) {
        if (act < TFX_ACT_SILU || act > TFX_ACT_TANH) {
            throw Error(TFX_ERR_UNSUPPORTED, "unknown activation id " + std::to_string(act));
        }
    }

    // y[rows, out] = x[rows, in] · wᵀ. Row-major y is column-major yᵀ [out, rows] = w (read as
    // column-major [in, out], transposed) times x (column-major [in, rows]).
    void matmul(const float* x, const tfx_weight* w, float* y, int64_t rows) {
        if (rows == 0) return;
        const float one = 1.0f, zero = 0.0f;
        check(cublas_.sgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w->out_features), static_cast<int>(rows),
                            static_cast<int>(w->in_features), &one, w->data, static_cast<int>(w->in_features), x,
                            static_cast<int>(w->in_features), &zero, y, static_cast<int>(w->out_features)),
              "linear: cublasSgemm");
    }

    void gather_table(const void* table, Elem elem, int64_t dim, const tfx_tensor* ids, tfx_tensor* y, const char* op) {
        int64_t count = 0;
        const int32_t* id = indices_of(ids, op, "ids", &count);
        Rows out = rows_of(y, op, "output");
        if (out.rows != count || out.dim != dim) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": output " + shape_of(y) + " does not fit");
        }
        cuda::embedding(table, elem, id, out.data, count, dim, nullptr);
        check(cudaGetLastError(), op);
    }

    void binary_op(const char* op, bool sum, const tfx_tensor* a, const tfx_tensor* b, tfx_tensor* y) {
        Rows ra = rows_of(a, op, "a"), rb = rows_of(b, op, "b"), out = rows_of(y, op, "output");
        require_same(ra, out, op);
        const int64_t n = ra.rows * ra.dim, b_count = rb.rows * rb.dim;
        if (b_count != n && b_count != ra.dim) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(op) + ": b must match a or be a row vector");
        }
        binary(sum, ra.data, rb.data, out.data, n, b_count, ra.dim, nullptr);
        check(cudaGetLastError(), op);
    }

    char* grow_scratch(size_t bytes) {
        if (bytes > scratch_bytes_) {
            cudaFree(scratch_);
            scratch_ = nullptr;
            scratch_bytes_ = 0;
            check(cudaMalloc(&scratch_, bytes), "cuda backend: scratch");
            scratch_bytes_ = bytes;
        }
        return static_cast<char*>(scratch_);
    }

    int index_ = 0;  // cuda:N
    Cublas cublas_;
    cublasHandle_t blas_ = nullptr;
    void* scratch_ = nullptr;
    size_t scratch_bytes_ = 0;
    std::mutex memory_mutex_;
    std::unordered_set<void*> owned_;
};

int32_t run_kernel(void* self, tfx_kernel_fn kernel, void* ctx, tfx_error* error) noexcept {
    if (kernel == nullptr) {
        sdk::fill_error(error, TFX_ERR_INVALID_ARGUMENT, "run_kernel: kernel is missing");
        return TFX_ERR_INVALID_ARGUMENT;
    }
    if (cudaSetDevice(static_cast<CudaBackend*>(self)->index()) != cudaSuccess) {
        sdk::fill_error(error, TFX_ERR_INTERNAL, "run_kernel: cudaSetDevice failed");
        return TFX_ERR_INTERNAL;
    }
    return kernel(ctx, error);
}

// void CudaBackend::fn(Args...) as an op: the backend's device made current, then the call.
template <auto Method>
struct OnDevice;
template <class... Args, void (CudaBackend::*Method)(Args...)>
struct OnDevice<Method> {
    static int32_t call(void* self, Args... args, tfx_error* error) noexcept {
        return sdk::guard(error, [&] {
            auto* backend = static_cast<CudaBackend*>(self);
            check(cudaSetDevice(backend->index()), "cudaSetDevice");
            (backend->*Method)(args...);
        });
    }
};
template <auto Method>
inline constexpr auto op = &OnDevice<Method>::call;

const tfx_backend_ops kOps = {
    sizeof(tfx_backend_ops),
    op<&CudaBackend::alloc>,
    [](void* self, void* data) { static_cast<CudaBackend*>(self)->release(data); },
    op<&CudaBackend::map_host>,
    op<&CudaBackend::upload>,
    op<&CudaBackend::download>,
    run_kernel,
    op<&CudaBackend::pack_weight>,
    [](void* self, tfx_weight* w) { static_cast<CudaBackend*>(self)->release_weight(w); },
    op<&CudaBackend::linear>,
    op<&CudaBackend::embedding>,
    op<&CudaBackend::rms_norm>,
    op<&CudaBackend::layer_norm>,
    op<&CudaBackend::rope>,
    op<&CudaBackend::activation>,
    op<&CudaBackend::gated_activation>,
    op<&CudaBackend::add>,
    op<&CudaBackend::mul>,
    op<&CudaBackend::scale>,
    op<&CudaBackend::softmax>,
    op<&CudaBackend::softcap>,
    op<&CudaBackend::copy>,
    op<&CudaBackend::gather_rows>,
    op<&CudaBackend::top_k>,
    op<&CudaBackend::linear_experts>,
    op<&CudaBackend::weighted_sum>,
    op<&CudaBackend::embedding_packed>,
    op<&CudaBackend::linear_many>,
};

}  // namespace
}  // namespace tfx::cuda

TFX_PLUGIN_EXPORT(tfx::cuda::CudaBackend, tfx::cuda::kOps)
