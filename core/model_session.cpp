#include "core/model_session.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <span>

#include "core/device.h"
#include "core/json_file.h"
#include "core/log.h"
#include "core/lora_runtime.h"
#include "core/op_forwarding.h"
#include "core/plugin_guard.h"
#include "core/plugin_instance.h"
#include "core/process_memory.h"
#include "core/tensor_parallel.h"
#include "core/weight_store.h"

namespace tfx {
namespace fs = std::filesystem;

struct ModelSession::Impl {
    std::string config_text;
    WeightStore weights;
    std::map<std::string, std::string, std::less<>> options;
    std::unique_ptr<PluginInstance> backend, attention, model, quantizer;
    QuantizeAtPack quantize_at_pack;
    // Stored blocks the backend does not run (GGUF's q5_k, q6_k on cpu; GPTQ's act-order or
    // 2-3 bit integers), re-encoded to q8_0 at pack rather than widened to f32: the stored
    // formats, and the bytes they took.
    QuantizeAtPack requantize;
    std::set<std::string> requantized_formats;
    uint64_t requantized_stored_bytes = 0;
    OpsTarget ops_target;
    tfx_backend_ops session_ops{};  // the forwarding table as the model plugin sees it
    AttentionTarget attention_target;
    tfx_host_services services{};
    std::optional<Device> device;
    tfx_dtype kv_dtype{TFX_DTYPE_FLOAT, 32, 1};
    // Checkpoint tensors on the device, by name (get_weight: as stored; get_weight_f32: widened).
    struct DeviceWeight {
        void* data;
        tfx_tensor tensor;
    };
    std::map<std::string, DeviceWeight, std::less<>> device_weights, device_weights_f32;
    bool has_weights = false;
    // LoRA adapters applied at run time (read before the backend exists, then handed to it).
    std::vector<lora::Adapter> runtime_adapters;
    std::unique_ptr<LoraRuntime> lora;
    // The MPI job's ranks that share each layer, under --tp; null otherwise.
    TensorParallelGroup* tensor_parallel = nullptr;

    // A host tensor of the store mapped onto the device once; views of it stay valid for the session.
    tfx_tensor on_device(std::map<std::string, DeviceWeight, std::less<>>& mapped, const char* name,
                         const tfx_tensor& host) {
        auto it = mapped.find(name);
        if (it == mapped.end()) {
            uint64_t bytes = host.dtype.bits / 8;
            for (int i = 0; i < host.ndim; ++i) bytes *= static_cast<uint64_t>(host.shape[i]);
            void* data = device->map_host(host.data, bytes);
            tfx_tensor t = host;
            t.data = data;
            t.device = device->device();
            it = mapped.emplace(name, DeviceWeight{data, t}).first;
        }
        return it->second.tensor;
    }

    // pack_stored_weight: the stored linear weight packed once, its blocks as they are where the
    // backend computes on them, else its values (decoded or reordered only for this call, and
    // mapped onto the device for it) through the forwarding pack_weight.
    tfx_weight* pack_stored(const char* name, std::span<const int64_t> expected) {
        if (name == nullptr) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "pack_stored_weight: name is missing");
        WeightStore::Lease lease = weights.lease(name);
        const int shard_dim = tensor_parallel != nullptr ? sharded_dim(expected, lease.shape()) : -1;
        if (shard_dim >= 0) return pack_shard(lease, name, shard_dim);
        if (!expected.empty() &&
            !std::equal(expected.begin(), expected.end(), lease.shape().begin(), lease.shape().end())) {
            auto dims = [](auto&& shape) {
                std::string text;
                for (int64_t d : shape) text += (text.empty() ? "" : ", ") + std::to_string(d);
                return "[" + text + "]";
            };
            throw sdk::Error(TFX_ERR_FORMAT, weights.source() + ": tensor '" + name + "': expected shape " +
                                                 dims(expected) + ", found " + dims(lease.shape()));
        }
        const auto option = options.find("weight_format");
        const char* format = option == options.end() ? nullptr : option->second.c_str();
        tfx_weight* out = nullptr;
        tfx_error error = sdk::empty_error();
        const WeightStore::Encoded* stored = lease.encoded();
        if (stored != nullptr && packs_as_stored(ops_target, *stored, format)) {
            sdk::check(pack_as_stored(ops_target, *stored, &out, &error), error);
            count_linear(ops_target, stored->rows, stored->cols);
            return out;
        }
        const bool requantized = lease.quantized() && format == nullptr && !requantize.format.empty();
        const tfx_tensor values = lease.values();
        QuantizeAtPack* session_quantize = ops_target.quantize;
        if (requantized) ops_target.quantize = &requantize;
        const int64_t requantized_before = requantize.quantized;
        const int32_t status = pack_host_values(values, requantized ? requantize.format.c_str() : format, &out, &error);
        ops_target.quantize = session_quantize;
        sdk::check(status, error);
        if (requantize.quantized > requantized_before) {
            requantized_formats.insert(lease.stored_format());
            requantized_stored_bytes += lease.stored_bytes();
        }
        return out;
    }

