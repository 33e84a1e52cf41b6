// Writing a plugin in ordinary C++: one class per instance, its kind's table built from
// member functions with tfx::sdk::method<&Class::fn>, and one TFX_PLUGIN_EXPORT line.
//
//   class MyModel {
//   public:
//       explicit MyModel(const tfx_host_services* host);
//       void load(const char* architecture);                 // throws on error
//       ...
//   };
//   const tfx_model_table kTable = {sizeof(tfx_model_table), tfx::sdk::method<&MyModel::load>, ...};
//   TFX_PLUGIN_EXPORT(MyModel, kTable)
//
// The plugin's name, kind, version and manifest come from its tfx_add_plugin() declaration
// (CMake generates them), so the sidecar and the embedded manifest can never disagree.
#pragma once

#include <concepts>
#include <string>

#include "tfx/sdk/error.hpp"
#include "tfx/tfx.h"

extern "C" {
// Defined by the source file tfx_add_plugin() generates for each plugin.
extern const char tfx_generated_plugin_name[];
extern const char tfx_generated_plugin_version[];
extern const char tfx_generated_plugin_manifest[];
extern const int32_t tfx_generated_plugin_kind;
}

namespace tfx::sdk {

namespace detail {
template <auto Method>
struct Thunk;

// void Class::fn(Args...) becomes int32_t fn(void* self, Args..., tfx_error*).
template <class Class, class... Args, void (Class::*Method)(Args...)>
struct Thunk<Method> {
    static int32_t call(void* self, Args... args, tfx_error* error) noexcept {
        return guard(error, [&] { (static_cast<Class*>(self)->*Method)(args...); });
    }
};
}  // namespace detail

template <auto Method>
inline constexpr auto method = &detail::Thunk<Method>::call;

template <class Instance>
concept HasScore = requires {
    { Instance::score() } -> std::convertible_to<int32_t>;
};

// A class whose score() can be 0 says why with `static std::string unavailable_reason()`
// ("no CUDA driver: ..."; empty when it can run).
template <class Instance>
concept HasUnavailableReason = requires {
    { Instance::unavailable_reason() } -> std::convertible_to<std::string>;
};

template <class Instance>
int32_t create_instance(const tfx_host_services* host, void** out, tfx_error* error) noexcept {
    return guard(error, [&] { *out = new Instance(host); });
}

template <class Instance>
void destroy_instance(void* instance) noexcept {
    delete static_cast<Instance*>(instance);
}

template <class Instance>
int32_t score_instance() noexcept {
    if constexpr (HasScore<Instance>) {
        try {
            return Instance::score();
        } catch (...) {
            return 0;
        }
    } else {
        return 100;
    }
}

template <class Instance>
const char* unavailable_reason_of_instance() noexcept {
    if constexpr (HasUnavailableReason<Instance>) {
        thread_local std::string reason;
        try {
            reason = Instance::unavailable_reason();
        } catch (...) {
            reason.clear();
        }
        return reason.c_str();
    } else {
        return nullptr;
    }
}

template <class Instance>
tfx_plugin_descriptor make_descriptor(const void* (*get_table)()) noexcept {
    tfx_plugin_descriptor d{};
    d.magic = TFX_PLUGIN_MAGIC;
    d.struct_size = sizeof(tfx_plugin_descriptor);
    d.abi_major = TFX_ABI_MAJOR;
    d.abi_minor = TFX_ABI_MINOR;
    d.kind = tfx_generated_plugin_kind;
    d.name = tfx_generated_plugin_name;
    d.version = tfx_generated_plugin_version;
    d.manifest_json = tfx_generated_plugin_manifest;
    d.score = &score_instance<Instance>;
    d.create = &create_instance<Instance>;
    d.destroy = &destroy_instance<Instance>;
    d.get_table = get_table;
    d.unavailable_reason = &unavailable_reason_of_instance<Instance>;
    return d;
}

}  // namespace tfx::sdk

#define TFX_PLUGIN_EXPORT(Instance, table)                                                                  \
    extern "C" __attribute__((visibility("default"))) const tfx_plugin_descriptor* tfx_plugin_entry(void) { \
        static const tfx_plugin_descriptor descriptor =                                                     \
            tfx::sdk::make_descriptor<Instance>([]() -> const void* { return &(table); });                  \
        return &descriptor;                                                                                 \
    }
