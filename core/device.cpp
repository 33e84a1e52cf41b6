#include "core/device.h"

#include <charconv>

#include "tfx/sdk/error.hpp"

namespace tfx {

DeviceSpec parse_device_spec(const std::string& text) {
    const size_t colon = text.find(':');
    if (colon == std::string::npos) return {text, 0};
    DeviceSpec spec{text.substr(0, colon), 0};
    const std::string digits = text.substr(colon + 1);
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), spec.index);
    if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() || spec.index < 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "device '" + text +
                                                       "': expected NAME or NAME:INDEX (cuda:1), with "
                                                       "a device index of 0 or more after the ':'");
    }
    if (spec.name == "auto") {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "device '" + text + "': auto picks the backend and takes no index");
    }
    return spec;
}

DeviceAllocation& DeviceAllocation::operator=(DeviceAllocation&& other) noexcept {
    if (this != &other) {
        reset();
        device_ = std::exchange(other.device_, nullptr);
        data_ = std::exchange(other.data_, nullptr);
        bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
}

void DeviceAllocation::reset() {
    if (device_ != nullptr && data_ != nullptr) device_->free(data_);
    data_ = nullptr;
    bytes_ = 0;
}

DeviceAllocation Device::alloc(uint64_t bytes) const {
    void* data = nullptr;
    tfx_error error = sdk::empty_error();
    sdk::check(ops_->alloc(self_, bytes == 0 ? 1 : bytes, &data, &error), error);
    return DeviceAllocation(this, data, bytes);
}

void* Device::map_host(const void* host, uint64_t bytes) const {
    void* data = nullptr;
    tfx_error error = sdk::empty_error();
    sdk::check(ops_->map_host(self_, host, bytes, &data, &error), error);
    return data;
}

void Device::free(void* data) const {
    ops_->release(self_, data);
}

void Device::upload(const void* host, sdk::View& dst) const {
    tfx_error error = sdk::empty_error();
    sdk::check(ops_->upload(self_, host, dst.get(), &error), error);
}

void Device::download(const sdk::View& src, void* host) const {
    tfx_error error = sdk::empty_error();
    sdk::check(ops_->download(self_, src.get(), host, &error), error);
}

void Device::copy(const sdk::View& src, sdk::View& dst) const {
    tfx_error error = sdk::empty_error();
    sdk::check(ops_->copy(self_, src.get(), dst.get(), &error), error);
}

}  // namespace tfx
