// Qwen3 (Qwen3ForCausalLM, Qwen3Model), mirroring transformers' modeling_qwen3.py:
//   embed -> N x [x += attn(rms_norm(x)); x += mlp(rms_norm(x))] -> rms_norm -> lm_head
// Llama's layout with a per-head RMSNorm on queries and keys (q_norm, k_norm, before the
// rotary embedding), head_dim from the config, optional attention bias, grouped-query attention,
// a SwiGLU MLP, rotary embeddings (default, linear, dynamic, yarn) and sliding-window attention
// on the layers the config selects. All compute goes through the host's ops.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfx/sdk/host.hpp"
#include "tfx/sdk/plugin.hpp"
#include "tfx/sdk/rotary.hpp"

namespace {

using tfx::sdk::Config;
using tfx::sdk::Error;
using tfx::sdk::View;

// ---- config.json: every field that changes the math ------------------------------------
struct Qwen3Config {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    int64_t max_positions;
    float rms_norm_eps;
    double rope_theta;
    bool attention_bias, tie_word_embeddings;
    tfx_activation act;
    Config rope_scaling;  // empty object when absent
    std::string rope_type;
    // Sliding-window attention: the window (> 0) of each layer, 0 for full attention.
    std::vector<int32_t> layer_window;

    explicit Qwen3Config(const Config& c) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        num_kv_heads = c.get_or<int64_t>("num_key_value_heads", num_heads);
        head_dim = c.get_or<int64_t>("head_dim", 128);  // Qwen3Config's default, not hidden / heads
        max_positions = c.get_or<int64_t>("max_position_embeddings", 32768);
        rms_norm_eps = c.get_or<float>("rms_norm_eps", 1e-6f);
        rope_theta = c.get_or<double>("rope_theta", 10000.0);
        attention_bias = c.get_or<bool>("attention_bias", false);
        tie_word_embeddings = c.get_or<bool>("tie_word_embeddings", false);
        const std::string hidden_act = c.get_or<std::string>("hidden_act", "silu");
        if (hidden_act == "silu" || hidden_act == "swish") act = TFX_ACT_SILU;
        else if (hidden_act == "gelu") act = TFX_ACT_GELU;
        else if (hidden_act == "gelu_new" || hidden_act == "gelu_pytorch_tanh") act = TFX_ACT_GELU_TANH;
        else if (hidden_act == "relu") act = TFX_ACT_RELU;
        else c.fail("hidden_act", "unsupported activation '" + hidden_act + "'");
        for (auto [name, v] : {std::pair{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                               {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_layers},
                               {"num_attention_heads", num_heads}, {"num_key_value_heads", num_kv_heads},
                               {"head_dim", head_dim}}) {
            if (v <= 0) c.fail(name, "must be positive");
        }
        if (num_heads % num_kv_heads != 0) c.fail("num_key_value_heads", "must divide num_attention_heads");
        if (head_dim % 2 != 0) c.fail("head_dim", "must be even for rotary embeddings");
        rope_type = "default";
        if (c.has("rope_scaling")) {
            rope_scaling = c.child("rope_scaling");
            rope_type = tfx::sdk::rope_type_of(c);
            if (rope_type != "default" && rope_type != "linear" && rope_type != "dynamic" && rope_type != "yarn") {
                c.fail("rope_scaling", "unsupported rope_type '" + rope_type + "' (default, linear, dynamic, yarn)");
            }
        }
        // Sliding window: only with use_sliding_window and a sliding_window, and only on the
        // layers from max_window_layers on (the layer_idx >= max_window_layers test of
        // transformers), or on the layers that an explicit layer_types marks "sliding_attention".
        // A sliding_window absent from config.json is Qwen3Config's default, 4096; null is none.
        int64_t window = 0;
        if (c.get_or<bool>("use_sliding_window", false)) {
            window = c.json().contains("sliding_window") ? c.get_or<int64_t>("sliding_window", 0) : 4096;
            if (window < 0 || window > std::numeric_limits<int32_t>::max()) c.fail("sliding_window", "out of range");
        }
        layer_window.assign(static_cast<size_t>(num_layers), 0);
        if (c.has("layer_types")) {
            const nlohmann::json& types = c.json().at("layer_types");
            if (!types.is_array() || static_cast<int64_t>(types.size()) != num_layers) {
                c.fail("layer_types", "expected one entry per hidden layer");
            }
            for (int64_t i = 0; i < num_layers; ++i) {
                const nlohmann::json& t = types[static_cast<size_t>(i)];
                if (t == "sliding_attention") layer_window[i] = static_cast<int32_t>(window);
                else if (t != "full_attention") c.fail("layer_types", "unknown layer type " + t.dump());
            }
        } else {
            const int64_t max_window_layers = c.get_or<int64_t>("max_window_layers", 28);
            for (int64_t i = max_window_layers; i < num_layers; ++i) layer_window[i] = static_cast<int32_t>(window);
        }
    }
};

// ---- the model -----------------------------------------------------------------------------
struct Linear {
    tfx_weight* weight = nullptr;
    View bias;
    bool has_bias = false;
};

struct Layer {
    View input_norm, post_attention_norm, q_norm, k_norm;
    Linear q, k, v, o, gate, up, down;
};

class Qwen3 {
public:
    explicit Qwen3(const tfx_host_services* services) : host_(services), config_(host_.config()) {}

