// Gemma 2 (Gemma2ForCausalLM), mirroring transformers' modeling_gemma2.py (v4.44):
//   embed * sqrt(hidden)
//   -> N x [x += post_attn_norm(attn(input_norm(x))); x += post_ff_norm(mlp(pre_ff_norm(x)))]
//   -> norm -> lm_head -> final soft-cap
// Every RMSNorm scales by (1 + w). Even layers (0, 2, ...) attend within a sliding window,
// odd layers globally; attention scores are scaled by query_pre_attn_scalar^-0.5 and
// soft-capped (cap * tanh(s / cap)). The MLP is GeGLU (tanh GELU); the LM head is tied.
// All compute goes through the host's ops.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfx/sdk/host.hpp"
#include "tfx/sdk/plugin.hpp"

namespace {

using tfx::sdk::Config;
using tfx::sdk::Error;
using tfx::sdk::View;

// A soft-cap field: absent means the config class default, null means no capping (0 here).
float softcap_field(const Config& c, const char* key, float class_default) {
    if (!c.json().contains(key)) return class_default;
    if (!c.has(key)) return 0.0f;
    const float cap = c.get<float>(key);
    if (cap <= 0.0f) c.fail(key, "must be positive or null");
    return cap;
}

// ---- config.json: every field that changes the math ------------------------------------
struct Gemma2Config {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    int64_t max_positions, sliding_window;
    float rms_norm_eps, attn_scale, attn_softcap, final_softcap;
    double rope_theta;
    bool attention_bias, tie_word_embeddings;
    tfx_activation act;

    explicit Gemma2Config(const Config& c) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        num_kv_heads = c.get_or<int64_t>("num_key_value_heads", num_heads);
        head_dim = c.get_or<int64_t>("head_dim", 256);  // Gemma2Config's default, not hidden / heads
        max_positions = c.get_or<int64_t>("max_position_embeddings", 8192);
        rms_norm_eps = c.get_or<float>("rms_norm_eps", 1e-6f);
        rope_theta = c.get_or<double>("rope_theta", 10000.0);
        attention_bias = c.get_or<bool>("attention_bias", false);
        tie_word_embeddings = c.get_or<bool>("tie_word_embeddings", true);
        // Scores are scaled by query_pre_attn_scalar ** -0.5 (a Python double, then f32), not head_dim.
        const double query_pre_attn_scalar = c.get_or<double>("query_pre_attn_scalar", 256.0);
        if (query_pre_attn_scalar <= 0.0) c.fail("query_pre_attn_scalar", "must be positive");
        attn_scale = static_cast<float>(std::pow(query_pre_attn_scalar, -0.5));
        sliding_window = c.get_or<int64_t>("sliding_window", 4096);
        attn_softcap = softcap_field(c, "attn_logit_softcapping", 50.0f);
        final_softcap = softcap_field(c, "final_logit_softcapping", 30.0f);
        const std::string hidden_activation = c.get_or<std::string>("hidden_activation", "gelu_pytorch_tanh");
        if (hidden_activation == "gelu_pytorch_tanh" || hidden_activation == "gelu_new") act = TFX_ACT_GELU_TANH;
        else if (hidden_activation == "gelu") act = TFX_ACT_GELU;
        else if (hidden_activation == "silu" || hidden_activation == "swish") act = TFX_ACT_SILU;
        else if (hidden_activation == "relu") act = TFX_ACT_RELU;
        else c.fail("hidden_activation", "unsupported activation '" + hidden_activation + "'");
        for (auto [name, v] : {std::pair{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                               {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_layers},
                               {"num_attention_heads", num_heads}, {"num_key_value_heads", num_kv_heads},
                               {"head_dim", head_dim}, {"sliding_window", sliding_window}}) {
            if (v <= 0) c.fail(name, "must be positive");
        }
        if (sliding_window > INT32_MAX) c.fail("sliding_window", "too large");
        if (num_heads % num_kv_heads != 0) c.fail("num_key_value_heads", "must divide num_attention_heads");
        if (head_dim % 2 != 0) c.fail("head_dim", "must be even for rotary embeddings");
        // Gemma2RotaryEmbedding has no scaling: refuse a config that asks for one rather than ignore it.
        if (c.has("rope_scaling")) {
            const Config s = c.child("rope_scaling");
            const std::string type = s.has("rope_type") ? s.get<std::string>("rope_type") : s.get_or<std::string>("type", "default");
            if (type != "default") c.fail("rope_scaling", "unsupported rope_type '" + type + "' (gemma2 has no rope scaling)");
        }
    }