    // The one dim of a 2-D `stored` shape that `expected` divides by the tensor-parallel size
    // (this rank's slice of it), or -1 when expected asks for no slice.
    int sharded_dim(std::span<const int64_t> expected, const std::vector<int64_t>& stored) const {
        if (expected.size() != 2 || stored.size() != 2) return -1;
        const int64_t ranks = tensor_parallel->size();
        for (int d = 0; d < 2; ++d) {
            if (expected[d] * ranks == stored[d] && expected[1 - d] == stored[1 - d]) return d;
        }
        return -1;
    }

    // Rank r's slice of a stored [out, in] weight along `dim` (0: rows r * out / N ...; 1: the
    // same columns of every row), copied out of the store and packed like a whole weight, so a
    // rank's packed weights are its part alone. A weight stored in blocks (GGUF, GPTQ) is sliced
    // from its decoded values and packed in the session's format (f32 unless one is asked for).
    tfx_weight* pack_shard(WeightStore::Lease& lease, const std::string& name, int dim) {
        const tfx_tensor values = lease.values();
        if (values.strides != nullptr) {
            throw sdk::Error(TFX_ERR_UNSUPPORTED, weights.source() + ": tensor '" + name +
                                                      "': a strided tensor cannot be sharded across --tp ranks");
        }
        const int64_t rows = values.shape[0], cols = values.shape[1], ranks = tensor_parallel->size();
        const int64_t rank = tensor_parallel->rank(), elem = values.dtype.bits / 8;
        const int64_t part_rows = dim == 0 ? rows / ranks : rows, part_cols = dim == 1 ? cols / ranks : cols;
        std::vector<char> part(static_cast<size_t>(part_rows * part_cols * elem));
        const char* source = static_cast<const char*>(values.data);
        for (int64_t r = 0; r < part_rows; ++r) {
            const int64_t row = dim == 0 ? rank * part_rows + r : r, col = dim == 1 ? rank * part_cols : 0;
            std::memcpy(part.data() + r * part_cols * elem, source + (row * cols + col) * elem,
                        static_cast<size_t>(part_cols * elem));
        }
        int64_t shape[2] = {part_rows, part_cols};
        tfx_tensor slice = values;
        slice.shape = shape;
        slice.data = part.data();
        const auto option = options.find("weight_format");
        tfx_weight* out = nullptr;
        tfx_error error = sdk::empty_error();
        sdk::check(pack_host_values(slice, option == options.end() ? nullptr : option->second.c_str(), &out, &error),
                   error);
        return out;
    }

    // Values in host memory packed by the forwarding pack_weight into `format` (null: as they
    // are), mapped onto the device for the call only.
    int32_t pack_host_values(tfx_tensor values, const char* format, tfx_weight** out, tfx_error* error) {
        uint64_t bytes = values.dtype.bits / 8;
        for (int i = 0; i < values.ndim; ++i) bytes *= static_cast<uint64_t>(values.shape[i]);
        values.data = device->map_host(values.data, bytes);
        values.device = device->device();
        const int32_t status = forwarding_ops()->pack_weight(&ops_target, &values, format, out, error);
        device->free(values.data);
        return status;
    }

    // Teardown order matters: the model releases its packed weights through the backend, the
    // mapped weights go back to the backend, and the backend goes last.
    ~Impl() {
        model.reset();
        lora.reset();
        for (auto* mapped : {&device_weights, &device_weights_f32}) {
            for (auto& [name, w] : *mapped) device->free(w.data);
        }
        attention.reset();
        backend.reset();
    }
};

