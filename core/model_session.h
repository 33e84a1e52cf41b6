// A model session: one model folder bound to its model, backend and attention plugins.
// The session owns the checkpoint mapping, serves the plugins' host services (config,
// weights, options) and forwards their compute calls to the chosen backend.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/kv_cache.h"
#include "core/plugin_catalogue.h"
#include "tfx/sdk/config.hpp"
#include "tfx/tfx.h"

namespace tfx {

namespace hub {
struct Progress;
}

struct SessionOptions {
    std::vector<std::string> plugin_paths;
    std::string device = "auto";       // "auto", a device ("cpu") or a backend plugin name
    std::string attn_implementation;   // empty: config.json's, else "eager"
    int num_threads = 0;               // 0: the backend's default (all cores)
    // A Hub id ("org/name[@revision]") instead of a folder: revision, offline mode
    // (HF_HUB_OFFLINE also sets it) and a download progress callback.
    std::optional<std::string> revision;
    bool offline = false;
    std::function<void(const hub::Progress&)> on_download_progress;
};

// A local model folder as is; a Hub id -> its snapshot folder in the Hugging Face cache,
// downloading the files a model needs unless they are cached (or offline mode is on).
std::filesystem::path resolve_model_location(const std::string& id_or_path, const SessionOptions& options);

class ModelSession {
public:
    // Opens a model folder or Hub id: config.json, the checkpoint, and the plugins; loads the
    // weights (from_pretrained).
    static std::unique_ptr<ModelSession> open(const std::string& id_or_path, const SessionOptions& options);
    // A session on a config alone (no weights), for weight_specs(): tfx init-model.
    static std::unique_ptr<ModelSession> for_config(const std::filesystem::path& config_path,
                                                    const SessionOptions& options);
    ~ModelSession();
    ModelSession(const ModelSession&) = delete;
    ModelSession& operator=(const ModelSession&) = delete;

    const tfx_model_info& info() const { return info_; }
    const sdk::Config& config() const { return config_; }
    const std::filesystem::path& model_dir() const { return model_dir_; }
    const std::string& architecture() const { return architecture_; }
    // "llama (model) + cpu (backend) + eager (attention)" for reports.
    std::string plugin_summary() const;

    // One forward pass; output rows are f32 [rows, info().output_size].
    void forward(const tfx_forward_args& args);
    KvCache make_cache(int32_t batch, int64_t capacity) const;
    // The tensors the model would load, as the model plugin declares them.
    nlohmann::json weight_specs();

    struct Impl;

private:
    ModelSession() = default;
    void bind_plugins(const SessionOptions& options);
    std::unique_ptr<Impl> impl_;
    sdk::Config config_;
    std::filesystem::path model_dir_;
    std::string architecture_;
    tfx_model_info info_{};
};

}  // namespace tfx