    // Gemma2Attention: sliding_window if not bool(layer_idx % 2), i.e. the even layers.
    bool is_sliding(int64_t layer) const { return layer % 2 == 0; }
};

// ---- rotary embeddings: inv_freq = theta^(-2i/head_dim), in f32 like torch ------------------
class Rotary {
public:
    Rotary(double theta, int64_t dim) : inv_freq_(static_cast<size_t>(dim / 2)) {
        for (int64_t i = 0; i < dim / 2; ++i) {
            inv_freq_[i] = 1.0f / std::pow(static_cast<float>(theta), static_cast<float>(2 * i) / static_cast<float>(dim));
        }
    }

    // cos/sin [tokens, head_dim / 2] for the given positions.
    void compute(const int64_t* positions, int64_t tokens, std::vector<float>& cos, std::vector<float>& sin) const {
        const int64_t half = static_cast<int64_t>(inv_freq_.size());
        cos.resize(static_cast<size_t>(tokens * half));
        sin.resize(static_cast<size_t>(tokens * half));
        for (int64_t t = 0; t < tokens; ++t) {
            for (int64_t i = 0; i < half; ++i) {
                const float angle = static_cast<float>(positions[t]) * inv_freq_[i];
                cos[t * half + i] = std::cos(angle);
                sin[t * half + i] = std::sin(angle);
            }
        }
    }

private:
    std::vector<float> inv_freq_;
};

// ---- the model -----------------------------------------------------------------------------
struct Linear {
    tfx_weight* weight = nullptr;
    View bias;
    bool has_bias = false;
};

struct Layer {
    View input_norm, post_attention_norm, pre_feedforward_norm, post_feedforward_norm;
    Linear q, k, v, o, gate, up, down;
};

class Gemma2 {
public:
    explicit Gemma2(const tfx_host_services* services) : host_(services), config_(host_.config()) {}

    ~Gemma2() {
        for (Layer& l : layers_) {
            for (Linear* lin : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) release(*lin);
        }
        release(lm_head_);
    }
    Gemma2(const Gemma2&) = delete;
    Gemma2& operator=(const Gemma2&) = delete;

    void load(const char* architecture) {
        head_of(architecture);
        const auto& c = config_;
        const int64_t h = c.hidden_size, q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
        // Tied embeddings: either side of the tie may be the stored tensor.
        if (host_.has_weight("model.embed_tokens.weight") || !c.tie_word_embeddings) {
            embed_ = host_.weight("model.embed_tokens.weight", {c.vocab_size, h});
        } else {
            embed_ = host_.weight("lm_head.weight", {c.vocab_size, h});
        }
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = "model.layers." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.input_norm = host_.weight_f32(p + "input_layernorm.weight", {h});
            l.post_attention_norm = host_.weight_f32(p + "post_attention_layernorm.weight", {h});
            l.pre_feedforward_norm = host_.weight_f32(p + "pre_feedforward_layernorm.weight", {h});
            l.post_feedforward_norm = host_.weight_f32(p + "post_feedforward_layernorm.weight", {h});
            l.q = linear(p + "self_attn.q_proj", q_out, h, c.attention_bias);
            l.k = linear(p + "self_attn.k_proj", kv_out, h, c.attention_bias);
            l.v = linear(p + "self_attn.v_proj", kv_out, h, c.attention_bias);
            l.o = linear(p + "self_attn.o_proj", h, q_out, c.attention_bias);
            l.gate = linear(p + "mlp.gate_proj", c.intermediate_size, h, false);
            l.up = linear(p + "mlp.up_proj", c.intermediate_size, h, false);
            l.down = linear(p + "mlp.down_proj", h, c.intermediate_size, false);
        }
        final_norm_ = host_.weight_f32("model.norm.weight", {h});
        lm_head_.weight = host_.pack(c.tie_word_embeddings ? embed_ : host_.weight("lm_head.weight", {c.vocab_size, h}));
        rotary_ = std::make_unique<Rotary>(c.rope_theta, c.head_dim);
        // The embeddings are multiplied by a tensor of sqrt(hidden_size) in the activation
        // dtype (f32 here): the double rounded once to f32.
        normalizer_ = static_cast<float>(std::sqrt(static_cast<double>(h)));
    }

