#include "registry/auto_model.h"

#include <set>

#include "core/device.h"
#include "core/gguf_model.h"
#include "core/json_file.h"
#include "core/log.h"
#include "core/paths.h"
#include "registry/hub/hub.h"
#include "tfx/sdk/error.hpp"

namespace tfx::registry {

std::string join(const std::set<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
    return out.empty() ? "none" : out;
}

ModelChoice choose_model(const sdk::Config& config, const PluginCatalogue& catalogue) {
    ModelChoice choice{};
    choice.model_type = config.get<std::string>("model_type");
    auto candidates = catalogue.providing("model", "model_types", choice.model_type);
    if (candidates.empty()) {
        std::set<std::string> known;
        for (const PluginRecord* r : catalogue.of_kind("model")) {
            if (auto types = r->provides().find("model_types"); types != r->provides().end() && types->is_array()) {
                for (const auto& t : *types) known.insert(t.get<std::string>());
            }
        }
        config.fail("model_type", "'" + choice.model_type +
                                      "' is not provided by any installed model plugin (installed: " + join(known) +
                                      ")");
    }
    choice.plugin = candidates.front();
    const auto& architectures = choice.plugin->provides().value("architectures", nlohmann::json::object());
    std::vector<std::string> requested;
    if (config.has("architectures")) {
        const auto& list = config.json().at("architectures");
        if (!list.is_array()) config.fail("architectures", "expected a list of class names");
        for (const auto& a : list) {
            if (a.is_string()) requested.push_back(a.get<std::string>());
        }
    }
    for (const auto& a : requested) {
        if (architectures.contains(a)) {
            choice.architecture = a;
            break;
        }
    }
    if (choice.architecture.empty() && requested.empty()) {
        // No architectures field: the causal LM head if the plugin has one, else its base model.
        for (const char* preferred : {"causal_lm", "base"}) {
            for (const auto& [name, head] : architectures.items()) {
                if (choice.architecture.empty() && head == preferred) choice.architecture = name;
            }
        }
    }
    if (choice.architecture.empty()) {
        std::set<std::string> heads;
        for (const auto& [name, head] : architectures.items()) heads.insert(name);
        config.fail("architectures", "none of the listed architectures is provided by plugin '" + choice.plugin->name +
                                         "' (it provides: " + join(heads) + ")");
    }
    choice.head = architectures.at(choice.architecture).get<std::string>();
    return choice;
}

// The highest score a backend's manifest says it can report ("max_score", default 100).
int32_t max_score(const PluginRecord& r) {
    const nlohmann::json& value = r.provides().value("max_score", nlohmann::json(100));
    return value.is_number_integer() ? value.get<int32_t>() : 100;
}

// The candidates are loaded (probed) in order of the score their manifests promise, and no
// more once one scored at least what the rest promise: a backend that cannot win (a heavy
// libtorch) is never loaded into a run that does not ask for it.
const PluginRecord* choose_backend(PluginCatalogue& catalogue, const std::string& device_text) {
    const std::string device = parse_device_spec(device_text).name;
    std::vector<PluginRecord*> candidates;
    for (auto& r : catalogue.records()) {
        if (r.kind != "backend") continue;
        const auto& devices = r.provides().value("devices", nlohmann::json::array());
        const bool wanted =
            device == "auto" || device == r.name || std::find(devices.begin(), devices.end(), device) != devices.end();
        if (wanted) candidates.push_back(&r);
    }
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const PluginRecord* a, const PluginRecord* b) { return max_score(*a) > max_score(*b); });
    const PluginRecord* best = nullptr;
    std::string reasons;
    for (PluginRecord* candidate : candidates) {
        PluginRecord& r = *candidate;
        if (best != nullptr && best->score >= max_score(r)) break;
        if (r.status == PluginStatus::unknown) probe_in_process(r, false);
        if (r.status != PluginStatus::ok) {
            reasons += "\n  " + r.name + ": " + std::string(to_string(r.status)) + ": " + r.reason;
            continue;
        }
        if (best == nullptr || r.score > best->score) best = &r;
    }
    if (best == nullptr) {
        throw sdk::Error(TFX_ERR_NOT_FOUND,
                         "no usable backend plugin for device '" + device_text + "'" +
                             (reasons.empty() ? " (none installed; see tfx-plugins list)" : ":" + reasons));
    }
    return best;
}