namespace {

// ABI 2.8: a vision model's image fields are all set (positive) or all 0, and it keeps no cache.
void check_image_info(const tfx_model_info& info, const std::string& plugin) {
    const bool any =
        info.image_channels != 0 || info.image_height != 0 || info.image_width != 0 || info.image_tokens != 0;
    if (!any) return;
    if (info.image_channels <= 0 || info.image_height <= 0 || info.image_width <= 0 || info.image_tokens <= 0 ||
        info.num_layers != 0 || info.num_cross_layers != 0) {
        throw sdk::Error(TFX_ERR_INTERNAL, "model plugin " + plugin +
                                               ": get_info() describes images inconsistently (image_channels, "
                                               "image_height, image_width and image_tokens must all be positive, "
                                               "with no KV cache layers)");
    }
}

void check_input_feature_info(const tfx_model_info& info, const std::string& plugin) {
    const bool any = info.input_feature_bins != 0 || info.input_feature_frames != 0 || info.input_feature_tokens != 0;
    if (!any) return;
    if (info.input_feature_bins <= 0 || info.input_feature_frames <= 0 || info.input_feature_tokens <= 0 ||
        info.num_cross_layers <= 0) {
        throw sdk::Error(TFX_ERR_INTERNAL, "model plugin " + plugin +
                                               ": get_info() describes input features inconsistently "
                                               "(input_feature_bins, input_feature_frames and "
                                               "input_feature_tokens must all be positive, on an "
                                               "encoder-decoder model)");
    }
}

ModelSession::Impl& impl_of(void* host) {
    return *static_cast<ModelSession::Impl*>(host);
}

// The C table of host services over a session's state.
void fill_services(ModelSession::Impl& impl) {
    auto& s = impl.services;
    s.struct_size = sizeof(s);
    s.abi_major = TFX_ABI_MAJOR;
    s.abi_minor = TFX_ABI_MINOR;
    s.host = &impl;
    s.log = [](void*, int32_t level, const char* message) {
        log::write(static_cast<log::Level>(std::clamp(level, 0, 4)), "plugin", message != nullptr ? message : "");
    };
    s.config_json = [](void* host) { return impl_of(host).config_text.c_str(); };
    s.get_weight = [](void* host, const char* name, tfx_tensor* out, tfx_error* error) {
        return sdk::guard(error, [&] {
            auto& session = impl_of(host);
            *out = session.on_device(session.device_weights, name, session.weights.get(name));
            if (session.lora) session.lora->note_weight(name, *out);
        });
    };
    s.get_weight_f32 = [](void* host, const char* name, tfx_tensor* out, tfx_error* error) {
        return sdk::guard(error, [&] {
            auto& session = impl_of(host);
            *out = session.on_device(session.device_weights_f32, name, session.weights.get_f32(name));
        });
    };
    s.has_weight = [](void* host, const char* name) -> int32_t { return impl_of(host).weights.has(name) ? 1 : 0; };
    s.weight_storage = [](void* host, const char* name) -> const char* {
        try {
            return impl_of(host).weights.storage_of(name);
        } catch (const std::exception&) {
            return nullptr;
        }
    };
    s.pack_stored_weight = [](void* host, const char* name, const int64_t* shape, int32_t ndim, tfx_weight** out,
                              tfx_error* error) {
        return sdk::guard(error, [&] {
            if (out == nullptr) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "pack_stored_weight: out is missing");
            if (ndim < 0 || (ndim > 0 && shape == nullptr)) {
                throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "pack_stored_weight: shape is missing");
            }
            auto& session = impl_of(host);
            *out = session.pack_stored(name, std::span<const int64_t>(shape, static_cast<size_t>(ndim)));
            if (session.lora) session.lora->attach_named(name, *out);
        });
    };
    s.all_reduce_sum = [](void* host, tfx_tensor* tensor, tfx_error* error) {
        return sdk::guard(error, [&] {
            auto& session = impl_of(host);
            if (tensor == nullptr || tensor->dtype.code != TFX_DTYPE_FLOAT || tensor->dtype.bits != 32 ||
                tensor->strides != nullptr) {
                throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "all_reduce_sum: expected a compact f32 tensor");
            }
            if (session.tensor_parallel == nullptr) return;
            sdk::View view(*tensor);
            std::vector<float> values(static_cast<size_t>(view.numel()));
            session.device->download(view, values.data());
            session.tensor_parallel->all_reduce_sum(values.data(), values.size());
            session.device->upload(values.data(), view);
        });
    };
    s.option = [](void* host, const char* key) -> const char* {
        auto& opts = impl_of(host).options;
        auto it = opts.find(key != nullptr ? key : "");
        return it == opts.end() ? nullptr : it->second.c_str();
    };
    s.ops = forwarding_ops();
    s.ops_self = &impl.ops_target;
    s.attention = forwarding_attention();
    s.attention_self = &impl.attention_target;
}

