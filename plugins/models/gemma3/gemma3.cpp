// Gemma 3 text models (Gemma3ForCausalLM, model_type "gemma3_text"), mirroring transformers'
// modeling_gemma3.py (v4.51):
//   embed * sqrt(hidden)
//   -> N x [x += post_attn_norm(attn(input_norm(x))); x += post_ff_norm(mlp(pre_ff_norm(x)))]
//   -> norm -> lm_head (-> final soft-cap when configured)
// Every RMSNorm scales by (1 + w), including the per-head q/k norms applied before RoPE.
// Layers are local (sliding window, RoPE base rope_local_base_freq, no scaling) or global
// (full attention, RoPE base rope_theta with rope_scaling), per layer_types or
// sliding_window_pattern. Scores are scaled by query_pre_attn_scalar^-0.5 and soft-capped if
// attn_logit_softcapping is set. The MLP is GeGLU (tanh GELU); the LM head is tied.
// All compute goes through the host's ops.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfx/sdk/host.hpp"
#include "tfx/sdk/layers.hpp"
#include "tfx/sdk/plugin.hpp"
#include "tfx/sdk/rotary.hpp"

namespace {

using tfx::sdk::Config;
using tfx::sdk::Error;
using tfx::sdk::Init;
using tfx::sdk::Linear;
using tfx::sdk::View;
using tfx::sdk::WeightTable;

// A soft-cap field: absent or null means no capping (0 here), as Gemma3TextConfig's default.
float softcap_field(const Config& c, const char* key) {
    if (!c.has(key)) return 0.0f;
    const float cap = c.get<float>(key);
    if (cap <= 0.0f) c.fail(key, "must be positive or null");
    return cap;
}

// ---- config.json: every field that changes the math ------------------------------------
struct Gemma3Config {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    int64_t max_positions, sliding_window;
    float rms_norm_eps, attn_scale, attn_softcap, final_softcap;
    double rope_theta, rope_local_base_freq;
    Config rope_scaling;  // global layers only; empty object when absent
    std::string rope_type;
    bool attention_bias, tie_word_embeddings;
    tfx_activation act;
    std::vector<bool> sliding;  // per layer: local (sliding window) or global attention

    explicit Gemma3Config(const Config& c) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        num_kv_heads = c.get_or<int64_t>("num_key_value_heads", num_heads);
        head_dim = c.get_or<int64_t>("head_dim", 256);  // Gemma3TextConfig's default, not hidden / heads
        max_positions = c.get_or<int64_t>("max_position_embeddings", 131072);
        rms_norm_eps = c.get_or<float>("rms_norm_eps", 1e-6f);
        rope_theta = c.get_or<double>("rope_theta", 1000000.0);
        rope_local_base_freq = c.get_or<double>("rope_local_base_freq", 10000.0);
        attention_bias = c.get_or<bool>("attention_bias", false);
        tie_word_embeddings = c.get_or<bool>("tie_word_embeddings", true);
        // Scores are scaled by query_pre_attn_scalar ** -0.5 (a Python double, then f32), not head_dim.
        const double query_pre_attn_scalar = c.get_or<double>("query_pre_attn_scalar", 256.0);
        if (query_pre_attn_scalar <= 0.0) c.fail("query_pre_attn_scalar", "must be positive");
        attn_scale = static_cast<float>(std::pow(query_pre_attn_scalar, -0.5));
        sliding_window = c.get_or<int64_t>("sliding_window", 4096);
        attn_softcap = softcap_field(c, "attn_logit_softcapping");
        final_softcap = softcap_field(c, "final_logit_softcapping");
        act = tfx::sdk::activation_from(c, "hidden_activation", "gelu_pytorch_tanh");
        tfx::sdk::require_positive(c, {{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                                       {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_layers},
                                       {"num_attention_heads", num_heads}, {"num_key_value_heads", num_kv_heads},
                                       {"head_dim", head_dim}, {"sliding_window", sliding_window}});
        if (sliding_window > INT32_MAX) c.fail("sliding_window", "too large");
        if (num_heads % num_kv_heads != 0) c.fail("num_key_value_heads", "must divide num_attention_heads");
        if (head_dim % 2 != 0) c.fail("head_dim", "must be even for rotary embeddings");
        // rope_scaling applies to the global layers only (the local ones use the default rope).
        rope_type = tfx::sdk::rope_type_of(c);
        if (c.has("rope_scaling")) rope_scaling = c.child("rope_scaling");
        if (rope_type == "linear") {
            if (rope_scaling.get<float>("factor") <= 0.0f) rope_scaling.fail("factor", "must be positive");
        } else if (rope_type != "default") {
            c.fail("rope_scaling", "unsupported rope_type '" + rope_type + "' (default, linear)");
        }
        // Which layers are local: layer_types when given, else every sliding_window_pattern-th
        // layer is global (is_sliding = bool((layer_idx + 1) % sliding_window_pattern)).
        sliding.resize(static_cast<size_t>(num_layers));
        if (c.has("layer_types")) {
            const nlohmann::json& types = c.json().at("layer_types");
            if (!types.is_array() || static_cast<int64_t>(types.size()) != num_layers) {
                c.fail("layer_types", "expected an array of num_hidden_layers strings");
            }
            for (int64_t i = 0; i < num_layers; ++i) {
                const nlohmann::json& type = types[static_cast<size_t>(i)];
                if (type == "sliding_attention") sliding[i] = true;
                else if (type == "full_attention") sliding[i] = false;
                else c.fail("layer_types", "unsupported layer type " + type.dump() + " (sliding_attention, full_attention)");
            }
        } else {
            const int64_t pattern = c.get_or<int64_t>("sliding_window_pattern", 6);
            if (pattern <= 0) c.fail("sliding_window_pattern", "must be positive");
            for (int64_t i = 0; i < num_layers; ++i) sliding[i] = (i + 1) % pattern != 0;
        }
    }

