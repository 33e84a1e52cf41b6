#include "core/op_forwarding.h"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "core/log.h"
#include "core/lora_runtime.h"
#include "core/plugin_guard.h"
#include "core/plugin_instance.h"
#include "core/weight_store.h"
#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

// Tensor operands are checked before a plugin sees them; other arguments pass as they are.
template <class T>
const char* invalid_tensor(T, tfx_device) {
    return nullptr;
}
const char* invalid_tensor(const tfx_tensor* t, tfx_device device) {
    if (t == nullptr) return nullptr;  // optional operands (bias) are checked by the op
    if (t->data == nullptr) return "a tensor has no data";
    if (t->ndim < 0 || t->ndim > 8 || (t->ndim > 0 && t->shape == nullptr)) return "a tensor has an invalid rank";
    for (int i = 0; i < t->ndim; ++i) {
        if (t->shape[i] < 0) return "a tensor has a negative dimension";
    }
    if (t->device.device_type != device.device_type || t->device.device_id != device.device_id) {
        return "a tensor is not on the session's device (host memory handed to an op?)";
    }
    return nullptr;
}
const char* invalid_tensor(tfx_tensor* t, tfx_device device) {
    return invalid_tensor(static_cast<const tfx_tensor*>(t), device);
}

bool tracing() {
    return log::threshold() <= log::Level::trace;
}

// Names of the ops table's entries, in table order, for traces.
constexpr const char* kOpNames[] = {"alloc",
                                    "release",
                                    "map_host",
                                    "upload",
                                    "download",
                                    "run_kernel",
                                    "pack_weight",
                                    "release_weight",
                                    "linear",
                                    "embedding",
                                    "rms_norm",
                                    "layer_norm",
                                    "rope",
                                    "activation",
                                    "gated_activation",
                                    "add",
                                    "mul",
                                    "scale",
                                    "softmax",
                                    "softcap",
                                    "copy",
                                    "gather_rows",
                                    "top_k",
                                    "linear_experts",
                                    "weighted_sum",
                                    "embedding_packed",
                                    "linear_many"};
const char* op_name(size_t offset) {
    const size_t slot = (offset - offsetof(tfx_backend_ops, alloc)) / sizeof(void*);
    return slot < std::size(kOpNames) ? kOpNames[slot] : "op";
}

template <auto Member>
struct Forward;
template <class R, class... Args, R (*tfx_backend_ops::*Member)(void*, Args...)>
struct Forward<Member> {
    static size_t offset() {
        static const size_t value = [] {
            tfx_backend_ops probe{};
            return static_cast<size_t>(reinterpret_cast<const char*>(&(probe.*Member)) -
                                       reinterpret_cast<const char*>(&probe));
        }();
        return value;
    }
    static R call(void* self, Args... args) {
        auto* target = static_cast<OpsTarget*>(self);
        const bool offered =
            target->backend->struct_size >= offset() + sizeof(void*) && (target->backend->*Member) != nullptr;
        if (tracing()) log::write(log::Level::trace, "ops", op_name(offset()));
        if constexpr (std::is_void_v<R>) {
            if (offered) (target->backend->*Member)(target->backend_self, args...);
        } else {
            tfx_error* error = std::get<sizeof...(Args) - 1>(std::tie(args...));
            if (!offered) {
                sdk::fill_error(error, TFX_ERR_UNSUPPORTED, "the backend does not implement this op");
                return TFX_ERR_UNSUPPORTED;
            }
            const char* problem = nullptr;
            ((problem = problem != nullptr ? problem : invalid_tensor(args, target->device)), ...);
            if (problem != nullptr) {
                sdk::fill_error(error, TFX_ERR_INVALID_ARGUMENT, problem);
                return TFX_ERR_INVALID_ARGUMENT;
            }
            return (target->backend->*Member)(target->backend_self, args...);
        }
    }
};

// A u8 tensor [rows, row_bytes] over encoded weights, as pack_weight takes block formats.
tfx_tensor encoded_tensor(void* bytes, int64_t* shape, tfx_device device) {
    tfx_tensor t{};
    t.data = bytes;
    t.device = device;
    t.ndim = 2;
    t.dtype = {TFX_DTYPE_UINT, 8, 1};
    t.shape = shape;
    return t;
}

}  // namespace