const PluginRecord* choose_attention(const PluginCatalogue& catalogue, const std::string& implementation,
                                     const PluginRecord& backend) {
    auto candidates = catalogue.providing("attention", "attn_implementations", implementation);
    if (candidates.empty()) {
        std::set<std::string> known;
        for (const PluginRecord* r : catalogue.of_kind("attention")) {
            for (const auto& i : r->provides().value("attn_implementations", nlohmann::json::array()))
                known.insert(i.get<std::string>());
        }
        // A plugin that provides it but cannot be used (built for another ABI, ...) says why.
        std::string unusable;
        for (const PluginRecord& r : catalogue.records()) {
            const auto provided = r.provides().value("attn_implementations", nlohmann::json::array());
            if (r.kind == "attention" &&
                std::find(provided.begin(), provided.end(), implementation) != provided.end()) {
                unusable += "; " + r.name + " provides it but is unusable: " + r.reason;
            }
        }
        throw sdk::Error(TFX_ERR_NOT_FOUND, "attn_implementation '" + implementation +
                                                "' is not provided by any usable attention plugin (installed: " +
                                                join(known) + ")" + unusable);
    }
    // Its kernel must run on the backend's device (an attention kernel addresses device memory).
    const auto devices = backend.provides().value("devices", nlohmann::json::array());
    const std::string device = devices.empty() ? "cpu" : devices[0].get<std::string>();
    for (const PluginRecord* r : candidates) {
        const auto runs_on = r->provides().value("devices", nlohmann::json::array({"cpu"}));
        if (std::find(runs_on.begin(), runs_on.end(), device) != runs_on.end()) return r;
    }
    throw sdk::Error(TFX_ERR_NOT_FOUND, "attn_implementation '" + implementation + "' has no kernel for device '" +
                                            device + "' (backend " + backend.name + ")");
}

const PluginRecord* choose_quantizer(PluginCatalogue& catalogue, const std::set<std::string>& wanted) {
    std::string reasons;
    for (PluginRecord& r : catalogue.records()) {
        const auto formats = r.provides().value("weight_formats", nlohmann::json::array());
        const bool all = std::all_of(wanted.begin(), wanted.end(), [&](const std::string& f) {
            return std::find(formats.begin(), formats.end(), f) != formats.end();
        });
        if (r.kind != "quantizer" || !all) continue;
        if (r.status == PluginStatus::unknown) probe_in_process(r, false);
        if (r.status == PluginStatus::ok) return &r;
        reasons += "; " + r.name + " provides it but is unusable: " + r.reason;
    }
    std::set<std::string> known;
    for (const PluginRecord* r : catalogue.of_kind("quantizer")) {
        for (const auto& f : r->provides().value("weight_formats", nlohmann::json::array())) {
            if (f.is_string()) known.insert(f.get<std::string>());
        }
    }
    throw sdk::Error(TFX_ERR_NOT_FOUND, std::string(wanted.size() == 1 ? "weight format '" : "weight formats '") +
                                            join(wanted) + "' " + (wanted.size() == 1 ? "is" : "are") +
                                            " not known to any installed quantizer plugin (they encode or decode: " +
                                            join(known) + ")" + reasons);
}

}  // namespace tfx::registry

