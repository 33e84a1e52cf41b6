// A backend plugin loaded straight from its library (dlopen and its descriptor, no host), with
// device tensors that go through the backend's own alloc, upload and download.
#pragma once

#include <dlfcn.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tfx/sdk/error.hpp"
#include "tfx/sdk/tensor.hpp"
#include "tfx/tfx.h"

namespace tfx::test {

using sdk::kBF16;
using sdk::kF16;
using sdk::kF32;
using sdk::kI32;

inline const tfx_plugin_descriptor* load_descriptor(const std::string& path) {
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);  // kept loaded for the process's life
    if (handle == nullptr) throw std::runtime_error("cannot load " + path + ": " + dlerror());
    auto entry = reinterpret_cast<tfx_plugin_entry_fn>(dlsym(handle, TFX_PLUGIN_ENTRY_SYMBOL));
    if (entry == nullptr) throw std::runtime_error(path + " has no " TFX_PLUGIN_ENTRY_SYMBOL);
    const tfx_plugin_descriptor* d = entry();
    if (d == nullptr || d->magic != TFX_PLUGIN_MAGIC || d->abi_major != TFX_ABI_MAJOR || d->kind != TFX_KIND_BACKEND) {
        throw std::runtime_error(path + " is not a backend plugin of ABI " + std::to_string(TFX_ABI_MAJOR));
    }
    return d;
}

// A device tensor: its own shape storage, memory from the backend (released with the Backend).
struct DeviceTensor {
    std::vector<int64_t> shape;  // t.shape points into it (moves keep the buffer; no copies)
    tfx_tensor t{};

    DeviceTensor() = default;
    DeviceTensor(DeviceTensor&&) = default;
    DeviceTensor& operator=(DeviceTensor&&) = default;
    DeviceTensor(const DeviceTensor&) = delete;
    DeviceTensor& operator=(const DeviceTensor&) = delete;

    operator tfx_tensor*() { return &t; }  // passes straight to ops
    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        return n;
    }
};

class Backend {
  public:
    explicit Backend(const std::string& path)
        : descriptor_(load_descriptor(path)), ops_(*static_cast<const tfx_backend_ops*>(descriptor_->get_table())) {
        static const tfx_host_services host = [] {
            tfx_host_services h{};
            h.struct_size = sizeof(tfx_host_services);
            h.abi_major = TFX_ABI_MAJOR;
            h.abi_minor = TFX_ABI_MINOR;
            h.option = [](void*, const char*) -> const char* { return nullptr; };
            h.device = {TFX_DEVICE_CPU, 0};
            return h;
        }();
        tfx_error error = sdk::empty_error();
        sdk::check(descriptor_->create(&host, &self_, &error), error);
    }
    ~Backend() {
        weights_.clear();
        for (void* p : blocks_) ops_.release(self_, p);
        descriptor_->destroy(self_);
    }
    Backend(const Backend&) = delete;
    Backend& operator=(const Backend&) = delete;

    const tfx_plugin_descriptor& descriptor() const { return *descriptor_; }
    const tfx_backend_ops& ops() const { return ops_; }
    void* self() const { return self_; }

    // Turns a status into an exception with the backend's message.
    static void check(int32_t status, const tfx_error& error) { sdk::check(status, error); }

    void* alloc_bytes(uint64_t bytes) {
        void* p = nullptr;
        tfx_error error = sdk::empty_error();
        check(ops_.alloc(self_, bytes, &p, &error), error);
        blocks_.push_back(p);
        return p;
    }

    DeviceTensor alloc(tfx_dtype dtype, std::initializer_list<int64_t> shape) {
        DeviceTensor d;
        d.shape.assign(shape);
        d.t.dtype = dtype;
        d.t.ndim = static_cast<int32_t>(d.shape.size());
        d.t.shape = d.shape.data();
        d.t.device = {TFX_DEVICE_CPU, 0};
        d.t.data = alloc_bytes(static_cast<uint64_t>(d.numel()) * dtype.bits / 8);
        return d;
    }

    template <class T>
    DeviceTensor upload(const std::vector<T>& host, tfx_dtype dtype, std::initializer_list<int64_t> shape) {
        DeviceTensor d = alloc(dtype, shape);
        EXPECT_EQ(static_cast<int64_t>(host.size() * sizeof(T)), d.numel() * dtype.bits / 8);
        tfx_error error = sdk::empty_error();
        check(ops_.upload(self_, host.data(), &d.t, &error), error);
        return d;
    }
    DeviceTensor upload(const std::vector<float>& host, std::initializer_list<int64_t> shape) {
        return upload(host, kF32, shape);
    }
    DeviceTensor upload(const std::vector<int32_t>& host, std::initializer_list<int64_t> shape) {
        return upload(host, kI32, shape);
    }

    template <class T = float>
    std::vector<T> download(const DeviceTensor& d) {
        std::vector<T> host(static_cast<size_t>(d.numel() * d.t.dtype.bits / 8) / sizeof(T));
        tfx_error error = sdk::empty_error();
        check(ops_.download(self_, &d.t, host.data(), &error), error);
        return host;
    }

    // A packed weight released with the Backend.
    tfx_weight* pack(const tfx_tensor* w, const char* format) {
        tfx_weight* out = nullptr;
        tfx_error error = sdk::empty_error();
        check(ops_.pack_weight(self_, w, format, &out, &error), error);
        weights_.emplace_back(out, Release{this});
        return out;
    }

  private:
    struct Release {
        Backend* b;
        void operator()(tfx_weight* w) const { b->ops_.release_weight(b->self_, w); }
    };

    const tfx_plugin_descriptor* descriptor_;
    const tfx_backend_ops& ops_;
    void* self_ = nullptr;
    std::vector<void*> blocks_;
    std::vector<std::unique_ptr<tfx_weight, Release>> weights_;
};

// Runs an op call expression `call(error)`: throws on failure.
template <class Call>
void run_op(Call&& call) {
    tfx_error error = sdk::empty_error();
    sdk::check(call(&error), error);
}

// The status and message of a call expected to fail.
struct Failure {
    int32_t status;
    std::string message;
};
template <class Call>
Failure failure_of(Call&& call) {
    tfx_error error = sdk::empty_error();
    const int32_t status = call(&error);
    return {status, status != TFX_OK ? std::string(error.message) : std::string()};
}

}  // namespace tfx::test
