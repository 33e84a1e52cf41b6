// AutoModel: config.json -> the model plugin whose manifest claims its model_type and
// architecture, the task head, and the backend and attention plugins to run it with.
#pragma once

#include <string>

#include "core/plugin_catalogue.h"
#include "tfx/sdk/config.hpp"

namespace tfx::registry {

struct ModelChoice {
    const PluginRecord* plugin;
    std::string model_type;
    std::string architecture;
    std::string head;  // "causal_lm", "base", ... as the manifest declares
};

// Throws sdk::Error naming config.json and, for an unknown model_type, the types the
// installed plugins provide.
ModelChoice choose_model(const sdk::Config& config, const PluginCatalogue& catalogue);

// Highest-scoring usable backend; `device` = "auto", a device ("cpu") or a plugin name.
const PluginRecord* choose_backend(PluginCatalogue& catalogue, const std::string& device);

// The attention plugin for an attn_implementation ("eager", ...).
const PluginRecord* choose_attention(const PluginCatalogue& catalogue, const std::string& implementation);

}  // namespace tfx::registry
