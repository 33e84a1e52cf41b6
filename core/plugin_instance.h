// A plugin instance: the loaded library, the object its create() made, and its table;
// destroyed through the plugin's own descriptor.
#pragma once

#include <memory>
#include <string>

#include "core/plugin_catalogue.h"
#include "tfx/host.h"

namespace tfx {

struct PluginInstance {
    LoadedPlugin plugin;
    void* self = nullptr;
    std::string name;

    PluginInstance() = default;
    PluginInstance(const PluginInstance&) = delete;
    PluginInstance& operator=(const PluginInstance&) = delete;
    ~PluginInstance();  // destroy() through the plugin, marked for the crash reporters
    template <class Table>
    const Table* table() const {
        return static_cast<const Table*>(plugin.table);
    }
};

// Loads the plugin of `record`, checks it is of `kind`, and creates an instance with the
// host's services. Throws sdk::Error naming the plugin and its path. load and create run
// marked (plugin_guard::CallScope), so a crash or exit() there is reported naming both.
std::unique_ptr<PluginInstance> instantiate(const PluginRecord& record, const tfx_host_services* services,
                                            int32_t kind);

}  // namespace tfx