// The device a backend's manifest names first ("cpu", "cuda"; "guarded" is the tests' backend
// whose memory no one may address directly).
tfx_device device_of(const PluginRecord& backend) {
    const nlohmann::json devices = backend.provides().value("devices", nlohmann::json::array());
    const std::string first = devices.empty() || !devices[0].is_string() ? "cpu" : devices[0].get<std::string>();
    if (first == "cuda") return {TFX_DEVICE_CUDA, 0};
    if (first == "cpu") return {TFX_DEVICE_CPU, 0};
    return {TFX_DEVICE_EXT, 0};
}

bool lists(const PluginRecord& plugin, const char* field, const std::string& value) {
    const nlohmann::json values = plugin.provides().value(field, nlohmann::json::array());
    return std::find(values.begin(), values.end(), value) != values.end();
}

std::string listed(const PluginRecord& plugin, const char* field) {
    std::string out;
    for (const auto& v : plugin.provides().value(field, nlohmann::json::array())) {
        if (v.is_string()) out += (out.empty() ? "" : ", ") + v.get<std::string>();
    }
    return out.empty() ? "none" : out;
}

// Refuses a weight format or KV dtype that the chosen backend (or attention kernel) cannot run,
// naming the part that is missing.
void check_formats(const PluginRecord& backend, const PluginRecord& attention, const SessionOptions& options,
                   const std::string& format) {
    const std::string kv = sdk::dtype_name(kv_dtype_named(options.kv_dtype, "kv_dtype"));
    if (!lists(backend, "kv_dtypes", kv)) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, "backend '" + backend.name + "' cannot hold a " + kv +
                                                  " KV cache (its kv_dtypes: " + listed(backend, "kv_dtypes") + ")");
    }
    if (!lists(attention, "kv_dtypes", kv)) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, "attention '" + attention.name + "' cannot read a " + kv +
                                                  " KV cache (its kv_dtypes: " + listed(attention, "kv_dtypes") + ")");
    }
    if (!format.empty() && !lists(backend, "weight_formats", format)) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, "backend '" + backend.name + "' does not compute on weight format '" +
                                                  format +
                                                  "' (its weight_formats: " + listed(backend, "weight_formats") + ")");
    }
}

}  // namespace

std::string requested_weight_format(const SessionOptions& options) {
    std::string from_quantize;
    if (options.quantize == "int8") {
        from_quantize = "q8_0";
    } else if (options.quantize == "int4") {
        from_quantize = "q4_0";
    } else if (!options.quantize.empty()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "quantize: expected int8 or int4, got '" + options.quantize + "'");
    }
    if (!from_quantize.empty() && !options.weight_format.empty() && options.weight_format != from_quantize) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "quantize " + options.quantize + " packs weights as " +
                                                       from_quantize + ", but weight_format asks for " +
                                                       options.weight_format + ": set one of them");
    }
    return from_quantize.empty() ? options.weight_format : from_quantize;
}

bool is_float_format(const std::string& format) {
    return format == "f32" || format == "bf16" || format == "f16";
}

ModelSession::ModelSession() : impl_(std::make_unique<Impl>()) {}

fs::path model_config_path(const fs::path& model_dir) {
    if (!fs::is_directory(model_dir)) {
        throw sdk::Error(TFX_ERR_NOT_FOUND,
                         model_dir.string() + ": not a model folder (it does not exist or is not a directory)");
    }
    fs::path config_path = model_dir / "config.json";
    if (!fs::exists(config_path)) {
        throw sdk::Error(TFX_ERR_NOT_FOUND,
                         model_dir.string() + ": no config.json (is this a Hugging Face model folder?)");
    }
    return config_path;
}

std::unique_ptr<ModelSession> ModelSession::open(const fs::path& model_dir, const PluginChoice& plugins,
                                                 const SessionOptions& options) {
    const fs::path config_path = model_config_path(model_dir);
    std::unique_ptr<ModelSession> session(new ModelSession());
    Impl& impl = *session->impl_;
    session->model_dir_ = model_dir;
    impl.config_text = read_text_file(config_path);
    session->config_ = sdk::Config::parse(impl.config_text, config_path.string());
    impl.weights = WeightStore(model_dir);
    if (auto method = quantized_checkpoint::method_of(session->config_.json(), config_path.string())) {
        impl.weights.set_quantization(*method);
    }
    impl.has_weights = true;
    session->load_lora(options);
    session->bind_plugins(plugins, options);
    return session;
}

