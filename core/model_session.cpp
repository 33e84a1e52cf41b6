#include "core/model_session.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <tuple>

#include "core/json_file.h"
#include "core/log.h"
#include "core/paths.h"
#include "core/safetensors.h"
#include "registry/auto_model.h"
#include "registry/hub/hub.h"
#include "tfx/sdk/half.hpp"

namespace tfx {
namespace fs = std::filesystem;

namespace {

// A plugin instance and its table; destroyed through the plugin's own descriptor.
struct Instance {
    LoadedPlugin plugin;
    void* self = nullptr;
    std::string name;

    ~Instance() {
        if (self != nullptr) plugin.descriptor->destroy(self);
    }
};

// Validates the tensor arguments of an op before the backend sees them.
template <class T>
const char* invalid_tensor(T) {
    return nullptr;
}
inline const char* invalid_tensor(const tfx_tensor* t) {
    if (t == nullptr) return nullptr;  // optional operands (bias) are checked by the op
    if (t->data == nullptr) return "a tensor has no data";
    if (t->ndim < 0 || t->ndim > 8 || (t->ndim > 0 && t->shape == nullptr)) return "a tensor has an invalid rank";
    for (int i = 0; i < t->ndim; ++i) {
        if (t->shape[i] < 0) return "a tensor has a negative dimension";
    }
    return nullptr;
}
inline const char* invalid_tensor(tfx_tensor* t) { return invalid_tensor(static_cast<const tfx_tensor*>(t)); }

struct OpsForwarder {
    const tfx_backend_ops* backend;
    void* backend_self;
};

// The host's ops table: one generated forwarder per entry that checks the backend offers
// the op (table size and pointer), validates tensor operands, then calls the backend.
template <auto Member>
struct Forward;
template <class R, class... Args, R (*tfx_backend_ops::*Member)(void*, Args...)>
struct Forward<Member> {
    static R call(void* self, Args... args) {
        auto* f = static_cast<OpsForwarder*>(self);
        static const size_t offset = [] {
            tfx_backend_ops probe{};
            return static_cast<size_t>(reinterpret_cast<const char*>(&(probe.*Member)) -
                                       reinterpret_cast<const char*>(&probe));
        }();
        const bool offered = f->backend->struct_size >= offset + sizeof(void*) && (f->backend->*Member) != nullptr;
        if constexpr (std::is_void_v<R>) {
            if (offered) (f->backend->*Member)(f->backend_self, args...);
        } else {
            tfx_error* error = std::get<sizeof...(Args) - 1>(std::tie(args...));
            if (!offered) {
                sdk::fill_error(error, TFX_ERR_UNSUPPORTED, "the backend does not implement this op");
                return TFX_ERR_UNSUPPORTED;
            }
            const char* problem = nullptr;
            ((problem = problem != nullptr ? problem : invalid_tensor(args)), ...);
            if (problem != nullptr) {
                sdk::fill_error(error, TFX_ERR_INVALID_ARGUMENT, problem);
                return TFX_ERR_INVALID_ARGUMENT;
            }
            return (f->backend->*Member)(f->backend_self, args...);
        }
    }
};

const tfx_backend_ops kForwardingOps = {
    sizeof(tfx_backend_ops),
    Forward<&tfx_backend_ops::pack_weight>::call,
    Forward<&tfx_backend_ops::release_weight>::call,
    Forward<&tfx_backend_ops::linear>::call,
    Forward<&tfx_backend_ops::embedding>::call,
    Forward<&tfx_backend_ops::rms_norm>::call,
    Forward<&tfx_backend_ops::layer_norm>::call,
    Forward<&tfx_backend_ops::rope>::call,
    Forward<&tfx_backend_ops::activation>::call,
    Forward<&tfx_backend_ops::gated_activation>::call,
    Forward<&tfx_backend_ops::add>::call,
    Forward<&tfx_backend_ops::mul>::call,
    Forward<&tfx_backend_ops::scale>::call,
    Forward<&tfx_backend_ops::softmax>::call,
    Forward<&tfx_backend_ops::softcap>::call,
    Forward<&tfx_backend_ops::copy>::call,
};

struct F32Copy {
    std::vector<float> data;
    std::vector<int64_t> shape;
};

}  // namespace

struct ModelSession::Impl {
    std::string config_text;
    std::optional<safetensors::Checkpoint> checkpoint;
    std::map<std::string, std::string> options;
    std::map<std::string, std::vector<int64_t>, std::less<>> shapes;  // stable storage for views
    std::map<std::string, F32Copy, std::less<>> f32_copies;
    std::unique_ptr<PluginCatalogue> catalogue;
    std::unique_ptr<Instance> backend, attention, model;
    const tfx_model_table* model_table = nullptr;
    OpsForwarder forwarder{};
    tfx_host_services services{};
    std::string model_source;  // for error messages

