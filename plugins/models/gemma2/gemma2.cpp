// Gemma 2 (Gemma2ForCausalLM), mirroring transformers' modeling_gemma2.py (v4.44):
//   embed * sqrt(hidden)
//   -> N x [x += post_attn_norm(attn(input_norm(x))); x += post_ff_norm(mlp(pre_ff_norm(x)))]
//   -> norm -> lm_head -> final soft-cap
// Every RMSNorm scales by (1 + w). Even layers (0, 2, ...) attend within a sliding window,
// odd layers globally; attention scores are scaled by query_pre_attn_scalar^-0.5 and
// soft-capped (cap * tanh(s / cap)). The MLP is GeGLU (tanh GELU); the LM head is tied.
// All compute goes through the host's ops.
#include <cmath>
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

// A soft-cap field: absent means the config class default, null means no capping (0 here).
float softcap_field(const Config& c, const char* key, float class_default) {
    if (!c.json().contains(key)) return class_default;
    if (!c.has(key)) return 0.0f;
    const float cap = c.get<float>(key);
    if (cap <= 0.0f) c.fail(key, "must be positive or null");
    return cap;
}

// ---- config.json: every field that changes the math ------------------------------------
struct Gemma2Config : DecoderConfig {
    bool attention_bias;
    tfx_activation act;
    float attn_scale, attn_softcap, final_softcap;
    int32_t sliding_window;  // of the even layers; null: none

    explicit Gemma2Config(const Config& c)
        : DecoderConfig(c, {.head_dim = 256, .max_position_embeddings = 8192, .tie_word_embeddings = true}),
          attention_bias(c.get_or<bool>("attention_bias", false)),
          act(activation_from(c, "hidden_activation", "gelu_pytorch_tanh")),
          attn_softcap(softcap_field(c, "attn_logit_softcapping", 50.0f)),
          final_softcap(softcap_field(c, "final_logit_softcapping", 30.0f)),
          sliding_window(sliding_window_field(c, 4096)) {
        // Scores are scaled by query_pre_attn_scalar ** -0.5 (a Python double, then f32), not head_dim.
        const double query_pre_attn_scalar = c.get_or<double>("query_pre_attn_scalar", 256.0);
        if (query_pre_attn_scalar <= 0.0) c.fail("query_pre_attn_scalar", "must be positive");
        attn_scale = static_cast<float>(std::pow(query_pre_attn_scalar, -0.5));
        // Gemma2RotaryEmbedding has no scaling: refuse a config that asks for one rather than ignore it.
        rope_scaling(c, {"default"});
    }

    // Gemma2Attention: sliding_window if not bool(layer_idx % 2), i.e. the even layers.
    int32_t window(int64_t layer) const { return layer % 2 == 0 ? sliding_window : 0; }
};

// ---- the model: model.embed_tokens -> model.layers.{i} -> model.norm -> lm_head (DecoderModel) ----
class Gemma2 : public DecoderModel<Gemma2, Gemma2Config, Init::zeros> {
  public:
    using DecoderModel::DecoderModel;
    // Shards across --tp ranks: its attention and MLP are attention_weights and gated_mlp.
    static constexpr bool kTensorParallel = true;

    // Layer i's tensors, p = "model.layers.{i}.", for load() and weight_specs() alike. Norm weights
    // start at zero: (1 + w) makes that the identity scale, as in HF's init.
    void declare_layer(WeightTable& w, DecoderLayer& l, const std::string& p, int64_t) {
        const auto& c = config_;
        const int64_t h = c.hidden_size;
        l.input_norm = w.f32(p + "input_layernorm.weight", {h}, Init::zeros);
        l.post_attention_norm = w.f32(p + "post_attention_layernorm.weight", {h}, Init::zeros);
        l.pre_feedforward_norm = w.f32(p + "pre_feedforward_layernorm.weight", {h}, Init::zeros);
        l.post_feedforward_norm = w.f32(p + "post_feedforward_layernorm.weight", {h}, Init::zeros);
        l.attn = attention_weights(w, p + "self_attn.", {"q_proj", "k_proj", "v_proj", "o_proj"}, c, c.attention_bias,
                                   c.attention_bias);
        l.mlp = gated_mlp(w, p + "mlp.", {"gate_proj", "up_proj", "down_proj"}, h, c.intermediate_size, false);
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        auto [x, xn] = embed(a);
        host_.scale(x, normalizer_, x);
        rope_.compute(a);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const DecoderLayer& l = layers_[i];
            // Self-attention block, normalized before and after: x += post_norm(attn(norm(x))).
            norm(x, l.input_norm, xn);
            attn_.project(l.attn, xn).rope(rope_);
            attn_.attend(a, i, {.scale = c.attn_scale, .softcap = c.attn_softcap, .sliding_window = c.window(i)});
            attn_.output(l.attn, xn);
            norm(xn, l.post_attention_norm, xn);
            host_.add(x, xn, x);
            // MLP block: x += post_norm(down(gelu_tanh(gate(y)) * up(y))), y = pre_norm(x).
            norm(x, l.pre_feedforward_norm, xn);
            ffn_gated(host_, l.mlp, c.act, xn, xn, gate_, up_);
            norm(xn, l.post_feedforward_norm, xn);
            host_.add(x, xn, x);
        }
        norm(x, final_norm_, xn);
        write_output(a, xn);
        if (causal_lm_) softcap_output(host_, a, c.final_softcap, c.vocab_size);  // cap * tanh(logits / cap)
    }

  private:
    // GemmaRMSNorm: x / rms(x) * (1 + w).
    void norm(const View& x, const View& weight, View& y) const {
        host_.rms_norm(x, weight, config_.rms_norm_eps, 1.0f, y);
    }

    Rope rope_{host_, rope_settings(config_)};
    // The embeddings are multiplied by a tensor of sqrt(hidden_size) in the activation dtype
    // (f32 here): the double rounded once to f32.
    const float normalizer_ = static_cast<float>(std::sqrt(static_cast<double>(config_.hidden_size)));
};

}  // namespace

TFX_PLUGIN_EXPORT(Gemma2, tfx::sdk::model_table<Gemma2>)
