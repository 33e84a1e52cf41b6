// Tensor views with their own shape storage, so plugin code can build a tfx_tensor in one
// line and pass it across the ABI. A View never owns the data it points at.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

#include "tfx/sdk/error.hpp"
#include "tfx/tensor.h"

// In the global namespace so that argument-dependent lookup finds it for the C struct.
inline bool operator==(tfx_dtype a, tfx_dtype b) {
    return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

namespace tfx::sdk {

inline constexpr tfx_dtype kF32{TFX_DTYPE_FLOAT, 32, 1};
inline constexpr tfx_dtype kF16{TFX_DTYPE_FLOAT, 16, 1};
inline constexpr tfx_dtype kBF16{TFX_DTYPE_BFLOAT, 16, 1};
inline constexpr tfx_dtype kI32{TFX_DTYPE_INT, 32, 1};
inline constexpr tfx_device kHostDevice{TFX_DEVICE_CPU, 0};

inline std::string dtype_name(tfx_dtype d) {
    switch (d.code) {
        case TFX_DTYPE_FLOAT:
            return "f" + std::to_string(d.bits);
        case TFX_DTYPE_BFLOAT:
            return "bf" + std::to_string(d.bits);
        case TFX_DTYPE_INT:
            return "i" + std::to_string(d.bits);
        case TFX_DTYPE_UINT:
            return "u" + std::to_string(d.bits);
        case TFX_DTYPE_BOOL:
            return "bool";
        case TFX_DTYPE_FLOAT8_E4M3FN:
            return "f8_e4m3";
        case TFX_DTYPE_FLOAT8_E5M2:
            return "f8_e5m2";
        default:
            return "dtype(" + std::to_string(d.code) + ")";
    }
}

class View {
  public:
    static constexpr int kMaxDims = 8;

    View() { bind(); }
    // A view of memory on `device` (host memory: the default; a backend's memory: its device).
    View(void* data, tfx_dtype dtype, std::span<const int64_t> shape, tfx_device device = kHostDevice) {
        if (shape.size() > kMaxDims) throw Error(TFX_ERR_INVALID_ARGUMENT, "too many dims");
        std::copy(shape.begin(), shape.end(), shape_);
        t_.data = data;
        t_.dtype = dtype;
        t_.ndim = static_cast<int32_t>(shape.size());
        t_.device = device;
        bind();
    }
    View(void* data, tfx_dtype dtype, std::initializer_list<int64_t> shape, tfx_device device = kHostDevice)
        : View(data, dtype, std::span<const int64_t>(shape.begin(), shape.size()), device) {}
    View(float* data, std::initializer_list<int64_t> shape) : View(data, kF32, shape) {}
    // Copies a view received across the ABI (shape and strides included).
    explicit View(const tfx_tensor& t) : t_(t) {
        if (t.ndim < 0 || t.ndim > kMaxDims) throw Error(TFX_ERR_INVALID_ARGUMENT, "bad ndim");
        std::copy(t.shape, t.shape + t.ndim, shape_);
        has_strides_ = t.strides != nullptr;
        if (has_strides_) std::copy(t.strides, t.strides + t.ndim, strides_);
        bind();
    }
    View(const View& other) { *this = other; }
    View& operator=(const View& other) {
        t_ = other.t_;
        std::copy(other.shape_, other.shape_ + kMaxDims, shape_);
        std::copy(other.strides_, other.strides_ + kMaxDims, strides_);
        has_strides_ = other.has_strides_;
        bind();
        return *this;
    }

    // The compact tensor of `shape` starting `offset` elements into this one, same dtype and
    // device: a reshape, a row range, a column block (with strides). Computes an address only;
    // the data is never touched, so this works on any device.
    View at(int64_t offset, std::initializer_list<int64_t> shape) const {
        const int64_t bytes = offset * (t_.dtype.bits / 8);
        View v(static_cast<char*>(t_.data) + t_.byte_offset + bytes, t_.dtype,
               std::span<const int64_t>(shape.begin(), shape.size()), t_.device);
        return v;
    }
    View reshape(std::initializer_list<int64_t> shape) const { return at(0, shape); }

    tfx_tensor* get() { return &t_; }
    const tfx_tensor* get() const { return &t_; }
    int ndim() const { return t_.ndim; }
    tfx_device device() const { return t_.device; }
    int64_t dim(int i) const { return shape_[i < 0 ? i + t_.ndim : i]; }
    std::span<const int64_t> shape() const { return {shape_, static_cast<size_t>(t_.ndim)}; }
    tfx_dtype dtype() const { return t_.dtype; }
    int64_t numel() const {
        int64_t n = 1;
        for (int i = 0; i < t_.ndim; ++i) n *= shape_[i];
        return n;
    }
    template <class T = float>
    T* data() const {
        return reinterpret_cast<T*>(static_cast<char*>(t_.data) + t_.byte_offset);
    }
    // Element strides; set for non-compact views (transposes, slices).
    View& with_strides(std::initializer_list<int64_t> strides) {
        std::copy(strides.begin(), strides.end(), strides_);
        has_strides_ = true;
        bind();
        return *this;
    }

  private:
    void bind() {
        t_.shape = shape_;
        t_.strides = has_strides_ ? strides_ : nullptr;
    }

    tfx_tensor t_{};
    int64_t shape_[kMaxDims]{};
    int64_t strides_[kMaxDims]{};
    bool has_strides_ = false;
};

}  // namespace tfx::sdk
