// Load options for a test that runs on a given backend: "cpu", "guarded" (tests/guarded_backend:
// activation and KV memory that only the backend's own ops may touch), "torch" (the libtorch
// backend, built when libtorch-dev is installed) or "cuda" (built with the CUDA Toolkit; runs
// where a device is).
#pragma once

#include <string>

#include "core/paths.h"
#include "core/plugin_catalogue.h"
#include "registry/auto_model.h"

namespace tfx::test {

inline LoadOptions backend_options(const std::string& backend) {
    LoadOptions options;
    options.device = backend;
    if (backend == "guarded") options.plugin_paths = {TFX_GUARDED_PLUGIN_DIR};
    return options;
}

// Why `backend` cannot run in this build or on this machine, or empty when it can.
inline std::string backend_missing(const std::string& backend) {
#ifndef TFX_HAVE_TORCH_BACKEND
    if (backend == "torch") return "the torch backend was not built (libtorch-dev is missing)";
#endif
    if (backend == "cuda") {
#ifndef TFX_HAVE_CUDA_BACKEND
        return "the cuda backend was not built (no CUDA Toolkit)";
#else
        // Its score() says whether a driver and a device are here.
        PluginCatalogue catalogue(paths::plugin_search_path({}));
        for (PluginRecord& r : catalogue.records()) {
            if (r.kind != "backend" || r.name != "cuda") continue;
            if (r.status == PluginStatus::unknown) probe_in_process(r, false);
            return r.status == PluginStatus::ok ? std::string() : "no CUDA device here: " + r.reason;
        }
        return "the cuda backend plugin is not installed";
#endif
    }
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