std::unique_ptr<ModelSession> ModelSession::open_gguf(std::shared_ptr<const gguf::File> file, gguf::HfView view,
                                                      const PluginChoice& plugins, const SessionOptions& options) {
    std::unique_ptr<ModelSession> session(new ModelSession());
    Impl& impl = *session->impl_;
    session->model_dir_ = file->path().parent_path();
    session->gguf_file_ = file;
    impl.config_text = view.config_json;
    session->config_ = sdk::Config::parse(impl.config_text, file->path().string() + " (metadata)");
    impl.weights = WeightStore(std::move(file), std::move(view));
    impl.has_weights = true;
    session->load_lora(options);
    session->bind_plugins(plugins, options);
    return session;
}

std::unique_ptr<ModelSession> ModelSession::for_config(const fs::path& config_path, const PluginChoice& plugins,
                                                       const SessionOptions& options) {
    std::unique_ptr<ModelSession> session(new ModelSession());
    Impl& impl = *session->impl_;
    impl.config_text = read_text_file(config_path);
    session->config_ = sdk::Config::parse(impl.config_text, config_path.string());
    impl.weights.set_source(config_path.string() + " (no weights)");
    session->bind_plugins(plugins, options);
    return session;
}

void ModelSession::load_lora(const SessionOptions& options) {
    if (options.lora.empty()) return;
    Impl& impl = *impl_;
    std::vector<lora::Adapter> adapters;
    for (const lora::AdapterSpec& spec : options.lora) {
        adapters.push_back(lora::load(
            spec, [&](const std::string& name) { return impl.weights.stored_shape(name); },
            lora::conv1d_model_type(config_.get_or<std::string>("model_type", ""))));
    }
    for (size_t i = 0; i < adapters.size(); ++i) {
        for (size_t j = 0; j < i; ++j) {
            if (adapters[i].name == adapters[j].name) {
                throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--lora: two adapters are named '" + adapters[i].name +
                                                               "'; name them apart with DIR=NAME");
            }
        }
        log::info("LoRA adapter '" + adapters[i].name + "' (" + adapters[i].dir.string() +
                  "): " + std::to_string(adapters[i].modules.size()) + " modules, r " +
                  std::to_string(adapters[i].rank) + ", scaling " + std::to_string(adapters[i].scaling) +
                  (options.merge_lora ? ", merged into the weights" : ", applied at run time"));
    }
    if (options.merge_lora) {
        impl.weights.merge_lora(adapters);
    } else {
        for (const lora::Adapter& a : adapters) {
            if (!a.replaced.empty()) {
                throw sdk::Error(TFX_ERR_UNSUPPORTED,
                                 "LoRA adapter '" + a.name +
                                     "' saves whole modules (modules_to_save: " + a.replaced.front().weight +
                                     ", ...), which replace the base's: merge it (--merge-lora)");
            }
        }
        impl.runtime_adapters = std::move(adapters);
    }
}

std::vector<std::string> ModelSession::lora_adapters() const {
    std::vector<std::string> names;
    if (impl_->lora) {
        for (const lora::Adapter& a : impl_->lora->adapters()) names.push_back(a.name);
    }
    return names;
}

uint64_t ModelSession::lora_cache_salt(int32_t adapter) const {
    if (!impl_->lora) return 0;
    const uint64_t set = adapter == lora::kActiveAdapters ? impl_->lora->active()
                         : adapter == lora::kNoAdapter    ? 0
                                                          : 1ull << adapter;
    return set * 2 + 1;  // never 0, the salt of sessions without adapters
}

std::vector<std::pair<std::string, std::string>> ModelSession::lora_adapter_dirs() const {
    std::vector<std::pair<std::string, std::string>> out;
    if (impl_->lora) {
        for (const lora::Adapter& a : impl_->lora->adapters()) out.emplace_back(a.name, a.dir.string());
    }
    return out;
}

bool ModelSession::applies_lora() const {
    return impl_->lora != nullptr;
}

int32_t ModelSession::lora_adapter_index(const std::string& name) const {
    const std::vector<std::string> names = lora_adapters();
    const auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) {
        std::string known;
        for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
        throw sdk::Error(TFX_ERR_NOT_FOUND,
                         "no LoRA adapter named '" + name + "' in this session (" +
                             (known.empty() ? std::string("it applies none at run time") : "it has " + known) + ")");
    }
    return static_cast<int32_t>(it - names.begin());
}

void ModelSession::set_active_lora(const std::vector<std::string>& names) {
    uint64_t set = 0;
    for (const std::string& name : names) set |= 1ull << lora_adapter_index(name);
    if (impl_->lora) impl_->lora->set_active(set);
}