    ~Qwen3() {
        for (Layer& l : layers_) {
            for (Linear* lin : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) release(*lin);
        }
        release(lm_head_);
    }
    Qwen3(const Qwen3&) = delete;
    Qwen3& operator=(const Qwen3&) = delete;

    void load(const char* architecture) {
        causal_lm_ = head_of(architecture);
        // A Qwen3Model checkpoint stores its tensors without the "model." prefix.
        prefix_ = host_.has_weight("model.embed_tokens.weight") || host_.has_weight("model.norm.weight") ? "model." : "";
        const auto& c = config_;
        const int64_t h = c.hidden_size, q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
        const std::string embed_name = prefix_ + "embed_tokens.weight";
        // Tied embeddings: either side of the tie may be the stored tensor.
        if (host_.has_weight(embed_name) || !c.tie_word_embeddings) {
            embed_ = host_.weight(embed_name, {c.vocab_size, h});
        } else {
            embed_ = host_.weight("lm_head.weight", {c.vocab_size, h});
        }
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = prefix_ + "layers." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.input_norm = host_.weight_f32(p + "input_layernorm.weight", {h});
            l.post_attention_norm = host_.weight_f32(p + "post_attention_layernorm.weight", {h});
            l.q = linear(p + "self_attn.q_proj", q_out, h, c.attention_bias);
            l.k = linear(p + "self_attn.k_proj", kv_out, h, c.attention_bias);
            l.v = linear(p + "self_attn.v_proj", kv_out, h, c.attention_bias);
            l.o = linear(p + "self_attn.o_proj", h, q_out, c.attention_bias);
            l.q_norm = host_.weight_f32(p + "self_attn.q_norm.weight", {c.head_dim});
            l.k_norm = host_.weight_f32(p + "self_attn.k_norm.weight", {c.head_dim});
            l.gate = linear(p + "mlp.gate_proj", c.intermediate_size, h, false);
            l.up = linear(p + "mlp.up_proj", c.intermediate_size, h, false);
            l.down = linear(p + "mlp.down_proj", h, c.intermediate_size, false);
        }
        final_norm_ = host_.weight_f32(prefix_ + "norm.weight", {h});
        if (causal_lm_) {
            lm_head_.weight = host_.pack(c.tie_word_embeddings ? embed_ : host_.weight("lm_head.weight", {c.vocab_size, h}));
        }
        rotary_ = std::make_unique<tfx::sdk::RotaryEmbedding>(tfx::sdk::RopeSettings{
            config_.head_dim, config_.rope_theta, config_.rope_type, config_.rope_scaling, config_.max_positions});
    }