void count_linear(OpsTarget& target, int64_t rows, int64_t cols) {
    target.linear_elements_by_rows[rows] += static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
}

bool packs_as_stored(const OpsTarget& target, const WeightStore::Encoded& stored, const char* format) {
    if (format != nullptr && stored.format != format) return false;
    const auto& listed = target.backend_formats;
    return std::find(listed.begin(), listed.end(), stored.format) != listed.end();
}

int32_t pack_as_stored(OpsTarget& target, const WeightStore::Encoded& stored, tfx_weight** out, tfx_error* error) {
    int64_t shape[2] = {stored.rows, static_cast<int64_t>(stored.row_bytes)};
    tfx_tensor bytes = encoded_tensor(const_cast<uint8_t*>(stored.bytes), shape, target.device);
    const int32_t status =
        Forward<&tfx_backend_ops::pack_weight>::call(&target, &bytes, stored.format.c_str(), out, error);
    if (status == TFX_OK) ++target.packed_as_stored;
    return status;
}

namespace {

// A whole stored tensor handed out dequantized (get_weight), when the backend computes on its
// format and the session asks for no other: the stored bytes, packed as they are.
const WeightStore::Encoded* packable_as_stored(const OpsTarget& target, const tfx_tensor* w, const char* format) {
    if (target.stored == nullptr || w == nullptr || w->ndim != 2 || w->strides != nullptr || w->byte_offset != 0) {
        return nullptr;
    }
    const WeightStore::Encoded* e = target.stored->encoded_behind(w->data);
    if (e == nullptr || w->shape[0] != e->rows || w->shape[1] != e->cols) return nullptr;
    return packs_as_stored(target, *e, format) ? e : nullptr;
}

// pack_weight: stored blocks packed as they are where the backend computes on them; else, with
// the session's quantization at load, the weight (in host memory: quantizers work on the host)
// encoded by the quantizer, then packed from the encoded bytes.
int32_t pack_weight_as_asked(void* self, const tfx_tensor* w, const char* format, tfx_weight** out, tfx_error* error) {
    using Plain = Forward<&tfx_backend_ops::pack_weight>;
    auto* target = static_cast<OpsTarget*>(self);
    if (const WeightStore::Encoded* e = packable_as_stored(*target, w, format))
        return pack_as_stored(*target, *e, out, error);
    QuantizeAtPack* q = target->quantize;
    // The session's format for every linear, or (no format asked for) its output format alone.
    const bool every_linear = q != nullptr && format != nullptr && q->format == format;
    const bool output_alone = q != nullptr && format == nullptr && q->format.empty() && !q->output_format.empty() &&
                              w != nullptr && w->ndim == 2 && w->shape[0] == q->output_rows;
    if (!every_linear && !output_alone) {
        const int32_t status = Plain::call(self, w, format, out, error);
        const int bits = format == nullptr                                                         ? 0
                         : std::string_view(format) == "f32"                                       ? 32
                         : std::string_view(format) == "bf16" || std::string_view(format) == "f16" ? 16
                                                                                                   : 0;
        if (status == TFX_OK && bits > 0 && w != nullptr && w->dtype.bits != bits) {
            uint64_t elements = 1;
            for (int i = 0; i < w->ndim; ++i) elements *= static_cast<uint64_t>(w->shape[i]);
            target->refloat_source_bytes += elements * (w->dtype.bits / 8);
            target->refloat_packed_bytes += elements * static_cast<uint64_t>(bits / 8);
        }
        return status;
    }
    if (const char* problem = invalid_tensor(w, target->device)) {
        sdk::fill_error(error, TFX_ERR_INVALID_ARGUMENT, problem);
        return TFX_ERR_INVALID_ARGUMENT;
    }
    if (w->ndim != 2) {
        sdk::fill_error(error, TFX_ERR_INVALID_ARGUMENT, "pack_weight: expected a 2-D weight [out, in]");
        return TFX_ERR_INVALID_ARGUMENT;
    }
    if (target->device.device_type != TFX_DEVICE_CPU) {
        sdk::fill_error(error, TFX_ERR_UNSUPPORTED,
                        "quantizing at load needs a backend on host memory (cpu); this one is not");
        return TFX_ERR_UNSUPPORTED;
    }
    const int64_t rows = w->shape[0], cols = w->shape[1];
    // The output projection (vocabulary rows) keeps a finer format where the session names one.
    const bool output = !q->output_format.empty() && rows == q->output_rows;
    const char* use = output ? q->output_format.c_str() : format;
    const uint64_t row_bytes = [&] {
        plugin_guard::CallScope scope(q->plugin->name, q->plugin->plugin.library, "row_bytes()");
        return q->table->row_bytes(q->self, use, cols);
    }();
    if (row_bytes == 0) {
        ++q->kept;
        return Plain::call(self, w, nullptr, out, error);
    }
    std::vector<uint8_t> encoded;
    try {
        encoded.resize(row_bytes * static_cast<uint64_t>(rows));
    } catch (const std::bad_alloc&) {
        sdk::fill_error(error, TFX_ERR_OUT_OF_MEMORY, "quantizing a weight: out of memory");
        return TFX_ERR_OUT_OF_MEMORY;
    }
    if (const int32_t status =
            [&] {
                plugin_guard::CallScope scope(q->plugin->name, q->plugin->plugin.library, "quantize()");
                return q->table->quantize(q->self, use, w, encoded.data(), encoded.size(), error);
            }();
        status != TFX_OK) {
        return status;
    }
    int64_t shape[2] = {rows, static_cast<int64_t>(row_bytes)};
    tfx_tensor bytes = encoded_tensor(encoded.data(), shape, target->device);
    const int32_t status = Plain::call(self, &bytes, use, out, error);
    if (status == TFX_OK) {
        ++(output ? q->output_quantized : q->quantized);
        q->encoded_bytes += encoded.size();
        q->source_bytes += static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) * (w->dtype.bits / 8);
    }
    return status;
}

