// Gemma (GemmaForCausalLM, GemmaModel), mirroring transformers' modeling_gemma.py (v4.44):
//   embed * sqrt(hidden) -> N x [x += attn(norm(x)); x += mlp(norm(x))] -> norm -> lm_head
// where every RMSNorm scales by (1 + w), the MLP is GeGLU (tanh-approximated GELU), the head
// size comes from the config (not hidden / heads), and the LM head is tied to the embedding.
// All compute goes through the host's ops.
#include <cmath>
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

// ---- config.json: every field that changes the math ------------------------------------
struct GemmaConfig : DecoderConfig {
    bool attention_bias;
    tfx_activation act;
    float attn_scale;

    explicit GemmaConfig(const Config& c)
        : DecoderConfig(c, {.head_dim = 256, .max_position_embeddings = 8192, .tie_word_embeddings = true}),
          attention_bias(c.get_or<bool>("attention_bias", false)),
          // GemmaMLP reads hidden_activation and ignores hidden_act: the first Gemma configs say
          // "hidden_act": "gelu" but the models were trained with the tanh approximation.
          act(activation_from(c, "hidden_activation", "gelu_pytorch_tanh")),
          // 1 / sqrt(head_dim) as a Python double, then f32 (head_dim need not be a square).
          attn_scale(static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)))) {
        // GemmaRotaryEmbedding has no scaling: refuse a config that asks for one rather than ignore it.
        rope_scaling(c, {"default"});
    }
};

// ---- the model: model.embed_tokens -> model.layers.{i} -> model.norm -> lm_head (DecoderModel) ----
class Gemma : public DecoderModel<Gemma, GemmaConfig, Init::zeros> {
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
            // Self-attention block.
            norm(x, l.input_norm, xn);
            attn_.project(l.attn, xn).rope(rope_).attend(a, i, {.scale = c.attn_scale}).output(l.attn, xn);
            host_.add(x, xn, x);
            // MLP block: down(gelu_tanh(gate(x)) * up(x)).
            norm(x, l.post_attention_norm, xn);
            ffn_gated(host_, l.mlp, c.act, xn, xn, gate_, up_);
            host_.add(x, xn, x);
        }
        norm(x, final_norm_, xn);
        write_output(a, xn);
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

TFX_PLUGIN_EXPORT(Gemma, tfx::sdk::model_table<Gemma>)
