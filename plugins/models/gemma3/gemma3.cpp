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
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

// A soft-cap field: absent or null means no capping (0 here), as Gemma3TextConfig's default.
float softcap_field(const Config& c, const char* key) {
    if (!c.has(key)) return 0.0f;
    const float cap = c.get<float>(key);
    if (cap <= 0.0f) c.fail(key, "must be positive or null");
    return cap;
}

// ---- config.json: every field that changes the math ------------------------------------
struct Gemma3Config : DecoderConfig {
    double rope_local_base_freq;
    RopeScaling rope;  // global layers only
    bool attention_bias;
    tfx_activation act;
    float attn_scale, attn_softcap, final_softcap;
    int32_t sliding_window;
    std::vector<bool> sliding;  // per layer: local (sliding window) or global attention

    explicit Gemma3Config(const Config& c)
        : DecoderConfig(c, {.head_dim = 256,
                            .max_position_embeddings = 131072,
                            .rope_theta = 1000000.0,
                            .tie_word_embeddings = true}),
          rope_local_base_freq(c.get_positive<double>("rope_local_base_freq", 10000.0)),
          // rope_scaling applies to the global layers only (the local ones use the default rope).
          rope(rope_scaling(c, {"default", "linear"})),
          attention_bias(c.get_or<bool>("attention_bias", false)),
          act(activation_from(c, "hidden_activation", "gelu_pytorch_tanh")),
          attn_softcap(softcap_field(c, "attn_logit_softcapping")),
          final_softcap(softcap_field(c, "final_logit_softcapping")),
          sliding_window(sliding_window_field(c, 4096)) {
        // Scores are scaled by query_pre_attn_scalar ** -0.5 (a Python double, then f32), not head_dim.
        const double query_pre_attn_scalar = c.get_or<double>("query_pre_attn_scalar", 256.0);
        if (query_pre_attn_scalar <= 0.0) c.fail("query_pre_attn_scalar", "must be positive");
        attn_scale = static_cast<float>(std::pow(query_pre_attn_scalar, -0.5));
        // Which layers are local: layer_types when given, else every sliding_window_pattern-th
        // layer is global (is_sliding = bool((layer_idx + 1) % sliding_window_pattern)).
        if (auto types = sliding_layer_types(c, num_layers)) {
            sliding = std::move(*types);
        } else {
            const int64_t pattern = c.get_or<int64_t>("sliding_window_pattern", 6);
            if (pattern <= 0) c.fail("sliding_window_pattern", "must be positive");
            for (int64_t i = 0; i < num_layers; ++i) sliding.push_back((i + 1) % pattern != 0);
        }
    }
};

// ---- the model: model.embed_tokens -> model.layers.{i} -> model.norm -> lm_head (DecoderModel) ----
class Gemma3 : public DecoderModel<Gemma3, Gemma3Config, Init::zeros> {
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
        l.q_norm = w.f32(p + "self_attn.q_norm.weight", {c.head_dim}, Init::zeros);
        l.k_norm = w.f32(p + "self_attn.k_norm.weight", {c.head_dim}, Init::zeros);
        l.attn = attention_weights(w, p + "self_attn.", {"q_proj", "k_proj", "v_proj", "o_proj"}, c, c.attention_bias,
                                   c.attention_bias);
        l.mlp = gated_mlp(w, p + "mlp.", {"gate_proj", "up_proj", "down_proj"}, h, c.intermediate_size, false);
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        auto [x, xn] = embed(a);
        host_.scale(x, normalizer_, x);
        rope_global_.compute(a);
        rope_local_.compute(a);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const DecoderLayer& l = layers_[i];
            const bool local = c.sliding[i];
            // Self-attention block, normalized before and after: x += post_norm(attn(norm(x))), with
            // per-head norms of queries and keys, then the layer's own rotary embedding.
            norm(x, l.input_norm, xn);
            attn_.project(l.attn, xn);
            norm(attn_.q_rows, l.q_norm, attn_.q_rows);
            norm(attn_.k_rows, l.k_norm, attn_.k_rows);
            attn_.rope(local ? rope_local_ : rope_global_);
            attn_.attend(
                a, i,
                {.scale = c.attn_scale, .softcap = c.attn_softcap, .sliding_window = local ? c.sliding_window : 0});
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

    // Two rotary embeddings: the global layers' (rope_theta, rope_scaling) and the local layers'
    // (rope_local_base_freq, no scaling).
    Rope rope_global_{host_, rope_settings(config_, config_.rope)};
    Rope rope_local_{host_, RopeSettings{config_.head_dim, config_.rope_local_base_freq, "default", Config(),
                                         config_.max_positions}};
    // The embeddings are multiplied by a tensor of sqrt(hidden_size) in the activation dtype
    // (f32 here): the double rounded once to f32.
    const float normalizer_ = static_cast<float>(std::sqrt(static_cast<double>(config_.hidden_size)));
};

}  // namespace

TFX_PLUGIN_EXPORT(Gemma3, tfx::sdk::model_table<Gemma3>)