    void get_info(tfx_model_info* info) {
        info->output_kind = causal_lm_ ? TFX_OUTPUT_LOGITS : TFX_OUTPUT_HIDDEN_STATE;
        info->vocab_size = static_cast<int32_t>(config_.vocab_size);
        info->hidden_size = static_cast<int32_t>(config_.hidden_size);
        info->output_size = static_cast<int32_t>(causal_lm_ ? config_.vocab_size : config_.hidden_size);
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

        rotary_->compute(a->positions, n, cos_, sin_);
        View cos_v(cos_.data(), {n, c.head_dim / 2}), sin_v(sin_.data(), {n, c.head_dim / 2});

        View v(v_.data(), {n, kv_out}), o(attn_.data(), {n, q_out});
        View gate(gate_.data(), {n, c.intermediate_size}), up(up_.data(), {n, c.intermediate_size});
        View q_heads(q_.data(), {n, c.num_heads, c.head_dim}), k_heads(k_.data(), {n, c.num_kv_heads, c.head_dim});
        View q4(q_.data(), {b, t, c.num_heads, c.head_dim}), k4(k_.data(), {b, t, c.num_kv_heads, c.head_dim});
        // q and k are projected into the attention output buffer (free until attend) and
        // normalized per head from there into q_ and k_.
        View q_proj(attn_.data(), {n, q_out}), k_proj(attn_.data(), {n, kv_out});
        View q_proj_heads(attn_.data(), {n * c.num_heads, c.head_dim}), q_rows(q_.data(), {n * c.num_heads, c.head_dim});
        View k_proj_heads(attn_.data(), {n * c.num_kv_heads, c.head_dim}), k_rows(k_.data(), {n * c.num_kv_heads, c.head_dim});
        View v4(v_.data(), {b, t, c.num_kv_heads, c.head_dim}), o4(attn_.data(), {b, t, c.num_heads, c.head_dim});

        for (int64_t i = 0; i < c.num_layers; ++i) {
            Layer& l = layers_[i];
            // Self-attention block: q_norm / k_norm over each head's head_dim, then rotary.
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 0.0f, xn);
            apply(l.q, xn, q_proj);
            host_.rms_norm(q_proj_heads, l.q_norm, c.rms_norm_eps, 0.0f, q_rows);
            apply(l.k, xn, k_proj);
            host_.rms_norm(k_proj_heads, l.k_norm, c.rms_norm_eps, 0.0f, k_rows);
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
            args.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
            args.sliding_window = c.layer_window[i];
            host_.attend(args);
            apply(l.o, o, xn);
            host_.add(x, xn, x);
            // MLP block: down(act(gate(x)) * up(x)).
            host_.rms_norm(x, l.post_attention_norm, c.rms_norm_eps, 0.0f, xn);
            apply(l.gate, xn, gate);
            apply(l.up, xn, up);
            host_.gated_activation(c.act, gate, up, gate);
            apply(l.down, gate, xn);
            host_.add(x, xn, x);
        }
        host_.rms_norm(x, final_norm_, c.rms_norm_eps, 0.0f, xn);
        write_output(a, xn);
    }

    void weight_specs(const char* architecture, tfx_sink sink) {
        const bool causal = head_of(architecture);
        const auto& c = config_;
        const int64_t h = c.hidden_size, q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
        const std::string pre = causal ? "model." : "";
        nlohmann::json specs = nlohmann::json::array();
        auto add = [&](const std::string& name, std::vector<int64_t> shape, const char* init) {
            specs.push_back({{"name", name}, {"shape", shape}, {"init", init}});
        };
        auto add_linear = [&](const std::string& name, int64_t out, int64_t in, bool bias) {
            add(name + ".weight", {out, in}, "normal");
            if (bias) add(name + ".bias", {out}, "zeros");
        };
        add(pre + "embed_tokens.weight", {c.vocab_size, h}, "normal");
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = pre + "layers." + std::to_string(i) + ".";
            add(p + "input_layernorm.weight", {h}, "ones");
            add(p + "post_attention_layernorm.weight", {h}, "ones");
            add_linear(p + "self_attn.q_proj", q_out, h, c.attention_bias);
            add_linear(p + "self_attn.k_proj", kv_out, h, c.attention_bias);
            add_linear(p + "self_attn.v_proj", kv_out, h, c.attention_bias);
            add_linear(p + "self_attn.o_proj", h, q_out, c.attention_bias);
            add(p + "self_attn.q_norm.weight", {c.head_dim}, "ones");
            add(p + "self_attn.k_norm.weight", {c.head_dim}, "ones");
            add_linear(p + "mlp.gate_proj", c.intermediate_size, h, false);
            add_linear(p + "mlp.up_proj", c.intermediate_size, h, false);
            add_linear(p + "mlp.down_proj", h, c.intermediate_size, false);
        }
        add(pre + "norm.weight", {h}, "ones");
        if (causal && !c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, h}, "normal");
        const std::string text = specs.dump();
        sink.write(sink.ctx, text.data(), text.size());
    }

private:
    static bool head_of(const char* architecture) {
        const std::string arch = architecture != nullptr ? architecture : "";
        if (arch == "Qwen3ForCausalLM") return true;
        if (arch == "Qwen3Model") return false;
        throw Error(TFX_ERR_UNSUPPORTED, "qwen3: unsupported architecture '" + arch + "' (Qwen3ForCausalLM, Qwen3Model)");
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

    // Logits (or hidden states) for every position, or only each sequence's last one.
    void write_output(const tfx_forward_args* a, View& normed) {
        const auto& c = config_;
        const int64_t b = a->batch, t = a->tokens, h = c.hidden_size;
        View out(*a->output);
        const int64_t rows = a->last_token_only ? b : b * t;
        const int64_t width = causal_lm_ ? c.vocab_size : h;
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
        if (causal_lm_) {
            host_.linear(src, lm_head_.weight, nullptr, dst);
        } else {
            std::copy_n(src.data(), rows * h, dst.data());
        }
    }

    tfx::sdk::Host host_;
    Qwen3Config config_;
    bool causal_lm_ = true;
    std::string prefix_;
    View embed_, final_norm_;
    std::vector<Layer> layers_;
    Linear lm_head_;
    std::unique_ptr<tfx::sdk::RotaryEmbedding> rotary_;
    std::vector<float> hidden_, normed_, q_, k_, v_, attn_, gate_, up_, cos_, sin_, last_;
};

const tfx_model_table kTable = {
    sizeof(tfx_model_table),
    tfx::sdk::method<&Qwen3::load>,
    tfx::sdk::method<&Qwen3::get_info>,
    tfx::sdk::method<&Qwen3::forward>,
    tfx::sdk::method<&Qwen3::weight_specs>,
};

}  // namespace

TFX_PLUGIN_EXPORT(Qwen3, kTable)