// The forwarding table's pack_weight: then LoRA adapters attach to what was packed.
int32_t pack_weight(void* self, const tfx_tensor* w, const char* format, tfx_weight** out, tfx_error* error) {
    const int32_t status = pack_weight_as_asked(self, w, format, out, error);
    auto* target = static_cast<OpsTarget*>(self);
    if (status == TFX_OK && w != nullptr && w->ndim == 2 && w->dtype.code != TFX_DTYPE_UINT) {
        count_linear(*target, w->shape[0], w->shape[1]);
    }
    if (status != TFX_OK || target->lora == nullptr || w == nullptr) return status;
    return sdk::guard(error, [&] { target->lora->attach_view(*w, *out); });
}

void release_weight(void* self, tfx_weight* w) {
    auto* target = static_cast<OpsTarget*>(self);
    if (target->lora != nullptr) target->lora->detach(w);
    Forward<&tfx_backend_ops::release_weight>::call(self, w);
}

int32_t linear(void* self, const tfx_tensor* x, const tfx_weight* w, const tfx_tensor* bias, tfx_tensor* y,
               tfx_error* error) {
    const int32_t status = Forward<&tfx_backend_ops::linear>::call(self, x, w, bias, y, error);
    auto* target = static_cast<OpsTarget*>(self);
    if (status != TFX_OK || target->lora == nullptr) return status;
    return target->lora->apply(x, w, y, error);
}

int32_t linear_experts(void* self, const tfx_tensor* x, const tfx_weight* const* experts, int32_t count,
                       const tfx_tensor* ids, tfx_tensor* y, tfx_error* error) {
    auto* target = static_cast<OpsTarget*>(self);
    for (int32_t i = 0; target->lora != nullptr && experts != nullptr && i < count; ++i) {
        if (target->lora->adapts(experts[i])) {
            sdk::fill_error(error, TFX_ERR_UNSUPPORTED,
                            "LoRA on mixture-of-experts weights runs merged only (--merge-lora)");
            return TFX_ERR_UNSUPPORTED;
        }
    }
    return Forward<&tfx_backend_ops::linear_experts>::call(self, x, experts, count, ids, y, error);
}

