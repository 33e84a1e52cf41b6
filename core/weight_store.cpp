#include "core/weight_store.h"

#include <cstring>

#include "tfx/sdk/error.hpp"
#include "tfx/sdk/half.hpp"

namespace tfx {
namespace fs = std::filesystem;

WeightStore::WeightStore(const fs::path& model_dir) : checkpoint_(safetensors::Checkpoint::open(model_dir)) {
    const auto& files = checkpoint_->files();
    source_ = (model_dir / (files.size() == 1 ? files[0]->path().filename() : fs::path("model.safetensors.index.json")))
                  .string();
}

std::optional<safetensors::Checkpoint::Entry> WeightStore::find(const char* name) const {
    if (!checkpoint_ || name == nullptr) return std::nullopt;
    auto entry = checkpoint_->find(name);
    asked_.emplace(name);
    if (entry) asked_.emplace(entry->info->name);  // an alias (tied weights) uses the tensor it names
    return entry;
}

std::vector<std::string> WeightStore::unused() const {
    std::vector<std::string> out;
    if (!checkpoint_) return out;
    for (std::string& name : checkpoint_->names()) {
        if (!asked_.contains(name)) out.push_back(std::move(name));
    }
    return out;
}

WeightStore::Usage WeightStore::usage() const {
    Usage usage;
    if (!checkpoint_) return usage;
    for (const std::string& name : checkpoint_->names()) {
        if (!asked_.contains(name)) continue;
        const auto entry = checkpoint_->find(name.c_str());
        if (!entry) continue;
        usage.bytes += entry->info->end - entry->info->begin;
        uint64_t elements = 1;
        for (int64_t dim : entry->info->shape) elements *= static_cast<uint64_t>(dim);
        usage.elements += elements;
    }
    return usage;
}

safetensors::Checkpoint::Entry WeightStore::require(const char* name) const {
    auto entry = find(name);
    if (!entry) {
        throw sdk::Error(TFX_ERR_NOT_FOUND, source_ + ": tensor '" + std::string(name ? name : "") + "' not found");
    }
    return *entry;
}

tfx_tensor WeightStore::get(const char* name) {
    const auto entry = require(name);
    auto& shape = shapes_[name];
    shape = entry.info->shape;
    tfx_tensor out{};
    out.data = const_cast<uint8_t*>(entry.file->data(*entry.info));
    out.device = {TFX_DEVICE_CPU, 0};
    out.ndim = static_cast<int32_t>(shape.size());
    out.dtype = safetensors::to_abi(entry.info->dtype);
    out.shape = shape.data();
    return out;
}

tfx_tensor WeightStore::get_f32(const char* name) {
    auto it = f32_copies_.find(name != nullptr ? name : "");
    if (it == f32_copies_.end()) {
        const auto entry = require(name);
        const auto dtype = entry.info->dtype;
        F32Copy copy{{}, entry.info->shape};
        const auto n = (entry.info->end - entry.info->begin) / safetensors::dtype_size(dtype);
        copy.data.resize(n);
        const uint8_t* src = entry.file->data(*entry.info);
        for (size_t i = 0; i < n; ++i) {
            uint16_t half;
            switch (dtype) {
                case safetensors::DType::F32:
                    std::memcpy(&copy.data[i], src + 4 * i, 4);
                    break;
                case safetensors::DType::BF16:
                    std::memcpy(&half, src + 2 * i, 2);
                    copy.data[i] = sdk::bf16_to_f32(half);
                    break;
                case safetensors::DType::F16:
                    std::memcpy(&half, src + 2 * i, 2);
                    copy.data[i] = sdk::f16_to_f32(half);
                    break;
                default:
                    throw sdk::Error(TFX_ERR_UNSUPPORTED, "tensor '" + std::string(name) + "': dtype " +
                                                              std::string(safetensors::dtype_name(dtype)) +
                                                              " cannot be read as f32");
            }
        }
        it = f32_copies_.emplace(name, std::move(copy)).first;
    }
    tfx_tensor out{};
    out.data = it->second.data.data();
    out.device = {TFX_DEVICE_CPU, 0};
    out.ndim = static_cast<int32_t>(it->second.shape.size());
    out.dtype = {TFX_DTYPE_FLOAT, 32, 1};
    out.shape = it->second.shape.data();
    return out;
}

}  // namespace tfx