void ModelSession::set_lora_rows(std::span<const int32_t> token_rows, std::span<const int32_t> output_rows) {
    if (!impl_->lora) return;
    const auto count = static_cast<int32_t>(impl_->lora->adapters().size());
    for (auto rows : {token_rows, output_rows}) {
        for (int32_t choice : rows) {
            if (choice >= count || choice < lora::kActiveAdapters) {
                throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                                 "LoRA adapter number " + std::to_string(choice) + " is not one of this session's");
            }
        }
    }
    impl_->lora->set_rows(token_rows, output_rows);
}

void ModelSession::bind_plugins(const PluginChoice& plugins, const SessionOptions& options) {
    Impl& impl = *impl_;
    if (plugins.model == nullptr || plugins.backend == nullptr || plugins.attention == nullptr) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "a model session needs a model, a backend and an attention plugin");
    }
    if (options.num_threads > 0) impl.options["num_threads"] = std::to_string(options.num_threads);
    impl.options["device"] = options.device;
    impl.options["task_head"] = plugins.head;
    if (options.tensor_parallel < 1) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "--tp: expected a positive number of ranks, got " + std::to_string(options.tensor_parallel));
    }
    if (options.tensor_parallel > 1) {
        if (!options.lora.empty()) {
            throw sdk::Error(TFX_ERR_UNSUPPORTED, "--tp: LoRA adapters cannot be sharded across ranks yet");
        }
        impl.tensor_parallel = &TensorParallelGroup::join(options.tensor_parallel);
        impl.options["tp_rank"] = std::to_string(impl.tensor_parallel->rank());
        impl.options["tp_size"] = std::to_string(impl.tensor_parallel->size());
    }
    fill_services(impl);

    impl.kv_dtype = kv_dtype_named(options.kv_dtype, "kv_dtype");
    if (options.matmul_precision != "highest" && options.matmul_precision != "medium") {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "matmul_precision: expected highest or medium, got '" + options.matmul_precision + "'");
    }
    impl.options["matmul_precision"] = options.matmul_precision;
    const std::string format = requested_weight_format(options);
    if (!format.empty()) impl.options["weight_format"] = format;
    check_formats(*plugins.backend, *plugins.attention, options, format);
    impl.services.device = device_of(*plugins.backend);
    impl.services.device.device_id = parse_device_spec(options.device).index;  // cuda:1 -> 1

    impl.backend = instantiate(*plugins.backend, &impl.services, TFX_KIND_BACKEND);
    const auto* backend_ops = impl.backend->table<tfx_backend_ops>();
    impl.ops_target = {backend_ops, impl.backend->self, impl.services.device};
    if (!impl.runtime_adapters.empty()) {
        impl.lora = std::make_unique<LoraRuntime>(std::move(impl.runtime_adapters), *backend_ops, impl.backend->self,
                                                  impl.services.device);
        impl.ops_target.lora = impl.lora.get();
    }
    impl.session_ops = forwarding_ops_for(*backend_ops);
    impl.services.ops = &impl.session_ops;
    if (!format.empty() && !is_float_format(format) && plugins.quantizer == nullptr) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED,
                         "weight format '" + format + "' needs a quantizer plugin, and none was chosen");
    }
    if (plugins.quantizer != nullptr) {
        impl.quantizer = instantiate(*plugins.quantizer, &impl.services, TFX_KIND_QUANTIZER);
        impl.quantize_at_pack = {impl.quantizer->table<tfx_quantizer_table>(), impl.quantizer->self,
                                 impl.quantizer.get(), format};
        // 4-bit weights keep the output projection at 8 bits, as llama-quantize does (tinystories:
        // perplexity 33.93 -> 33.78, KL from f32 0.078 -> 0.062 a token).
        if ((format == "q4_0" || format == "q4_1") && lists(*plugins.backend, "weight_formats", "q8_0") &&
            lists(*plugins.quantizer, "weight_formats", "q8_0")) {
            impl.quantize_at_pack.output_format = "q8_0";
            impl.quantize_at_pack.output_rows = config_.get_or<int64_t>("vocab_size", 0);
        }
        if (!format.empty() && !is_float_format(format)) impl.ops_target.quantize = &impl.quantize_at_pack;
        // Stored blocks the backend does not run are re-encoded to q8_0, the finest integer
        // format it runs, rather than widened to f32 (4x the bytes): q8_0's step is about a
        // quarter of Q6_K's or Q5_K's, so a weight moves by at most an eighth of its stored step.
        if (format.empty() && impl.services.device.device_type == TFX_DEVICE_CPU &&
            lists(*plugins.backend, "weight_formats", "q8_0") && lists(*plugins.quantizer, "weight_formats", "q8_0")) {
            impl.requantize = {impl.quantize_at_pack.table, impl.quantize_at_pack.self, impl.quantizer.get(), "q8_0"};
            // A quantized checkpoint's float output projection (GPTQ and AWQ leave lm_head, often
            // tied to the embeddings, in f16/f32) runs at q8_0, as --quantize and llama.cpp's files
            // keep it: stored as f32 it was 113 of SmolLM-135M int4's 167 MiB read a token.
            if (config_.json().contains("quantization_config")) {
                impl.quantize_at_pack.output_format = "q8_0";
                impl.quantize_at_pack.output_rows = config_.get_or<int64_t>("vocab_size", 0);
                impl.ops_target.quantize = &impl.quantize_at_pack;
            }
        }
        const auto* quantizer = impl.quantizer.get();
        impl.weights.set_dequantize(
            [quantizer](const std::string& f, const uint8_t* src, int64_t rows, int64_t cols, float* dst) {
                tfx_error error = sdk::empty_error();
                plugin_guard::CallScope scope(quantizer->name, quantizer->plugin.library, "dequantize()");
                sdk::check(quantizer->table<tfx_quantizer_table>()->dequantize(quantizer->self, f.c_str(), src, rows,
                                                                               cols, dst, &error),
                           error);
            });
    }
    impl.ops_target.stored = &impl.weights;
    for (const auto& f : plugins.backend->provides().value("weight_formats", nlohmann::json::array())) {
        if (f.is_string()) impl.ops_target.backend_formats.push_back(f.get<std::string>());
    }
    impl.device.emplace(forwarding_ops(), &impl.ops_target, impl.services.device);
    impl.attention = instantiate(*plugins.attention, &impl.services, TFX_KIND_ATTENTION);
    impl.attention_target = {impl.attention->table<tfx_attention_table>(),
                             impl.attention->self,
                             backend_ops,
                             impl.backend->self,
                             impl.services.device,
                             impl.attention.get()};
    impl.model = instantiate(*plugins.model, &impl.services, TFX_KIND_MODEL);
    architecture_ = plugins.architecture;
    task_head_ = plugins.head;
    log::info("model " + architecture_ + " via " + plugin_summary());
    if (impl.has_weights) {
        const auto* table = impl.model->table<tfx_model_table>();
        tfx_error error = sdk::empty_error();
        plugin_guard::CallScope scope(impl.model->name, impl.model->plugin.library, "load()");
        if (table->load(impl.model->self, architecture_.c_str(), &error) != TFX_OK) {
            // Name the checkpoint once: the store's own errors already start with it.
            const std::string prefix = impl.weights.source() + ": ";
            const std::string message = error.message;
            throw sdk::Error(error.code, message.starts_with(prefix) ? message : prefix + message);
        }
        info_.struct_size = sizeof(tfx_model_info);
        sdk::check(table->get_info(impl.model->self, &info_, &error), error);
        check_image_info(info_, impl.model->name);
        check_input_feature_info(info_, impl.model->name);
        if (impl.lora) impl.lora->check_attached();
        impl.weights.release_packed_merges();
        if (impl.ops_target.quantize != nullptr) log::info(quantized_message());
        if (impl.requantize.quantized > 0) {
            std::string formats;
            for (const std::string& f : impl.requantized_formats) formats += (formats.empty() ? "" : ", ") + f;
            log::info("re-encoded " + std::to_string(impl.requantize.quantized) + " linear weights stored as " +
                      formats + " to q8_0 (" + std::to_string(impl.requantize.encoded_bytes / (1024 * 1024)) +
                      " MiB): the backend does not run their format");
        }
        if (impl.ops_target.packed_as_stored > 0) {
            log::info(std::to_string(impl.ops_target.packed_as_stored) +
                      " linear weights packed from their stored blocks (no dequantization)");
        }
        impl.weights.drop_resident_pages();
        if (const auto resident = resident_bytes()) {
            log::info("resident memory after loading: " + std::to_string(*resident / (1024 * 1024)) + " MiB");
        }
        unused_weights_ = impl.weights.unused();
        if (!unused_weights_.empty()) log::write(log::Level::warn, "tfx", unused_message());
    }
}