    std::optional<safetensors::Checkpoint::Entry> find(const char* name) const {
        if (!checkpoint || name == nullptr) return std::nullopt;
        return checkpoint->find(name);
    }
};

namespace {

ModelSession::Impl& impl_of(void* host) { return *static_cast<ModelSession::Impl*>(host); }

int32_t host_get_weight(void* host, const char* name, tfx_tensor* out, tfx_error* error) {
    return sdk::guard(error, [&] {
        auto& impl = impl_of(host);
        auto entry = impl.find(name);
        if (!entry) {
            throw sdk::Error(TFX_ERR_NOT_FOUND, "tensor '" + std::string(name ? name : "") + "' not found in " + impl.model_source);
        }
        auto& shape = impl.shapes[name];
        shape = entry->info->shape;
        *out = tfx_tensor{};
        out->data = const_cast<uint8_t*>(entry->file->data(*entry->info));
        out->device = {TFX_DEVICE_CPU, 0};
        out->ndim = static_cast<int32_t>(shape.size());
        out->dtype = safetensors::to_abi(entry->info->dtype);
        out->shape = shape.data();
    });
}

int32_t host_get_weight_f32(void* host, const char* name, tfx_tensor* out, tfx_error* error) {
    return sdk::guard(error, [&] {
        auto& impl = impl_of(host);
        auto it = impl.f32_copies.find(name != nullptr ? name : "");
        if (it == impl.f32_copies.end()) {
            tfx_tensor raw{};
            tfx_error inner = sdk::empty_error();
            sdk::check(host_get_weight(host, name, &raw, &inner), inner);
            auto entry = impl.find(name);
            F32Copy copy{{}, entry->info->shape};
            const int64_t n = static_cast<int64_t>((entry->info->end - entry->info->begin) / safetensors::dtype_size(entry->info->dtype));
            copy.data.resize(static_cast<size_t>(n));
            const uint8_t* src = entry->file->data(*entry->info);
            for (int64_t i = 0; i < n; ++i) {
                uint16_t h;
                switch (entry->info->dtype) {
                    case safetensors::DType::F32: std::memcpy(&copy.data[i], src + 4 * i, 4); break;
                    case safetensors::DType::BF16: std::memcpy(&h, src + 2 * i, 2); copy.data[i] = sdk::bf16_to_f32(h); break;
                    case safetensors::DType::F16: std::memcpy(&h, src + 2 * i, 2); copy.data[i] = sdk::f16_to_f32(h); break;
                    default:
                        throw sdk::Error(TFX_ERR_UNSUPPORTED, "tensor '" + std::string(name) + "': dtype " +
                                                                  std::string(safetensors::dtype_name(entry->info->dtype)) +
                                                                  " cannot be read as f32");
                }
            }
            it = impl.f32_copies.emplace(name, std::move(copy)).first;
        }
        *out = tfx_tensor{};
        out->data = it->second.data.data();
        out->device = {TFX_DEVICE_CPU, 0};
        out->ndim = static_cast<int32_t>(it->second.shape.size());
        out->dtype = {TFX_DTYPE_FLOAT, 32, 1};
        out->shape = it->second.shape.data();
    });
}

std::unique_ptr<Instance> instantiate(const PluginRecord& record, const tfx_host_services* services, int32_t kind) {
    auto instance = std::make_unique<Instance>();
    instance->plugin = load_plugin(record);
    instance->name = record.name;
    if (instance->plugin.descriptor->kind != kind) {
        throw sdk::Error(TFX_ERR_ABI, record.library.string() + ": expected a " + std::string(kind_name(kind)) + " plugin");
    }
    tfx_error error = sdk::empty_error();
    if (instance->plugin.descriptor->create(services, &instance->self, &error) != TFX_OK) {
        throw sdk::Error(error.code, "plugin '" + record.name + "': " + error.message);
    }
    return instance;
}

}  // namespace

fs::path resolve_model_location(const std::string& id_or_path, const SessionOptions& options) {
    hub::HubOptions hub_options;
    hub_options.revision = options.revision;
    hub_options.offline = options.offline;
    hub_options.on_progress = options.on_download_progress;
    try {
        return hub::resolve_model(id_or_path, hub_options);
    } catch (const hub::HubError& e) {
        throw sdk::Error(TFX_ERR_NOT_FOUND, e.what());
    }
}

std::unique_ptr<ModelSession> ModelSession::open(const std::string& id_or_path, const SessionOptions& options) {
    const fs::path model_dir = resolve_model_location(id_or_path, options);
    if (!fs::is_directory(model_dir)) {
        throw sdk::Error(TFX_ERR_NOT_FOUND, model_dir.string() + ": not a model folder (it does not exist or is not a directory)");
    }
    std::unique_ptr<ModelSession> session(new ModelSession());
    session->impl_ = std::make_unique<Impl>();
    Impl& impl = *session->impl_;
    session->model_dir_ = model_dir;
    const fs::path config_path = model_dir / "config.json";
    if (!fs::exists(config_path)) {
        throw sdk::Error(TFX_ERR_NOT_FOUND, model_dir.string() + ": no config.json (is this a Hugging Face model folder?)");
    }
    impl.config_text = read_text_file(config_path);
    session->config_ = sdk::Config::parse(impl.config_text, config_path.string());
    impl.checkpoint = safetensors::Checkpoint::open(model_dir);
    impl.model_source = (model_dir / (impl.checkpoint->files().size() == 1 ? impl.checkpoint->files()[0]->path().filename()
                                                                          : fs::path("model.safetensors.index.json"))).string();
    session->bind_plugins(options);
    return session;
}

std::unique_ptr<ModelSession> ModelSession::for_config(const fs::path& config_path, const SessionOptions& options) {
    std::unique_ptr<ModelSession> session(new ModelSession());
    session->impl_ = std::make_unique<Impl>();
    Impl& impl = *session->impl_;
    impl.config_text = read_text_file(config_path);
    session->config_ = sdk::Config::parse(impl.config_text, config_path.string());
    impl.model_source = config_path.string() + " (no weights)";
    session->bind_plugins(options);
    return session;
}

void ModelSession::bind_plugins(const SessionOptions& options) {
    Impl& impl = *impl_;
    const sdk::Config& config = config_;
    if (options.num_threads > 0) impl.options["num_threads"] = std::to_string(options.num_threads);
    impl.options["device"] = options.device;
    impl.catalogue = std::make_unique<PluginCatalogue>(paths::plugin_search_path(options.plugin_paths));
    auto& s = impl.services;
    s.struct_size = sizeof(s);
    s.abi_major = TFX_ABI_MAJOR;
    s.abi_minor = TFX_ABI_MINOR;
    s.host = &impl;
    s.log = [](void*, int32_t level, const char* message) {
        log::write(static_cast<log::Level>(std::clamp(level, 0, 4)), "plugin", message != nullptr ? message : "");
    };
    s.config_json = [](void* host) { return impl_of(host).config_text.c_str(); };
    s.get_weight = host_get_weight;
    s.get_weight_f32 = host_get_weight_f32;
    s.has_weight = [](void* host, const char* name) -> int32_t { return impl_of(host).find(name) ? 1 : 0; };
    s.option = [](void* host, const char* key) -> const char* {
        auto& opts = impl_of(host).options;
        auto it = opts.find(key != nullptr ? key : "");
        return it == opts.end() ? nullptr : it->second.c_str();
    };

    const PluginRecord* backend = registry::choose_backend(*impl.catalogue, options.device);
    impl.backend = instantiate(*backend, &s, TFX_KIND_BACKEND);
    impl.forwarder = {static_cast<const tfx_backend_ops*>(impl.backend->plugin.table), impl.backend->self};
    s.ops = &kForwardingOps;
    s.ops_self = &impl.forwarder;

    std::string attn = options.attn_implementation;
    if (attn.empty()) attn = config.get_or<std::string>("attn_implementation", config.get_or<std::string>("_attn_implementation", "eager"));
    impl.attention = instantiate(*registry::choose_attention(*impl.catalogue, attn), &s, TFX_KIND_ATTENTION);
    s.attention = static_cast<const tfx_attention_table*>(impl.attention->plugin.table);
    s.attention_self = impl.attention->self;

    registry::ModelChoice choice = registry::choose_model(config, *impl.catalogue);
    impl.options["task_head"] = choice.head;
    impl.model = instantiate(*choice.plugin, &s, TFX_KIND_MODEL);
    impl.model_table = static_cast<const tfx_model_table*>(impl.model->plugin.table);
    architecture_ = choice.architecture;
    log::info("model " + choice.architecture + " via " + plugin_summary());
    if (impl.checkpoint) {
        tfx_error error = sdk::empty_error();
        if (impl.model_table->load(impl.model->self, choice.architecture.c_str(), &error) != TFX_OK) {
            throw sdk::Error(error.code, impl.model_source + ": " + error.message);
        }
        info_.struct_size = sizeof(tfx_model_info);
        sdk::check(impl.model_table->get_info(impl.model->self, &info_, &error), error);
    }
}

ModelSession::~ModelSession() {
    if (impl_) {
        impl_->model.reset();  // releases its packed weights through the backend, which must still exist
        impl_->attention.reset();
        impl_->backend.reset();
    }
}

std::string ModelSession::plugin_summary() const {
    return impl_->model->name + " (model) + " + impl_->backend->name + " (backend) + " + impl_->attention->name + " (attention)";
}

void ModelSession::forward(const tfx_forward_args& args) {
    tfx_error error = sdk::empty_error();
    sdk::check(impl_->model_table->forward(impl_->model->self, &args, &error), error);
}

KvCache ModelSession::make_cache(int32_t batch, int64_t capacity) const {
    return KvCache(info_.num_layers, batch, info_.num_kv_heads, info_.head_dim, capacity);
}

nlohmann::json ModelSession::weight_specs() {
    const auto* table = impl_->model_table;
    if (!TFX_HAS_FIELD(table, tfx_model_table, weight_specs) || table->weight_specs == nullptr) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, "model plugin '" + impl_->model->name + "' cannot describe its weights");
    }
    std::string text;
    tfx_sink sink{&text, [](void* ctx, const void* data, size_t bytes) {
                      static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), bytes);
                  }};
    tfx_error error = sdk::empty_error();
    sdk::check(table->weight_specs(impl_->model->self, architecture_.c_str(), sink, &error), error);
    return nlohmann::json::parse(text);
}

}  // namespace tfx
