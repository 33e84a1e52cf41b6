#include "core/plugin_instance.h"

#include "core/plugin_guard.h"
#include "tfx/sdk/error.hpp"

namespace tfx {

PluginInstance::~PluginInstance() {
    if (self != nullptr) {
        plugin_guard::CallScope scope(name, plugin.library, "destroy()");
        plugin.descriptor->destroy(self);
    }
}

std::unique_ptr<PluginInstance> instantiate(const PluginRecord& record, const tfx_host_services* services,
                                            int32_t kind) {
    auto instance = std::make_unique<PluginInstance>();
    const std::string who = "plugin '" + record.name + "' (" + record.library.string() + ")";
    try {
        instance->plugin = load_plugin(record);
    } catch (const sdk::Error& e) {
        const std::string message = e.what();
        // The trial load's message already names the plugin and its path.
        const std::string crashed = std::string(to_string(PluginStatus::crashed)) + ": ";
        if (message.rfind(crashed, 0) == 0) throw sdk::Error(e.code(), message.substr(crashed.size()));
        if (message.find(record.library.string()) != std::string::npos) throw;
        throw sdk::Error(e.code(), who + ": " + message);
    }
    instance->name = record.name;
    if (instance->plugin.descriptor->kind != kind) {
        throw sdk::Error(TFX_ERR_ABI,
                         record.library.string() + ": expected a " + std::string(kind_name(kind)) + " plugin");
    }
    tfx_error error = sdk::empty_error();
    int32_t status = TFX_OK;
    {
        plugin_guard::CallScope scope(record.name, record.library, "create()");
        status = instance->plugin.descriptor->create(services, &instance->self, &error);
    }
    if (status != TFX_OK) {
        throw sdk::Error(error.code, "plugin '" + record.name + "': " + error.message);
    }
    return instance;
}

}  // namespace tfx
