// AutoModel: config.json -> the model plugin whose manifest claims its model_type and
// architecture, the task head, and the backend and attention plugins to run it with.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "core/model_session.h"
#include "core/plugin_catalogue.h"
#include "tfx/sdk/config.hpp"

namespace tfx {

namespace hub {
struct Progress;
}

// Session options plus where the model comes from: a Hub id ("org/name[@revision]") with a
// revision, offline mode (HF_HUB_OFFLINE also sets it) and a download progress callback.
struct LoadOptions : SessionOptions {
    std::optional<std::string> revision;
    bool offline = false;
    std::function<void(const hub::Progress&)> on_download_progress;
};

// A local model folder as is; a Hub id -> its snapshot folder in the Hugging Face cache,
// downloading the files a model needs unless they are cached (or offline mode is on).
std::filesystem::path resolve_model_location(const std::string& id_or_path, const LoadOptions& options);
// The same for a tokenizer alone: a Hub id fetches its tokenizer and config files, no weights.
std::filesystem::path resolve_tokenizer_location(const std::string& id_or_path, const LoadOptions& options);

// A GGUF file named directly, or the one .gguf file of a folder without config.json; nullopt
// for anything else (a model folder, a Hub id). Throws for a file that is not GGUF.
std::optional<std::filesystem::path> gguf_file_of(const std::string& id_or_path);

// transformers' AutoModel: resolves the model, chooses its plugins from config.json and the
// plugins' manifests, and opens a session on them.
struct AutoModel {
    static std::unique_ptr<ModelSession> from_pretrained(const std::string& id_or_path,
                                                         const LoadOptions& options = {});
    // A session on config.json alone (no weights): weight_specs() for tfx init-model.
    static std::unique_ptr<ModelSession> from_config(const std::filesystem::path& config_path,
                                                     const SessionOptions& options = {});
};

}  // namespace tfx

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

// "a, b, c" (sorted), or "none".
std::string join(const std::set<std::string>& items);

// A quantizer plugin that encodes (and decodes) every one of `formats` ("q4_0", ...); throws
// naming the formats the installed quantizers produce when none does.
const PluginRecord* choose_quantizer(PluginCatalogue& catalogue, const std::set<std::string>& formats);

// The attention plugin for an attn_implementation whose kernel runs on the backend's device.
const PluginRecord* choose_attention(const PluginCatalogue& catalogue, const std::string& implementation,
                                     const PluginRecord& backend);

}  // namespace tfx::registry
