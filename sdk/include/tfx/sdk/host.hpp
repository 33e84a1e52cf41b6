// The host's services as a C++ object for plugin authors: every call checks its status and
// throws tfx::sdk::Error with the callee's message, so model code reads like the reference.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "tfx/host.h"
#include "tfx/sdk/config.hpp"
#include "tfx/sdk/error.hpp"
#include "tfx/sdk/tensor.hpp"

namespace tfx::sdk {

class Host {
  public:
    explicit Host(const tfx_host_services* services) : s_(services) {
        if (s_ == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "no host services");
    }

    void log(tfx_log_level level, const std::string& message) const {
        if (s_->log != nullptr) s_->log(s_->host, level, message.c_str());
    }

    // A session option ("num_threads", ...), or nullopt when the host does not set it.
    std::optional<std::string> option(const char* key) const {
        if (!TFX_HAS_FIELD(s_, tfx_host_services, option) || s_->option == nullptr) return std::nullopt;
        const char* value = s_->option(s_->host, key);
        return value != nullptr ? std::optional<std::string>(value) : std::nullopt;
    }

    // Tensor parallelism (ABI 2.11): this process's rank among the tp_size() ranks that share
    // each layer (0 of 1 without it).
    int64_t tp_rank() const { return option_number("tp_rank", 0); }
    int64_t tp_size() const { return option_number("tp_size", 1); }
    // x = its sum over the tensor-parallel ranks (the partial products of a layer whose input
    // features are split); nothing without tensor parallelism.
    void all_reduce(View& x) const {
        if (tp_size() == 1) return;
        require(TFX_HAS_FIELD(s_, tfx_host_services, all_reduce_sum) && s_->all_reduce_sum != nullptr,
                "all_reduce_sum");
        tfx_error e = empty_error();
        check(s_->all_reduce_sum(s_->host, x.get(), &e), e);
    }

    // The task head the host chose from the plugin's manifest ("causal_lm", "base", ...),
    // checked against those this model file implements.
    std::string task_head(std::initializer_list<const char*> implemented) const {
        const std::optional<std::string> head = option("task_head");
        if (!head) throw Error(TFX_ERR_INVALID_ARGUMENT, "the host did not name a task head");
        std::string list;
        for (const char* h : implemented) {
            if (*head == h) return *head;
            list += (list.empty() ? "" : ", ") + std::string(h);
        }
        throw Error(TFX_ERR_UNSUPPORTED, "unsupported task head '" + *head + "' (" + list + ")");
    }

    Config config() const {
        require(s_->config_json != nullptr, "config");
        return Config::parse(s_->config_json(s_->host), "config.json");
    }

    bool has_weight(const std::string& name) const {
        return s_->has_weight != nullptr && s_->has_weight(s_->host, name.c_str()) != 0;
    }
    // The tensor as stored; throws when absent or (if given) when its shape differs.
    View weight(const std::string& name, std::span<const int64_t> expected = {}) const {
        return fetch(s_->get_weight, name, expected);
    }
    View weight(const std::string& name, std::initializer_list<int64_t> expected) const {
        return weight(name, std::span<const int64_t>(expected.begin(), expected.size()));
    }
    View weight_f32(const std::string& name, std::span<const int64_t> expected = {}) const {
        return fetch(s_->get_weight_f32, name, expected);
    }
    View weight_f32(const std::string& name, std::initializer_list<int64_t> expected) const {
        return weight_f32(name, std::span<const int64_t>(expected.begin(), expected.size()));
    }

    // The backend's device, where every tensor handed to ops lives.
    tfx_device device() const { return TFX_HAS_FIELD(s_, tfx_host_services, device) ? s_->device : kHostDevice; }

    // Memory on the backend's device, and transfers (through the host's forwarding table).
    void* alloc(uint64_t bytes) const {
        void* data = nullptr;
        run(s_->ops->alloc, bytes, &data);
        return data;
    }
    void free(void* data) const {
        if (data != nullptr && s_->ops != nullptr) s_->ops->release(s_->ops_self, data);
    }
    void upload(const void* host, View& dst) const { run(s_->ops->upload, host, dst.get()); }
    // The bytes of a compact device tensor, into host memory (a few ids a forward needs on the host).
    void download(const View& src, void* host) const { run(s_->ops->download, src.get(), host); }