// linear_many: every tensor of the lists checked as the single-tensor ops check theirs.
int32_t linear_many(void* self, const tfx_tensor* x, const tfx_weight* const* ws, const tfx_tensor* const* biases,
                    int32_t count, tfx_tensor* const* ys, tfx_error* error) {
    auto* target = static_cast<OpsTarget*>(self);
    const char* problem = count < 0 || ws == nullptr || ys == nullptr ? "linear_many: weights and outputs are required"
                                                                      : invalid_tensor(x, target->device);
    for (int32_t i = 0; problem == nullptr && i < count; ++i) {
        problem = invalid_tensor(ys[i], target->device);
        if (problem == nullptr && biases != nullptr) problem = invalid_tensor(biases[i], target->device);
    }
    if (problem != nullptr) {
        sdk::fill_error(error, TFX_ERR_INVALID_ARGUMENT, problem);
        return TFX_ERR_INVALID_ARGUMENT;
    }
    const int32_t status = Forward<&tfx_backend_ops::linear_many>::call(self, x, ws, biases, count, ys, error);
    for (int32_t i = 0; status == TFX_OK && target->lora != nullptr && i < count; ++i) {
        if (const int32_t applied = target->lora->apply(x, ws[i], ys[i], error); applied != TFX_OK) return applied;
    }
    return status;
}

const tfx_backend_ops kForwardingOps = {
    sizeof(tfx_backend_ops),
    Forward<&tfx_backend_ops::alloc>::call,
    Forward<&tfx_backend_ops::release>::call,
    Forward<&tfx_backend_ops::map_host>::call,
    Forward<&tfx_backend_ops::upload>::call,
    Forward<&tfx_backend_ops::download>::call,
    Forward<&tfx_backend_ops::run_kernel>::call,
    pack_weight,
    release_weight,
    linear,
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
    Forward<&tfx_backend_ops::gather_rows>::call,
    Forward<&tfx_backend_ops::top_k>::call,
    linear_experts,
    Forward<&tfx_backend_ops::weighted_sum>::call,
    Forward<&tfx_backend_ops::embedding_packed>::call,
    linear_many,
};

// The attention call's operands: q, k, v and out present, of rank 3 and on the device; a batch
// whose token count matches q (and with cross-attention a kv_batch whose count matches k).
// Args from model plugins built before ABI 2.4 end before kv_batch: no cross-attention.
// ABI 2.7's relative keys and queries (DeBERTa), when given.
const char* invalid_disentangled(const tfx_attention_args* a, const tfx_device& device) {
    const bool tables = a->relative_k != nullptr || a->relative_q != nullptr;
    if (tables != (a->relative_columns != nullptr))
        return "attention: relative_k and relative_q come with relative_columns, and relative_columns with one of them";
    if (!tables) return nullptr;
    if (a->cache != nullptr || (TFX_HAS_FIELD(a, tfx_attention_args, kv_batch) && a->kv_batch != nullptr))
        return "attention: relative_k and relative_q are for cache-less self-attention (cache and kv_batch NULL)";
    if (a->relative_span <= 0) return "attention: relative_k and relative_q need a positive relative_span";
    const tfx_tensor* columns = a->relative_columns;
    if (const char* problem = invalid_tensor(columns, device)) return problem;
    if (columns->dtype.code != TFX_DTYPE_INT || columns->dtype.bits != 32 || columns->ndim != 1 ||
        columns->shape[0] != 2 * static_cast<int64_t>(a->relative_span) + 1 || columns->strides != nullptr)
        return "attention: relative_columns must be contiguous i32 [2 * relative_span + 1]";
    int64_t rows = -1;
    for (const tfx_tensor* t : {a->relative_k, a->relative_q}) {
        if (t == nullptr) continue;
        if (const char* problem = invalid_tensor(t, device)) return problem;
        if (t->dtype.code != TFX_DTYPE_FLOAT || t->dtype.bits != 32 || t->ndim != 3 || t->shape[1] != a->q->shape[1] ||
            t->shape[2] != a->q->shape[2] || t->strides != nullptr || (rows >= 0 && t->shape[0] != rows))
            return "attention: relative_k and relative_q must be contiguous f32 [rows, heads, head_dim], the same rows";
        rows = t->shape[0];
    }
    return nullptr;
}

