// Load options for a test that runs on a given backend: "cpu", "guarded" (tests/guarded_backend:
// activation and KV memory that only the backend's own ops may touch) or "torch" (the libtorch
// backend, built when libtorch-dev is installed).
#pragma once

#include <string>

#include "registry/auto_model.h"

namespace tfx::test {

inline LoadOptions backend_options(const std::string& backend) {
    LoadOptions options;
    options.device = backend;
    if (backend == "guarded") options.plugin_paths = {TFX_GUARDED_PLUGIN_DIR};
    return options;
}

// Why `backend` cannot run in this build, or empty when it can.
inline std::string backend_missing(const std::string& backend) {
#ifndef TFX_HAVE_TORCH_BACKEND
    if (backend == "torch") return "the torch backend was not built (libtorch-dev is missing)";
#endif
    (void)backend;
    return {};
}

// A test suffix per backend: "" for the cpu backend, "_Guarded", "_Torch".
inline std::string backend_suffix(const std::string& backend) {
    if (backend == "cpu") return "";
    std::string name = "_" + backend;
    name[1] = static_cast<char>(std::toupper(static_cast<unsigned char>(name[1])));
    return name;
}

}  // namespace tfx::test