// As transformers' "Some weights of the model checkpoint ... were not used": the first few
// names, then how many more.
std::string ModelSession::unused_message() const {
    constexpr size_t kListed = 10;
    const size_t n = unused_weights_.size();
    std::string text = impl_->weights.source() + ": " + std::to_string(n) + (n == 1 ? " tensor was" : " tensors were") +
                       " not used by " + architecture_ + " (" + impl_->model->name + " plugin): ";
    for (size_t i = 0; i < std::min(n, kListed); ++i) text += (i > 0 ? ", " : "") + unused_weights_[i];
    if (n > kListed) text += ", and " + std::to_string(n - kListed) + " more";
    return text;
}

// What quantization at load did: how many linear weights it encoded, their size, and how many
// it kept as stored (rows the format's blocks do not divide).
std::string ModelSession::quantized_message() const {
    const QuantizeAtPack& q = impl_->quantize_at_pack;
    std::string text = "quantized";
    if (q.quantized > 0) text += " " + std::to_string(q.quantized) + " linear weights to " + q.format;
    if (q.output_quantized > 0)
        text += std::string(q.quantized > 0 ? " and" : "") + " the output projection to " + q.output_format;
    text += " (" + std::to_string(q.encoded_bytes / (1024 * 1024)) + " MiB) with " + impl_->quantizer->name;
    if (q.kept > 0) {
        text += "; " + std::to_string(q.kept) + " kept as stored (rows not a whole number of " + q.format + " blocks)";
    }
    return text;
}