const char* invalid_attention(const tfx_attention_args* a, tfx_device device) {
    if (a == nullptr || a->struct_size < offsetof(tfx_attention_args, kv_batch)) {
        return "attention args are missing or too small";
    }
    for (const tfx_tensor* t : {a->q, a->k, a->v, static_cast<const tfx_tensor*>(a->out)}) {
        if (t == nullptr) return "attention needs q, k, v and out";
        if (const char* problem = invalid_tensor(t, device)) return problem;
        if (t->ndim != 3) return "attention tensors must be [tokens, heads, head_dim]";
    }
    if (a->batch == nullptr || a->batch->struct_size < sizeof(tfx_batch)) return "attention needs the batch";
    if (a->batch->num_tokens != a->q->shape[0]) return "attention: q's tokens differ from the batch's";
    if (a->cache != nullptr && (a->batch->block_table == nullptr || a->batch->slot_mapping == nullptr)) {
        return "attention with a cache needs the batch's block table and slot mapping";
    }
    if (a->window_ahead < 0 || (a->window_ahead > 0 && a->causal != 0)) {
        return "attention: window_ahead must be 0, or positive with causal 0";
    }
    const tfx_batch* kv = TFX_HAS_FIELD(a, tfx_attention_args, kv_batch) ? a->kv_batch : nullptr;
    if (kv != nullptr) {
        if (kv->struct_size < sizeof(tfx_batch)) return "attention: kv_batch is too small";
        if (kv->num_seqs != a->batch->num_seqs) return "attention: kv_batch's sequences differ from the batch's";
        if (kv->num_tokens != a->k->shape[0] || kv->num_tokens != a->v->shape[0]) {
            return "attention: k's and v's tokens differ from kv_batch's";
        }
        if (a->causal != 0 || a->sliding_window != 0 || a->window_ahead != 0) {
            return "attention: cross-attention (kv_batch) takes no causal mask or window";
        }
        if (a->cache != nullptr && (kv->block_table == nullptr || kv->slot_mapping == nullptr)) {
            return "attention with a cache needs kv_batch's block table and slot mapping";
        }
    }
    const tfx_tensor* bias = TFX_HAS_FIELD(a, tfx_attention_args, relative_span) ? a->relative_bias : nullptr;
    if (bias != nullptr) {
        if (kv != nullptr) return "attention: relative_bias is for self-attention (kv_batch must be NULL)";
        if (a->relative_span <= 0) return "attention: relative_bias needs a positive relative_span";
        if (const char* problem = invalid_tensor(bias, device)) return problem;
        if (bias->dtype.code != TFX_DTYPE_FLOAT || bias->dtype.bits != 32 || bias->ndim != 2 ||
            bias->shape[0] != 2 * static_cast<int64_t>(a->relative_span) + 1 || bias->shape[1] != a->q->shape[1] ||
            bias->strides != nullptr) {
            return "attention: relative_bias must be contiguous f32 [2 * relative_span + 1, heads]";
        }
    }
    if (TFX_HAS_FIELD(a, tfx_attention_args, relative_columns)) return invalid_disentangled(a, device);
    return nullptr;
}

// The attention plugin's kernel, run by the backend where its memory is addressable.
struct AttendKernel {
    const AttentionTarget* target;
    const tfx_attention_args* args;
    static int32_t run(void* ctx, tfx_error* error) {
        auto* k = static_cast<AttendKernel*>(ctx);
        const PluginInstance* plugin = k->target->plugin;
        if (plugin == nullptr) return k->target->table->attend(k->target->self, k->args, error);
        plugin_guard::CallScope scope(plugin->name, plugin->plugin.library, "attend()");
        return k->target->table->attend(k->target->self, k->args, error);
    }
};

