// Plumbing every model file needs and none should repeat: a linear layer that owns its
// packed weight, one weight table that both load() and weight_specs() read (each tensor is
// declared once, as llama.cpp's create_tensor does), the activation named by config.json,
// the attention call, and the writer of a forward's output rows. Model semantics stay in the
// model files; these are mechanisms.
#pragma once

#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfx/model.h"
#include "tfx/sdk/host.hpp"

namespace tfx::sdk {

// transformers' ACT2FN names for the activations the backends implement.
inline tfx_activation activation_named(const Config& c, const char* field, const std::string& name) {
    if (name == "silu" || name == "swish") return TFX_ACT_SILU;
    if (name == "gelu") return TFX_ACT_GELU;
    if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return TFX_ACT_GELU_TANH;
    if (name == "relu") return TFX_ACT_RELU;
    c.fail(field, "unsupported activation '" + name + "' (silu, swish, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu)");
}

// The activation config.json names in `field` (hidden_act, hidden_activation, ...).
inline tfx_activation activation_from(const Config& c, const char* field = "hidden_act",
                                      const char* fallback = "silu") {
    return activation_named(c, field, c.get_or<std::string>(field, fallback));
}

// Each named field must be a positive integer; returns nothing, throws naming the field.
inline void require_positive(const Config& c, std::initializer_list<std::pair<const char*, int64_t>> fields) {
    for (const auto& [name, value] : fields) {
        if (value <= 0) c.fail(name, "must be positive");
    }
}

// y = x W^T (+ b). The weight is packed by the backend and released with the layer.
class Linear {
public:
    Linear() = default;
    Linear(const Host& host, tfx_weight* weight, View bias, bool has_bias)
        : host_(&host), weight_(weight), bias_(std::move(bias)), has_bias_(has_bias) {}
    Linear(Linear&& other) noexcept { *this = std::move(other); }
    Linear& operator=(Linear&& other) noexcept {
        if (this != &other) {
            reset();
            host_ = std::exchange(other.host_, nullptr);
            weight_ = std::exchange(other.weight_, nullptr);
            bias_ = other.bias_;
            has_bias_ = other.has_bias_;
        }
        return *this;
    }
    Linear(const Linear&) = delete;
    Linear& operator=(const Linear&) = delete;
    ~Linear() { reset(); }

    void operator()(const View& x, View& y) const { host_->linear(x, weight_, has_bias_ ? &bias_ : nullptr, y); }
    explicit operator bool() const { return weight_ != nullptr; }

private:
    void reset() {
        if (weight_ != nullptr) host_->release(weight_);
        weight_ = nullptr;
    }

    const Host* host_ = nullptr;
    tfx_weight* weight_ = nullptr;
    View bias_;
    bool has_bias_ = false;
};

// How init-model fills a tensor that has no checkpoint.
enum class Init { normal, ones, zeros };

// The tensors of a model, declared once. Loading reads them through the host (shapes
// checked); describing records {"name", "shape", "init"} for weight_specs() and returns
// empty views, so one declare() function serves both.
class WeightTable {
public:
    enum class Mode { load, describe };
    WeightTable(const Host& host, Mode mode) : host_(host), mode_(mode) {}

    bool describing() const { return mode_ == Mode::describe; }

    // The name prefix of the checkpoint: `prefix` when `probe` is stored under it (a
    // ...ForCausalLM checkpoint stores "model.embed_tokens.weight", a bare base model
    // "embed_tokens.weight"); when describing, `prefix` iff `describe_with_prefix`.
    std::string prefix(const std::string& prefix, const std::string& probe, bool describe_with_prefix) const {
        if (describing()) return describe_with_prefix ? prefix : "";
        return host_.has_weight(prefix + probe) ? prefix : "";
    }
    // Whether an optional tensor is stored (describing: whether the canonical layout has it).
    bool has(const std::string& name, bool described = true) const {
        return describing() ? described : host_.has_weight(name);
    }