int64_t ModelSession::weights_reencoded() const {
    return impl_->requantize.quantized;
}

std::vector<std::string> ModelSession::weight_copies() const {
    return impl_->weights.copies();
}

int64_t ModelSession::weights_packed_as_stored() const {
    return impl_->ops_target.packed_as_stored;
}

ModelSession::~ModelSession() = default;

WeightStore::Usage ModelSession::weight_usage() const {
    WeightStore::Usage usage = impl_->weights.usage();
    const QuantizeAtPack& q = impl_->quantize_at_pack;
    usage.bytes = usage.bytes - std::min(usage.bytes, q.source_bytes) + q.encoded_bytes;
    usage.bytes =
        usage.bytes - std::min(usage.bytes, impl_->requantized_stored_bytes) + impl_->requantize.encoded_bytes;
    const OpsTarget& t = impl_->ops_target;
    usage.bytes = usage.bytes - std::min(usage.bytes, t.refloat_source_bytes) + t.refloat_packed_bytes;
    return usage;
}

ModelSession::MatmulWork ModelSession::matmul_work() const {
    MatmulWork work;
    for (const auto& [rows, elements] : impl_->ops_target.linear_elements_by_rows) {
        (rows == info_.vocab_size ? work.per_output_row : work.per_token) += elements;
    }
    return work;
}

std::string ModelSession::plugin_summary() const {
    return impl_->model->name + " (model) + " + impl_->backend->name + " (backend) + " + impl_->attention->name +
           " (attention)";
}

void ModelSession::forward(const tfx_forward_args& args) {
    tfx_error error = sdk::empty_error();
    plugin_guard::CallScope scope(impl_->model->name, impl_->model->plugin.library, "forward()");
    sdk::check(impl_->model->table<tfx_model_table>()->forward(impl_->model->self, &args, &error), error);
}

std::unique_ptr<PagedKvCache> ModelSession::make_cache(int32_t block_size, bool prefix_caching) const {
    return std::make_unique<PagedKvCache>(*impl_->device, info_.num_layers, info_.num_kv_heads, info_.head_dim,
                                          KvCacheOptions{impl_->kv_dtype, block_size, prefix_caching});
}

std::unique_ptr<PagedKvCache> ModelSession::make_cross_cache(int32_t block_size) const {
    if (info_.num_cross_layers <= 0) return nullptr;
    return std::make_unique<PagedKvCache>(*impl_->device, info_.num_cross_layers, info_.num_kv_heads, info_.head_dim,
                                          KvCacheOptions{impl_->kv_dtype, block_size, false});
}

const Device& ModelSession::device() const {
    return *impl_->device;
}

nlohmann::json ModelSession::weight_specs() {
    const auto* table = impl_->model->table<tfx_model_table>();
    if (!TFX_HAS_FIELD(table, tfx_model_table, weight_specs) || table->weight_specs == nullptr) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, "model plugin '" + impl_->model->name + "' cannot describe its weights");
    }
    std::string text;
    tfx_sink sink{&text, [](void* ctx, const void* data, size_t bytes) {
                      static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), bytes);
                  }};
    tfx_error error = sdk::empty_error();
    plugin_guard::CallScope scope(impl_->model->name, impl_->model->plugin.library, "weight_specs()");
    sdk::check(table->weight_specs(impl_->model->self, architecture_.c_str(), sink, &error), error);
    return nlohmann::json::parse(text);
}

}  // namespace tfx