    bool is_sliding(int64_t layer) const { return sliding[layer]; }
};

// ---- the model -----------------------------------------------------------------------------
struct Layer {
    View input_norm, post_attention_norm, pre_feedforward_norm, post_feedforward_norm, q_norm, k_norm;
    Linear q, k, v, o, gate, up, down;
};

class Gemma3 {
public:
    explicit Gemma3(const tfx_host_services* services) : host_(services), config_(host_.config()) {}

    void load(const char*) {
        WeightTable w(host_, WeightTable::Mode::load);
        declare(w);
        const auto& c = config_;
        // Two rotary embeddings: the global layers' (rope_theta, rope_scaling) and the local
        // layers' (rope_local_base_freq, no scaling).
        rotary_global_ = std::make_unique<tfx::sdk::RotaryEmbedding>(
            tfx::sdk::RopeSettings{c.head_dim, c.rope_theta, c.rope_type, c.rope_scaling, c.max_positions});
        rotary_local_ = std::make_unique<tfx::sdk::RotaryEmbedding>(
            tfx::sdk::RopeSettings{c.head_dim, c.rope_local_base_freq, "default", Config(), c.max_positions});
        // The embeddings are multiplied by a tensor of sqrt(hidden_size) in the activation
        // dtype (f32 here): the double rounded once to f32.
        normalizer_ = static_cast<float>(std::sqrt(static_cast<double>(c.hidden_size)));
    }