int32_t forward_attend(void* self, const tfx_attention_args* args, tfx_error* error) {
    auto* target = static_cast<AttentionTarget*>(self);
    if (const char* problem = invalid_attention(args, target->device)) {
        sdk::fill_error(error, TFX_ERR_INVALID_ARGUMENT, problem);
        return TFX_ERR_INVALID_ARGUMENT;
    }
    if (tracing()) {
        log::write(log::Level::trace, "attention",
                   "attend tokens=" + std::to_string(args->batch->num_tokens) +
                       " sequences=" + std::to_string(args->batch->num_seqs) +
                       " max_context=" + std::to_string(args->batch->max_context_len));
    }
    // A 2.2 plugin reads window_ahead as a reserved field and would attend past the window.
    const PluginInstance* plugin = target->plugin;
    if (args->window_ahead > 0 && plugin != nullptr && plugin->plugin.descriptor != nullptr &&
        plugin->plugin.descriptor->abi_minor < 3) {
        const std::string message = "attention plugin " + plugin->name + " speaks ABI 2." +
                                    std::to_string(plugin->plugin.descriptor->abi_minor) +
                                    ", which has no window ahead (2.3): this model's local attention needs a newer one";
        sdk::fill_error(error, TFX_ERR_UNSUPPORTED, message.c_str());
        return TFX_ERR_UNSUPPORTED;
    }
    // A 2.3 plugin does not read kv_batch and would attend as self-attention.
    if (TFX_HAS_FIELD(args, tfx_attention_args, kv_batch) && args->kv_batch != nullptr && plugin != nullptr &&
        plugin->plugin.descriptor != nullptr && plugin->plugin.descriptor->abi_minor < 4) {
        const std::string message = "attention plugin " + plugin->name + " speaks ABI 2." +
                                    std::to_string(plugin->plugin.descriptor->abi_minor) +
                                    ", which has no cross-attention (2.4): an encoder-decoder model needs a newer one";
        sdk::fill_error(error, TFX_ERR_UNSUPPORTED, message.c_str());
        return TFX_ERR_UNSUPPORTED;
    }
    // A 2.5 plugin does not read relative_bias and would attend without it.
    if (TFX_HAS_FIELD(args, tfx_attention_args, relative_span) && args->relative_bias != nullptr && plugin != nullptr &&
        plugin->plugin.descriptor != nullptr && plugin->plugin.descriptor->abi_minor < 6) {
        const std::string message = "attention plugin " + plugin->name + " speaks ABI 2." +
                                    std::to_string(plugin->plugin.descriptor->abi_minor) +
                                    ", which has no relative position bias (2.6): this model (T5) needs a newer one";
        sdk::fill_error(error, TFX_ERR_UNSUPPORTED, message.c_str());
        return TFX_ERR_UNSUPPORTED;
    }
    // A 2.6 plugin does not read relative_k / relative_q and would attend without them.
    if (TFX_HAS_FIELD(args, tfx_attention_args, relative_columns) && args->relative_columns != nullptr &&
        plugin != nullptr && plugin->plugin.descriptor != nullptr && plugin->plugin.descriptor->abi_minor < 7) {
        const std::string message = "attention plugin " + plugin->name + " speaks ABI 2." +
                                    std::to_string(plugin->plugin.descriptor->abi_minor) +
                                    ", which has no disentangled relative attention (2.7): this model (DeBERTa) "
                                    "needs a newer one";
        sdk::fill_error(error, TFX_ERR_UNSUPPORTED, message.c_str());
        return TFX_ERR_UNSUPPORTED;
    }
    AttendKernel kernel{target, args};
    if (target->backend == nullptr || target->backend->run_kernel == nullptr) {
        sdk::fill_error(error, TFX_ERR_UNSUPPORTED, "the backend cannot run attention kernels (no run_kernel)");
        return TFX_ERR_UNSUPPORTED;
    }
    return target->backend->run_kernel(target->backend_self, &AttendKernel::run, &kernel, error);
}

const tfx_attention_table kForwardingAttention = {sizeof(tfx_attention_table), forward_attend};

}  // namespace

tfx_backend_ops forwarding_ops_for(const tfx_backend_ops& backend) {
    tfx_backend_ops ops = kForwardingOps;
    const size_t optional = offsetof(tfx_backend_ops, embedding_packed);
    if (backend.struct_size < optional + sizeof(void*) || backend.embedding_packed == nullptr) {
        ops.embedding_packed = nullptr;
    }
    const size_t many = offsetof(tfx_backend_ops, linear_many);
    if (backend.struct_size < many + sizeof(void*) || backend.linear_many == nullptr) ops.linear_many = nullptr;
    return ops;
}

const tfx_backend_ops* forwarding_ops() {
    return &kForwardingOps;
}
const tfx_attention_table* forwarding_attention() {
    return &kForwardingAttention;
}

}  // namespace tfx