    void get_info(tfx_model_info* info) {
        info->output_kind = TFX_OUTPUT_LOGITS;
        info->vocab_size = static_cast<int32_t>(config_.vocab_size);
        info->hidden_size = static_cast<int32_t>(config_.hidden_size);
        info->output_size = static_cast<int32_t>(config_.vocab_size);
        info->num_layers = static_cast<int32_t>(config_.num_layers);
        info->num_kv_heads = static_cast<int32_t>(config_.num_kv_heads);
        info->head_dim = static_cast<int32_t>(config_.head_dim);
        info->max_positions = config_.max_positions;
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t b = a->batch, t = a->tokens, n = b * t, h = c.hidden_size;
        const int64_t q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
        if (b <= 0 || t <= 0 || a->input_ids == nullptr || a->positions == nullptr || a->output == nullptr) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: batch, tokens, input_ids, positions and output are required");
        }
        hidden_.resize(n * h), normed_.resize(n * h), q_.resize(n * q_out), k_.resize(n * kv_out), v_.resize(n * kv_out);
        attn_.resize(n * q_out), gate_.resize(n * c.intermediate_size), up_.resize(n * c.intermediate_size);

        View ids(const_cast<int32_t*>(a->input_ids), tfx::sdk::kI32, {n});
        View x(hidden_.data(), {n, h}), xn(normed_.data(), {n, h});
        host_.embedding(embed_, ids, x);
        host_.scale(x, normalizer_, x);

        rotary_->compute(a->positions, n, cos_, sin_);
        View cos_v(cos_.data(), {n, c.head_dim / 2}), sin_v(sin_.data(), {n, c.head_dim / 2});

        View q(q_.data(), {n, q_out}), k(k_.data(), {n, kv_out}), v(v_.data(), {n, kv_out}), o(attn_.data(), {n, q_out});
        View gate(gate_.data(), {n, c.intermediate_size}), up(up_.data(), {n, c.intermediate_size});
        View q_heads(q_.data(), {n, c.num_heads, c.head_dim}), k_heads(k_.data(), {n, c.num_kv_heads, c.head_dim});
        View q4(q_.data(), {b, t, c.num_heads, c.head_dim}), k4(k_.data(), {b, t, c.num_kv_heads, c.head_dim});
        View v4(v_.data(), {b, t, c.num_kv_heads, c.head_dim}), o4(attn_.data(), {b, t, c.num_heads, c.head_dim});

        for (int64_t i = 0; i < c.num_layers; ++i) {
            Layer& l = layers_[i];
            // Self-attention block, normalized before and after: x += post_norm(attn(norm(x))).
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 1.0f, xn);
            apply(l.q, xn, q);
            apply(l.k, xn, k);
            apply(l.v, xn, v);
            host_.rope(q_heads, cos_v, sin_v);
            host_.rope(k_heads, cos_v, sin_v);
            tfx_attention_args args{};
            args.struct_size = sizeof(args);
            args.causal = 1;
            args.q = q4.get();
            args.k = k4.get();
            args.v = v4.get();
            args.out = o4.get();
            args.cache = a->cache != nullptr ? &a->cache[i] : nullptr;
            args.past_len = a->past_len;
            args.key_mask = a->key_mask;
            args.scale = c.attn_scale;
            args.softcap = c.attn_softcap;
            args.sliding_window = c.is_sliding(i) ? static_cast<int32_t>(c.sliding_window) : 0;
            host_.attend(args);
            apply(l.o, o, xn);
            host_.rms_norm(xn, l.post_attention_norm, c.rms_norm_eps, 1.0f, xn);
            host_.add(x, xn, x);
            // MLP block: x += post_norm(down(gelu_tanh(gate(y)) * up(y))), y = pre_norm(x).
            host_.rms_norm(x, l.pre_feedforward_norm, c.rms_norm_eps, 1.0f, xn);
            apply(l.gate, xn, gate);
            apply(l.up, xn, up);
            host_.gated_activation(c.act, gate, up, gate);
            apply(l.down, gate, xn);
            host_.rms_norm(xn, l.post_feedforward_norm, c.rms_norm_eps, 1.0f, xn);
            host_.add(x, xn, x);
        }
        host_.rms_norm(x, final_norm_, c.rms_norm_eps, 1.0f, xn);
        write_output(a, xn);
    }

    void weight_specs(const char* architecture, tfx_sink sink) {
        head_of(architecture);
        const auto& c = config_;
        const int64_t h = c.hidden_size, q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
        nlohmann::json specs = nlohmann::json::array();
        auto add = [&](const std::string& name, std::vector<int64_t> shape, const char* init) {
            specs.push_back({{"name", name}, {"shape", shape}, {"init", init}});
        };
        auto add_linear = [&](const std::string& name, int64_t out, int64_t in, bool bias) {
            add(name + ".weight", {out, in}, "normal");
            if (bias) add(name + ".bias", {out}, "zeros");
        };
        // Norm weights start at zero: (1 + w) makes that the identity scale, as in HF's init.
        add("model.embed_tokens.weight", {c.vocab_size, h}, "normal");
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = "model.layers." + std::to_string(i) + ".";
            add(p + "input_layernorm.weight", {h}, "zeros");
            add(p + "post_attention_layernorm.weight", {h}, "zeros");
            add(p + "pre_feedforward_layernorm.weight", {h}, "zeros");
            add(p + "post_feedforward_layernorm.weight", {h}, "zeros");
            add_linear(p + "self_attn.q_proj", q_out, h, c.attention_bias);
            add_linear(p + "self_attn.k_proj", kv_out, h, c.attention_bias);
            add_linear(p + "self_attn.v_proj", kv_out, h, c.attention_bias);
            add_linear(p + "self_attn.o_proj", h, q_out, c.attention_bias);
            add_linear(p + "mlp.gate_proj", c.intermediate_size, h, false);
            add_linear(p + "mlp.up_proj", c.intermediate_size, h, false);
            add_linear(p + "mlp.down_proj", h, c.intermediate_size, false);
        }
        add("model.norm.weight", {h}, "zeros");
        if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, h}, "normal");
        const std::string text = specs.dump();
        sink.write(sink.ctx, text.data(), text.size());
    }

