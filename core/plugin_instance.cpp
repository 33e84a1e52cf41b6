#include "core/plugin_instance.h"

#include "tfx/sdk/error.hpp"

namespace tfx {

std::unique_ptr<PluginInstance> instantiate(const PluginRecord& record, const tfx_host_services* services,
                                            int32_t kind) {
    auto instance = std::make_unique<PluginInstance>();
    instance->plugin = load_plugin(record);
    instance->name = record.name;
    if (instance->plugin.descriptor->kind != kind) {
        throw sdk::Error(TFX_ERR_ABI,
                         record.library.string() + ": expected a " + std::string(kind_name(kind)) + " plugin");
    }
    tfx_error error = sdk::empty_error();
    if (instance->plugin.descriptor->create(services, &instance->self, &error) != TFX_OK) {
        throw sdk::Error(error.code, "plugin '" + record.name + "': " + error.message);
    }
    return instance;
}

}  // namespace tfx