    // The tensor as stored (f32, bf16 or f16), e.g. an embedding table.
    View tensor(const std::string& name, std::vector<int64_t> shape, Init init = Init::normal) {
        if (describing()) return describe(name, std::move(shape), init);
        return host_.weight(name, shape);
    }
    // The first stored of two names of one tensor (tied embeddings: either side of the tie);
    // describing: the first.
    View tensor_or(const std::string& name, const std::string& alias, std::vector<int64_t> shape) {
        if (describing() || host_.has_weight(name)) return tensor(name, std::move(shape));
        return tensor(alias, std::move(shape));
    }
    // The tensor widened to f32 (norm weights, biases, small parameters).
    View f32(const std::string& name, std::vector<int64_t> shape, Init init = Init::ones) {
        if (describing()) return describe(name, std::move(shape), init);
        return host_.weight_f32(name, shape);
    }
    // `name`.weight [out, in] packed by the backend, and `name`.bias [out] when `bias`.
    Linear linear(const std::string& name, int64_t out, int64_t in, bool bias) {
        View w = tensor(name + ".weight", {out, in});
        View b = bias ? f32(name + ".bias", {out}, Init::zeros) : View();
        return pack(w, b, bias);
    }
    // A linear layer over a tensor already declared (an lm_head tied to the embeddings, a
    // transposed Conv1D view).
    Linear pack(const View& weight, View bias = View(), bool has_bias = false) {
        if (describing()) return Linear();
        return Linear(host_, host_.pack(weight), std::move(bias), has_bias);
    }

    // weight_specs(): the declared tensors as a JSON array, into the host's sink.
    void write_specs(tfx_sink sink) const {
        const std::string text = specs_.dump();
        sink.write(sink.ctx, text.data(), text.size());
    }

private:
    View describe(const std::string& name, std::vector<int64_t> shape, Init init) {
        static constexpr const char* kInitNames[] = {"normal", "ones", "zeros"};
        specs_.push_back({{"name", name}, {"shape", shape}, {"init", kInitNames[static_cast<int>(init)]}});
        return View(nullptr, kF32, std::span<const int64_t>(shape));
    }

    const Host& host_;
    Mode mode_;
    nlohmann::json specs_ = nlohmann::json::array();
};

// One self-attention call over [batch, tokens, heads, head_dim] views for layer `layer` of a
// forward pass (its cache, past length and key mask). Optional settings keep their neutral
// values: causal, scale 1/sqrt(head_dim) unless given, no softcap, no sliding window.
struct AttentionCall {
    View q, k, v, out;
    float scale = 0.0f;  // 0: 1 / sqrt(head_dim)
    float softcap = 0.0f;
    int32_t sliding_window = 0;
    bool causal = true;
};
inline void attend(const Host& host, const tfx_forward_args* a, int64_t layer, AttentionCall call) {
    tfx_attention_args args{};
    args.struct_size = sizeof(args);
    args.causal = call.causal ? 1 : 0;
    args.q = call.q.get();
    args.k = call.k.get();
    args.v = call.v.get();
    args.out = call.out.get();
    args.cache = a->cache != nullptr ? &a->cache[layer] : nullptr;
    args.past_len = a->past_len;
    args.key_mask = a->key_mask;
    args.scale = call.scale != 0.0f ? call.scale : 1.0f / std::sqrt(static_cast<float>(call.q.dim(-1)));
    args.softcap = call.softcap;
    args.sliding_window = call.sliding_window;
    host.attend(args);
}

// Writes a forward's output rows: every position, or each sequence's last one when the
// host asks for last_token_only, through `head` (an LM head) or as they are (hidden
// states of a base model). `x` holds [batch * tokens, hidden] rows.
class OutputWriter {
public:
    void write(const tfx_forward_args* a, const View& x, const Linear* head, int64_t width) {
        const int64_t b = a->batch, t = a->tokens, h = x.dim(-1);
        View out(*a->output);
        const int64_t rows = a->last_token_only ? b : b * t;
        if (out.dtype() != kF32 || out.numel() != rows * width) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: output must be f32 with " + std::to_string(rows) + " x " +
                                                      std::to_string(width) + " elements");
        }
        View src(x.data(), {rows, h});
        if (a->last_token_only && t > 1) {
            last_.resize(static_cast<size_t>(b * h));
            for (int64_t i = 0; i < b; ++i) {
                std::copy_n(x.data() + ((i + 1) * t - 1) * h, h, last_.data() + i * h);
            }
            src = View(last_.data(), {b, h});
        }
        View dst(out.data(), {rows, width});
        if (head != nullptr) {
            (*head)(src, dst);
        } else {
            std::copy_n(src.data(), rows * h, dst.data());
        }
    }

private:
    std::vector<float> last_;
};

}  // namespace tfx::sdk