namespace tfx {
namespace {

// Every plugin for a config: model and head from config.json, backend from the device,
// attention from the option or config.json's attn_implementation.
PluginChoice choose_plugins(const sdk::Config& config, PluginCatalogue& catalogue, const SessionOptions& options,
                            std::set<std::string> formats = {}) {
    PluginChoice choice;
    const registry::ModelChoice model = registry::choose_model(config, catalogue);
    choice.model = model.plugin;
    choice.architecture = model.architecture;
    choice.head = model.head;
    choice.backend = registry::choose_backend(catalogue, options.device);
    std::string attn = options.attn_implementation;
    if (attn.empty()) {
        attn = config.get_or<std::string>("attn_implementation",
                                          config.get_or<std::string>("_attn_implementation", "eager"));
    }
    choice.attention = registry::choose_attention(catalogue, attn, *choice.backend);
    // One quantizer for every block format: the one asked for, and those a GGUF file stores.
    const std::string format = requested_weight_format(options);
    if (!format.empty() && !is_float_format(format)) formats.insert(format);
    if (!formats.empty()) choice.quantizer = registry::choose_quantizer(catalogue, formats);
    // A GPTQ / AWQ checkpoint's linears that no block format holds exactly (act-order groups,
    // asymmetric 8-bit, 2-3 bits) are re-encoded to q8_0 where a quantizer can; else decoded.
    if (choice.quantizer == nullptr && config.json().contains("quantization_config")) {
        try {
            choice.quantizer = registry::choose_quantizer(catalogue, {"q8_0"});
        } catch (const sdk::Error&) {
            log::write(log::Level::debug, "tfx",
                       "no quantizer plugin encodes q8_0: GPTQ / AWQ linears without a block format run as f32");
        }
    }
    return choice;
}

sdk::Config read_config(const std::filesystem::path& path) {
    return sdk::Config::parse(read_text_file(path), path.string());
}

}  // namespace

namespace {

// `include`: the Hub files to fetch (empty: those a model needs).
std::filesystem::path resolve_location(const std::string& id_or_path, const LoadOptions& options,
                                       std::vector<std::string> include) {
    // A name that can only be a local path (./x, ../x, /x, ~/x, or more than one '/': a Hub id
    // is org/name) never goes to the Hub: a typo in it is a missing folder, not a network error.
    std::string path = id_or_path;
    if (path == "~" || path.rfind("~/", 0) == 0) {
        if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') path = home + path.substr(1);
    }
    const bool looks_local = path.rfind("./", 0) == 0 || path.rfind("../", 0) == 0 || path.rfind('/', 0) == 0 ||
                             path.rfind('~', 0) == 0 || path == "." || path == ".." ||
                             std::count(path.begin(), path.end(), '/') > 1;
    std::error_code ec;
    if (looks_local && !std::filesystem::exists(path, ec)) {
        std::filesystem::path missing = path;  // the outermost part of the path that is not there
        while (missing.has_parent_path() && missing.parent_path() != missing &&
               !std::filesystem::exists(missing.parent_path(), ec))
            missing = missing.parent_path();
        throw sdk::Error(TFX_ERR_NOT_FOUND, id_or_path + ": no such local folder ('" + missing.string() +
                                                "' does not exist); a path starting with ./, ../, / or ~, or with "
                                                "more than one '/', is read as a local folder, and a Hub model id "
                                                "has the form org/name");
    }
    if (looks_local) {
        if (!std::filesystem::is_directory(path, ec))
            throw sdk::Error(TFX_ERR_NOT_FOUND,
                             id_or_path + ": not a folder; expected a model folder (config.json, safetensors)");
        return path;
    }
    hub::HubOptions hub_options;
    hub_options.revision = options.revision;
    hub_options.offline = options.offline;
    hub_options.on_progress = options.on_download_progress;
    hub_options.include = std::move(include);
    try {
        return hub::resolve_model(id_or_path, hub_options);
    } catch (const hub::HubError& e) {
        throw sdk::Error(TFX_ERR_NOT_FOUND, e.what());
    }
}

}  // namespace

std::filesystem::path resolve_model_location(const std::string& id_or_path, const LoadOptions& options) {
    return resolve_location(id_or_path, options, {});
}

std::filesystem::path resolve_tokenizer_location(const std::string& id_or_path, const LoadOptions& options) {
    // What AutoTokenizer reads: tokenizer.json and its settings, the chat template, and
    // config.json (its model_type picks defaults).
    return resolve_location(id_or_path, options,
                            {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json",
                             "generation_config.json", "chat_template.jinja", "chat_template.json"});
}

std::optional<std::filesystem::path> gguf_file_of(const std::string& id_or_path) {
    std::error_code ec;
    const std::filesystem::path path = id_or_path;
    if (std::filesystem::is_regular_file(path, ec)) {
        if (gguf::is_gguf(path)) return path;
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, id_or_path +
                                                       ": a file that is not GGUF; expected a model folder "
                                                       "(config.json, safetensors) or a .gguf file");
    }
    if (!std::filesystem::is_directory(path, ec) || std::filesystem::exists(path / "config.json", ec))
        return std::nullopt;
    std::vector<std::filesystem::path> found;
    for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
        if (entry.path().extension() == ".gguf" && entry.is_regular_file(ec)) found.push_back(entry.path());
    }
    if (found.size() > 1) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, id_or_path + ": no config.json and " + std::to_string(found.size()) +
                                                       " .gguf files; name the one to load");
    }
    return found.empty() ? std::nullopt : std::optional(found[0]);
}

std::unique_ptr<ModelSession> AutoModel::from_pretrained(const std::string& id_or_path, const LoadOptions& options) {
    if (const auto gguf_path = gguf_file_of(id_or_path)) {
        auto file = std::make_shared<const gguf::File>(*gguf_path);
        gguf::HfView view = gguf::hf_view(*file);
        PluginCatalogue catalogue(paths::plugin_search_path(options.plugin_paths));
        const sdk::Config config = sdk::Config::parse(view.config_json, gguf_path->string() + " (metadata)");
        std::set<std::string> formats;
        for (const gguf::Tensor& t : file->header().tensors) {
            if (!gguf::is_float(t.type)) formats.insert(gguf::format_name(t.type));
        }
        PluginChoice plugins;
        try {
            plugins = choose_plugins(config, catalogue, options, formats);
        } catch (const sdk::Error& e) {
            if (e.code() != TFX_ERR_NOT_FOUND || formats.empty()) throw;
            throw sdk::Error(e.code(), gguf_path->string() + ": its tensors are stored as " + registry::join(formats) +
                                           "; a quantizer plugin must decode them: " + e.what());
        }
        return ModelSession::open_gguf(std::move(file), std::move(view), plugins, options);
    }
    const std::filesystem::path dir = resolve_model_location(id_or_path, options);
    const std::filesystem::path config_path = model_config_path(dir);
    PluginCatalogue catalogue(paths::plugin_search_path(options.plugin_paths));
    return ModelSession::open(dir, choose_plugins(read_config(config_path), catalogue, options), options);
}

std::unique_ptr<ModelSession> AutoModel::from_config(const std::filesystem::path& config_path,
                                                     const SessionOptions& options) {
    PluginCatalogue catalogue(paths::plugin_search_path(options.plugin_paths));
    return ModelSession::for_config(config_path, choose_plugins(read_config(config_path), catalogue, options), options);
}

}  // namespace tfx
