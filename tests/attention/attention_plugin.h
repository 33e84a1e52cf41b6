// An attention plugin loaded straight from its library (dlopen and the descriptor) and called
// through its table's attend with host memory: the eager plugin and the frozen ABI 2.0 naive
// fixture, by name, for the attention tests.
#pragma once

#include <dlfcn.h>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "tfx/sdk/error.hpp"
#include "tfx/sdk/plugin.hpp"
#include "tfx/sdk/tensor.hpp"

namespace attention_test {

class AttentionPlugin {
  public:
    explicit AttentionPlugin(const std::string& path) {
        void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);  // kept loaded for the process's life
        if (handle == nullptr) throw std::runtime_error("cannot load " + path + ": " + dlerror());
        auto entry = reinterpret_cast<tfx_plugin_entry_fn>(dlsym(handle, TFX_PLUGIN_ENTRY_SYMBOL));
        if (entry == nullptr) throw std::runtime_error(path + " has no " TFX_PLUGIN_ENTRY_SYMBOL);
        descriptor_ = entry();
        if (descriptor_ == nullptr || descriptor_->magic != TFX_PLUGIN_MAGIC ||
            descriptor_->abi_major != TFX_ABI_MAJOR || descriptor_->kind != TFX_KIND_ATTENTION) {
            throw std::runtime_error(path + " is not an attention plugin of ABI " + std::to_string(TFX_ABI_MAJOR));
        }
        services_.struct_size = sizeof(tfx_host_services);
        services_.abi_major = TFX_ABI_MAJOR;
        services_.abi_minor = TFX_ABI_MINOR;
        services_.device = tfx::sdk::kHostDevice;
        tfx_error error = tfx::sdk::empty_error();
        tfx::sdk::check(descriptor_->create(&services_, &self_, &error), error);
        table_ = static_cast<const tfx_attention_table*>(descriptor_->get_table());
        if (table_ == nullptr || !TFX_HAS_FIELD(table_, tfx_attention_table, attend) || table_->attend == nullptr) {
            throw std::runtime_error(path + " has no attend");
        }
    }
    ~AttentionPlugin() { descriptor_->destroy(self_); }
    AttentionPlugin(const AttentionPlugin&) = delete;
    AttentionPlugin& operator=(const AttentionPlugin&) = delete;

    const tfx_plugin_descriptor& descriptor() const { return *descriptor_; }

    // The status of one call; `message` gets the plugin's error message.
    int32_t attend(const tfx_attention_args& args, std::string* message = nullptr) const {
        tfx_error error = tfx::sdk::empty_error();
        const int32_t status = table_->attend(self_, &args, &error);
        if (message != nullptr) *message = status == TFX_OK ? "" : error.message;
        return status;
    }

  private:
    const tfx_plugin_descriptor* descriptor_ = nullptr;
    tfx_host_services services_{};
    void* self_ = nullptr;
    const tfx_attention_table* table_ = nullptr;
};

inline const AttentionPlugin& plugin(const std::string& name) {
    static std::map<std::string, std::unique_ptr<AttentionPlugin>> plugins;
    auto& p = plugins[name];
    if (p == nullptr) {
        if (name == "EagerAttention") {
            p = std::make_unique<AttentionPlugin>(TFX_EAGER_ATTENTION_PLUGIN);
        } else if (name == "NaiveAttention") {
            p = std::make_unique<AttentionPlugin>(TFX_NAIVE_ATTENTION_PLUGIN);
        } else {
            throw std::runtime_error("unknown plugin " + name);
        }
    }
    return *p;
}

}  // namespace attention_test