    // Compute, forwarded by the host to the session's backend. Linear weights are packed into
    // the session's weight format ("weight_format" option), else kept in their stored dtype.
    tfx_weight* pack(const View& w) const {
        const std::optional<std::string> format = option("weight_format");
        tfx_weight* out = nullptr;
        run(s_->ops->pack_weight, w.get(), format ? format->c_str() : nullptr, &out);
        return out;
    }
    // The stored linear weight `name` packed as pack() packs weight(name), without its values
    // passing through the plugin (block-quantized files stay packed; no host copy is kept).
    tfx_weight* pack_stored(const std::string& name, std::span<const int64_t> expected) const {
        if (!TFX_HAS_FIELD(s_, tfx_host_services, pack_stored_weight) || s_->pack_stored_weight == nullptr) {
            return pack(weight(name, expected));
        }
        tfx_weight* out = nullptr;
        tfx_error e = empty_error();
        check(s_->pack_stored_weight(s_->host, name.c_str(), expected.data(), static_cast<int32_t>(expected.size()),
                                     &out, &e),
              e);
        return out;
    }
    void release(tfx_weight* w) const { s_->ops->release_weight(s_->ops_self, w); }
    void linear(const View& x, const tfx_weight* w, const View* bias, View& y) const {
        run(s_->ops->linear, x.get(), w, bias ? bias->get() : nullptr, y.get());
    }
    void embedding(const View& table, const View& ids, View& y) const {
        run(s_->ops->embedding, table.get(), ids.get(), y.get());
    }
    // ys[i] = x · ws[i]ᵀ (+ biases[i]) in one backend call (ABI 2.2; has_linear_many() says
    // whether the backend offers it).
    bool has_linear_many() const {
        return TFX_HAS_FIELD(s_->ops, tfx_backend_ops, linear_many) && s_->ops->linear_many != nullptr;
    }
    void linear_many(const View& x, const tfx_weight* const* ws, const tfx_tensor* const* biases, int32_t count,
                     tfx_tensor* const* ys) const {
        run(s_->ops->linear_many, x.get(), ws, biases, count, ys);
    }
    // Rows of a packed weight as f32 (ABI 2.2; has_embedding_packed() says whether the backend
    // offers it).
    bool has_embedding_packed() const {
        return TFX_HAS_FIELD(s_->ops, tfx_backend_ops, embedding_packed) && s_->ops->embedding_packed != nullptr;
    }
    void embedding_packed(const tfx_weight* table, const View& ids, View& y) const {
        run(s_->ops->embedding_packed, table, ids.get(), y.get());
    }
    // How the tensor `name` is stored ("f32", "bf16", "q8_0", "gptq", ...); empty when it is
    // absent or the host predates ABI 2.2.
    std::string weight_storage(const std::string& name) const {
        if (!TFX_HAS_FIELD(s_, tfx_host_services, weight_storage) || s_->weight_storage == nullptr) return {};
        const char* storage = s_->weight_storage(s_->host, name.c_str());
        return storage != nullptr ? storage : "";
    }
    void rms_norm(const View& x, const View& w, float eps, float weight_offset, View& y) const {
        run(s_->ops->rms_norm, x.get(), w.get(), eps, weight_offset, y.get());
    }
    void layer_norm(const View& x, const View& w, const View* b, float eps, View& y) const {
        run(s_->ops->layer_norm, x.get(), w.get(), b ? b->get() : nullptr, eps, y.get());
    }
    void rope(View& x, const View& positions, const View& inv_freq, float attention_scaling) const {
        run(s_->ops->rope, x.get(), positions.get(), inv_freq.get(), attention_scaling);
    }
    void activation(tfx_activation act, const View& x, View& y) const {
        run(s_->ops->activation, static_cast<int32_t>(act), x.get(), y.get());
    }
    void gated_activation(tfx_activation act, const View& gate, const View& up, View& y) const {
        run(s_->ops->gated_activation, static_cast<int32_t>(act), gate.get(), up.get(), y.get());
    }
    void add(const View& a, const View& b, View& y) const { run(s_->ops->add, a.get(), b.get(), y.get()); }
    void mul(const View& a, const View& b, View& y) const { run(s_->ops->mul, a.get(), b.get(), y.get()); }
    void scale(const View& x, float factor, View& y) const { run(s_->ops->scale, x.get(), factor, y.get()); }
    void softmax(const View& x, View& y) const { run(s_->ops->softmax, x.get(), y.get()); }
    void softcap(const View& x, float cap, View& y) const { run(s_->ops->softcap, x.get(), cap, y.get()); }
    void copy(const View& src, View& dst) const { run(s_->ops->copy, src.get(), dst.get()); }
    void gather_rows(const View& x, const View& rows, View& y) const {
        run(s_->ops->gather_rows, x.get(), rows.get(), y.get());
    }
    void top_k(const View& x, int32_t k, bool normalize, View& ids, View& weights) const {
        run(s_->ops->top_k, x.get(), k, normalize ? 1 : 0, ids.get(), weights.get());
    }
    void linear_experts(const View& x, std::span<const tfx_weight* const> experts, const View& ids, View& y) const {
        run(s_->ops->linear_experts, x.get(), experts.data(), static_cast<int32_t>(experts.size()), ids.get(), y.get());
    }
    void weighted_sum(const View& x, const View& weights, View& y) const {
        run(s_->ops->weighted_sum, x.get(), weights.get(), y.get());
    }

