// Load options for a test that runs on the cpu backend or on the guarded test backend
// (tests/guarded_backend: activation and KV memory that only the backend's own ops may touch).
#pragma once

#include "registry/auto_model.h"

namespace tfx::test {

inline LoadOptions backend_options(bool guarded) {
    LoadOptions options;
    if (guarded) {
        options.plugin_paths = {TFX_GUARDED_PLUGIN_DIR};
        options.device = "guarded";
    }
    return options;
}

}  // namespace tfx::test
