// Gemma 2 (Gemma2ForCausalLM), mirroring transformers' modeling_gemma2.py (v4.44):
//   embed * sqrt(hidden)
//   -> N x [x += post_attn_norm(attn(input_norm(x))); x += post_ff_norm(mlp(pre_ff_norm(x)))]
//   -> norm -> lm_head -> final soft-cap
// Every RMSNorm scales by (1 + w). Even layers (0, 2, ...) attend within a sliding window,
// odd layers globally; attention scores are scaled by query_pre_attn_scalar^-0.5 and
// soft-capped (cap * tanh(s / cap)). The MLP is GeGLU (tanh GELU); the LM head is tied.
// All compute goes through the host's ops.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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
        act = tfx::sdk::activation_from(c, "hidden_activation", "gelu_pytorch_tanh");
        tfx::sdk::require_positive(c, {{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                                       {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_layers},
                                       {"num_attention_heads", num_heads}, {"num_key_value_heads", num_kv_heads},
                                       {"head_dim", head_dim}, {"sliding_window", sliding_window}});
        if (sliding_window > INT32_MAX) c.fail("sliding_window", "too large");
        if (num_heads % num_kv_heads != 0) c.fail("num_key_value_heads", "must divide num_attention_heads");
        if (head_dim % 2 != 0) c.fail("head_dim", "must be even for rotary embeddings");
        // Gemma2RotaryEmbedding has no scaling: refuse a config that asks for one rather than ignore it.
        const std::string rope_type = tfx::sdk::rope_type_of(c);
        if (rope_type != "default") {
            c.fail("rope_scaling", "unsupported rope_type '" + rope_type + "' (gemma2 has no rope scaling)");
        }
    }

    // Gemma2Attention: sliding_window if not bool(layer_idx % 2), i.e. the even layers.
    bool is_sliding(int64_t layer) const { return layer % 2 == 0; }
};

// ---- the model -----------------------------------------------------------------------------
struct Layer {
    View input_norm, post_attention_norm, pre_feedforward_norm, post_feedforward_norm;
    Linear q, k, v, o, gate, up, down;
};

class Gemma2 {
public:
    explicit Gemma2(const tfx_host_services* services) : host_(services), config_(host_.config()) {}

    void load(const char*) {
        WeightTable w(host_, WeightTable::Mode::load);
        declare(w);
        const auto& c = config_;
        rotary_ = std::make_unique<tfx::sdk::RotaryEmbedding>(
            tfx::sdk::RopeSettings{c.head_dim, c.rope_theta, "default", Config(), c.max_positions});
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
            l.q(xn, q);
            l.k(xn, k);
            l.v(xn, v);
            host_.rope(q_heads, cos_v, sin_v);
            host_.rope(k_heads, cos_v, sin_v);
            const int32_t window = c.is_sliding(i) ? static_cast<int32_t>(c.sliding_window) : 0;
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
    Gemma2Config config_;
    View embed_, final_norm_;
    std::vector<Layer> layers_;
    Linear lm_head_;
    std::unique_ptr<tfx::sdk::RotaryEmbedding> rotary_;
    float normalizer_ = 1.0f;
    tfx::sdk::OutputWriter output_;
    std::vector<float> hidden_, normed_, q_, k_, v_, attn_, gate_, up_, cos_, sin_;
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