    void attend(const tfx_attention_args& args) const {
        require(s_->attention != nullptr, "attention");
        tfx_error e = empty_error();
        check(s_->attention->attend(s_->attention_self, &args, &e), e);
    }

  private:
    int64_t option_number(const char* key, int64_t absent) const {
        const std::optional<std::string> value = option(key);
        if (!value) return absent;
        try {
            return std::stoll(*value);
        } catch (const std::exception&) {
            throw Error(TFX_ERR_INVALID_ARGUMENT,
                        std::string("host option ") + key + ": not a number: '" + *value + "'");
        }
    }

    static void require(bool offered, const char* what) {
        if (!offered) {
            throw Error(TFX_ERR_UNSUPPORTED, std::string("host offers no ") + what + " service");
        }
    }

    template <class Fn, class... Args>
    void run(Fn fn, Args... args) const {
        require(s_->ops != nullptr, "ops");
        tfx_error e = empty_error();
        check(fn(s_->ops_self, args..., &e), e);
    }

    template <class Fn>
    View fetch(Fn fn, const std::string& name, std::span<const int64_t> expected) const {
        require(fn != nullptr, "weights");
        tfx_tensor t{};
        tfx_error e = empty_error();
        check(fn(s_->host, name.c_str(), &t, &e), e);
        View v(t);
        if (expected.size() != 0 && !std::equal(expected.begin(), expected.end(), v.shape().begin(), v.shape().end())) {
            std::string want, got;
            for (int64_t d : expected) want += (want.empty() ? "" : ", ") + std::to_string(d);
            for (int64_t d : v.shape()) got += (got.empty() ? "" : ", ") + std::to_string(d);
            throw Error(TFX_ERR_FORMAT, "tensor '" + name + "': expected shape [" + want + "], found [" + got + "]");
        }
        return v;
    }

    const tfx_host_services* s_;
};

}  // namespace tfx::sdk

namespace tfx::sdk {

// Device memory that grows to the largest size asked of it and is freed with the object: a
// forward's scratch, a small parameter uploaded once. Growing loses the contents.
class DeviceBuffer {
  public:
    explicit DeviceBuffer(const Host& host) : host_(&host) {}
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    ~DeviceBuffer() { host_->free(data_); }

    // At least `bytes` bytes of device memory (allocated only when it must grow).
    void* reserve(uint64_t bytes) {
        if (bytes > bytes_) {
            host_->free(std::exchange(data_, nullptr));
            bytes_ = 0;
            data_ = host_->alloc(bytes);
            bytes_ = bytes;
        }
        return data_;
    }
    // A compact view of `shape` over the buffer, grown to fit.
    View view(tfx_dtype dtype, std::initializer_list<int64_t> shape) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        return View(reserve(static_cast<uint64_t>(std::max<int64_t>(n, 1)) * (dtype.bits / 8)), dtype, shape,
                    host_->device());
    }

  private:
    const Host* host_;
    void* data_ = nullptr;
    uint64_t bytes_ = 0;
};

}  // namespace tfx::sdk
