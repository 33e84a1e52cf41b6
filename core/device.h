// The session backend's memory as host code sees it (ABI 2.0: memory belongs to the backend):
// allocations that free themselves, transfers to and from the host, device-side copies. Calls
// go through the host's forwarding table, so they are validated and traced like every op.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "tfx/backend.h"
#include "tfx/sdk/tensor.hpp"

namespace tfx {

// `--device NAME[:N]` (TFX_DEVICE, LoadOptions::device): a backend or device kind ("cpu",
// "torch", "cuda", "auto") and the index of one of its devices, 0 when not given. Throws
// sdk::Error naming the text when the index is not a small non-negative number, or is given
// to "auto".
struct DeviceSpec {
    std::string name;
    int32_t index = 0;
};
DeviceSpec parse_device_spec(const std::string& text);

class Device;

// One allocation on a backend's device, freed with the object.
class DeviceAllocation {
  public:
    DeviceAllocation() = default;
    DeviceAllocation(const Device* device, void* data, uint64_t bytes) : device_(device), data_(data), bytes_(bytes) {}
    DeviceAllocation(DeviceAllocation&& other) noexcept { *this = std::move(other); }
    DeviceAllocation& operator=(DeviceAllocation&& other) noexcept;
    DeviceAllocation(const DeviceAllocation&) = delete;
    DeviceAllocation& operator=(const DeviceAllocation&) = delete;
    ~DeviceAllocation() { reset(); }

    void* data() const { return data_; }
    uint64_t bytes() const { return bytes_; }

  private:
    void reset();
    const Device* device_ = nullptr;
    void* data_ = nullptr;
    uint64_t bytes_ = 0;
};

class Device {
  public:
    Device(const tfx_backend_ops* ops, void* self, tfx_device device) : ops_(ops), self_(self), device_(device) {}

    tfx_device device() const { return device_; }
    DeviceAllocation alloc(uint64_t bytes) const;
    // Device memory holding a read-only copy of host memory (or the host memory itself, on a
    // backend whose device is host memory); free with free().
    void* map_host(const void* host, uint64_t bytes) const;
    void free(void* data) const;
    void upload(const void* host, sdk::View& dst) const;
    void download(const sdk::View& src, void* host) const;
    void copy(const sdk::View& src, sdk::View& dst) const;
    // A compact view of `shape` at the start of an allocation.
    sdk::View view(const DeviceAllocation& a, tfx_dtype dtype, std::initializer_list<int64_t> shape) const {
        return sdk::View(a.data(), dtype, shape, device_);
    }

  private:
    const tfx_backend_ops* ops_;
    void* self_;
    tfx_device device_;
};

}  // namespace tfx