private:
    static void head_of(const char* architecture) {
        const std::string arch = architecture != nullptr ? architecture : "";
        if (arch != "Gemma2ForCausalLM") {
            throw Error(TFX_ERR_UNSUPPORTED, "gemma2: unsupported architecture '" + arch + "' (Gemma2ForCausalLM)");
        }
    }

    Linear linear(const std::string& name, int64_t out, int64_t in, bool bias) {
        Linear l;
        l.weight = host_.pack(host_.weight(name + ".weight", {out, in}));
        if (bias) {
            l.bias = host_.weight_f32(name + ".bias", {out});
            l.has_bias = true;
        }
        return l;
    }

    void release(Linear& l) {
        if (l.weight != nullptr) host_.release(l.weight);
        l.weight = nullptr;
    }

    void apply(const Linear& l, const View& x, View& y) { host_.linear(x, l.weight, l.has_bias ? &l.bias : nullptr, y); }

    // Logits for every position, or only each sequence's last one, soft-capped at the end.
    void write_output(const tfx_forward_args* a, View& normed) {
        const auto& c = config_;
        const int64_t b = a->batch, t = a->tokens, h = c.hidden_size;
        View out(*a->output);
        const int64_t rows = a->last_token_only ? b : b * t;
        const int64_t width = c.vocab_size;
        if (out.dtype() != tfx::sdk::kF32 || out.numel() != rows * width) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: output must be f32 with " + std::to_string(rows) + " x " +
                                                      std::to_string(width) + " elements");
        }
        View src = normed;
        if (a->last_token_only && t > 1) {
            last_.resize(b * h);
            for (int64_t i = 0; i < b; ++i) {
                std::copy_n(normed.data() + ((i + 1) * t - 1) * h, h, last_.data() + i * h);
            }
            src = View(last_.data(), {b, h});
        } else {
            src = View(normed.data(), {rows, h});
        }
        View dst(out.data(), {rows, width});
        host_.linear(src, lm_head_.weight, nullptr, dst);
        if (c.final_softcap > 0.0f) host_.softcap(dst, c.final_softcap, dst);
    }

    tfx::sdk::Host host_;
    Gemma2Config config_;
    View embed_, final_norm_;
    std::vector<Layer> layers_;
    Linear lm_head_;
    std::unique_ptr<Rotary> rotary_;
    float normalizer_ = 1.0f;
    std::vector<float> hidden_, normed_, q_, k_, v_, attn_, gate_, up_, cos_, sin_, last_;
};

const tfx_model_table kTable = {
    sizeof(tfx_model_table),
    tfx::sdk::method<&Gemma2::load>,
    tfx::sdk::method<&Gemma2::get_info>,
    tfx::sdk::method<&Gemma2::forward>,
    tfx::sdk::method<&Gemma2::weight_specs>,
};

}  // namespace

TFX_PLUGIN_EXPORT(Gemma2, kTable)