    void weight_specs(const char*, tfx_sink sink) {
        WeightTable w(host_, WeightTable::Mode::describe);
        declare(w);
        w.write_specs(sink);
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

        rotary_global_->compute(a->positions, n, cos_, sin_);
        rotary_local_->compute(a->positions, n, cos_local_, sin_local_);
        View cos_g(cos_.data(), {n, c.head_dim / 2}), sin_g(sin_.data(), {n, c.head_dim / 2});
        View cos_l(cos_local_.data(), {n, c.head_dim / 2}), sin_l(sin_local_.data(), {n, c.head_dim / 2});

        View q(q_.data(), {n, q_out}), k(k_.data(), {n, kv_out}), v(v_.data(), {n, kv_out}), o(attn_.data(), {n, q_out});
        View gate(gate_.data(), {n, c.intermediate_size}), up(up_.data(), {n, c.intermediate_size});
        View q_heads(q_.data(), {n, c.num_heads, c.head_dim}), k_heads(k_.data(), {n, c.num_kv_heads, c.head_dim});
        View q_rows(q_.data(), {n * c.num_heads, c.head_dim}), k_rows(k_.data(), {n * c.num_kv_heads, c.head_dim});
        View q4(q_.data(), {b, t, c.num_heads, c.head_dim}), k4(k_.data(), {b, t, c.num_kv_heads, c.head_dim});
        View v4(v_.data(), {b, t, c.num_kv_heads, c.head_dim}), o4(attn_.data(), {b, t, c.num_heads, c.head_dim});

        for (int64_t i = 0; i < c.num_layers; ++i) {
            Layer& l = layers_[i];
            // Self-attention block, normalized before and after: x += post_norm(attn(norm(x))).
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 1.0f, xn);
            l.q(xn, q);
            l.k(xn, k);
            l.v(xn, v);
            // Per-head RMSNorm of queries and keys, then the layer's own rotary embedding.
            host_.rms_norm(q_rows, l.q_norm, c.rms_norm_eps, 1.0f, q_rows);
            host_.rms_norm(k_rows, l.k_norm, c.rms_norm_eps, 1.0f, k_rows);
            const bool local = c.is_sliding(i);
            host_.rope(q_heads, local ? cos_l : cos_g, local ? sin_l : sin_g);
            host_.rope(k_heads, local ? cos_l : cos_g, local ? sin_l : sin_g);
            const int32_t window = local ? static_cast<int32_t>(c.sliding_window) : 0;
            tfx::sdk::attend(host_, a, i, {.q = q4, .k = k4, .v = v4, .out = o4, .scale = c.attn_scale,
                                           .softcap = c.attn_softcap, .sliding_window = window});
            l.o(o, xn);
            host_.rms_norm(xn, l.post_attention_norm, c.rms_norm_eps, 1.0f, xn);
            host_.add(x, xn, x);
            // MLP block: x += post_norm(down(gelu_tanh(gate(y)) * up(y))), y = pre_norm(x).
            host_.rms_norm(x, l.pre_feedforward_norm, c.rms_norm_eps, 1.0f, xn);
            l.gate(xn, gate);
            l.up(xn, up);
            host_.gated_activation(c.act, gate, up, gate);
            l.down(gate, xn);
            host_.rms_norm(xn, l.post_feedforward_norm, c.rms_norm_eps, 1.0f, xn);
            host_.add(x, xn, x);
        }
        host_.rms_norm(x, final_norm_, c.rms_norm_eps, 1.0f, xn);
        output_.write(a, xn, &lm_head_, c.vocab_size);
        // The final soft-cap, cap * tanh(logits / cap), on the rows just written.
        if (c.final_softcap > 0.0f) {
            View out(*a->output);
            View logits(out.data(), {out.numel() / c.vocab_size, c.vocab_size});
            host_.softcap(logits, c.final_softcap, logits);
        }
    }

private:
    // Every tensor of the checkpoint, for load() and weight_specs() alike. Norm weights start
    // at zero: (1 + w) makes that the identity scale, as in HF's init.
    void declare(WeightTable& w) {
        const auto& c = config_;
        host_.task_head({"causal_lm"});
        const int64_t h = c.hidden_size, q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
        // Tied embeddings: either side of the tie may be the stored tensor.
        embed_ = c.tie_word_embeddings ? w.tensor_or("model.embed_tokens.weight", "lm_head.weight", {c.vocab_size, h})
                                       : w.tensor("model.embed_tokens.weight", {c.vocab_size, h});
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = "model.layers." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.input_norm = w.f32(p + "input_layernorm.weight", {h}, Init::zeros);
            l.post_attention_norm = w.f32(p + "post_attention_layernorm.weight", {h}, Init::zeros);
            l.pre_feedforward_norm = w.f32(p + "pre_feedforward_layernorm.weight", {h}, Init::zeros);
            l.post_feedforward_norm = w.f32(p + "post_feedforward_layernorm.weight", {h}, Init::zeros);
            l.q_norm = w.f32(p + "self_attn.q_norm.weight", {c.head_dim}, Init::zeros);
            l.k_norm = w.f32(p + "self_attn.k_norm.weight", {c.head_dim}, Init::zeros);
            l.q = w.linear(p + "self_attn.q_proj", q_out, h, c.attention_bias);
            l.k = w.linear(p + "self_attn.k_proj", kv_out, h, c.attention_bias);
            l.v = w.linear(p + "self_attn.v_proj", kv_out, h, c.attention_bias);
            l.o = w.linear(p + "self_attn.o_proj", h, q_out, c.attention_bias);
            l.gate = w.linear(p + "mlp.gate_proj", c.intermediate_size, h, false);
            l.up = w.linear(p + "mlp.up_proj", c.intermediate_size, h, false);
            l.down = w.linear(p + "mlp.down_proj", h, c.intermediate_size, false);
        }
        final_norm_ = w.f32("model.norm.weight", {h}, Init::zeros);
        lm_head_ = c.tie_word_embeddings ? w.pack(embed_) : w.linear("lm_head", c.vocab_size, h, false);
    }

    tfx::sdk::Host host_;
    Gemma3Config config_;
    View embed_, final_norm_;
    std::vector<Layer> layers_;
    Linear lm_head_;
    std::unique_ptr<tfx::sdk::RotaryEmbedding> rotary_global_, rotary_local_;
    float normalizer_ = 1.0f;
    tfx::sdk::OutputWriter output_;
    std::vector<float> hidden_, normed_, q_, k_, v_, attn_, gate_, up_, cos_, sin_, cos_local_, sin_local_;
};

const tfx_model_table kTable = {
    sizeof(tfx_model_table),
    tfx::sdk::method<&Gemma3::load>,
    tfx::sdk::method<&Gemma3::get_info>,
    tfx::sdk::method<&Gemma3::forward>,
    tfx::sdk::method<&Gemma3::weight_specs>,
};

}  // namespace

TFX_PLUGIN_EXPORT(Gemma3, kTable)
