// Granite (GraniteForCausalLM, GraniteModel), mirroring transformers' modeling_granite.py: Llama
// with four multipliers from config.json:
//   x = embed * embedding_multiplier
//   N x [x += residual_multiplier * attn(rms_norm(x)), scores scaled by attention_multiplier;
//        x += residual_multiplier * mlp(rms_norm(x))]
//   logits = lm_head(rms_norm(x)) / logits_scaling
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

struct GraniteConfig : DecoderConfig {
    bool attention_bias, mlp_bias;
    tfx_activation act;
    RopeScaling rope;
    float embedding_multiplier, attention_multiplier, residual_multiplier, logits_scaling;

    explicit GraniteConfig(const Config& c)
        : DecoderConfig(c, {.max_position_embeddings = 2048}),
          attention_bias(c.get_or<bool>("attention_bias", false)),
          mlp_bias(c.get_or<bool>("mlp_bias", false)),
          act(activation_from(c)),
          rope(rope_scaling(c, {"default", "linear", "dynamic", "llama3", "yarn"})),
          embedding_multiplier(c.get_positive<float>("embedding_multiplier", 1.0f)),
          attention_multiplier(c.get_positive<float>("attention_multiplier", 1.0f)),
          residual_multiplier(c.get_positive<float>("residual_multiplier", 1.0f)),
          logits_scaling(c.get_positive<float>("logits_scaling", 1.0f)) {}
};

class Granite : public DecoderModel<Granite, GraniteConfig> {
  public:
    using DecoderModel::DecoderModel;
    // Shards across --tp ranks: its attention and MLP are attention_weights and gated_mlp.
    static constexpr bool kTensorParallel = true;

    void declare_layer(WeightTable& w, DecoderLayer& l, const std::string& p, int64_t) {
        const auto& c = config_;
        const int64_t h = c.hidden_size;
        l.input_norm = w.f32(p + "input_layernorm.weight", {h});
        l.post_attention_norm = w.f32(p + "post_attention_layernorm.weight", {h});
        l.attn = attention_weights(w, p + "self_attn.", {"q_proj", "k_proj", "v_proj", "o_proj"}, c, c.attention_bias,
                                   c.attention_bias);
        l.mlp = gated_mlp(w, p + "mlp.", {"gate_proj", "up_proj", "down_proj"}, h, c.intermediate_size, c.mlp_bias);
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        auto [x, xn] = embed(a);
        host_.scale(x, c.embedding_multiplier, x);
        rope_.compute(a);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const DecoderLayer& l = layers_[i];
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 0.0f, xn);
            attn_.project(l.attn, xn).rope(rope_).attend(a, i, {.scale = c.attention_multiplier}).output(l.attn, xn);
            host_.scale(xn, c.residual_multiplier, xn);
            host_.add(x, xn, x);
            host_.rms_norm(x, l.post_attention_norm, c.rms_norm_eps, 0.0f, xn);
            ffn_gated(host_, l.mlp, c.act, xn, xn, gate_, up_);
            host_.scale(xn, c.residual_multiplier, xn);
            host_.add(x, xn, x);
        }
        host_.rms_norm(x, final_norm_, c.rms_norm_eps, 0.0f, xn);
        // lm_head has no bias, so dividing its input divides the logits (and the base model's
        // hidden states are not scaled: transformers scales only the logits).
        if (causal_lm_) host_.scale(xn, 1.0f / c.logits_scaling, xn);
        write_output(a, xn);
    }

  private:
    Rope rope_{host_, rope_settings(config_, config_.rope)};
};

}  // namespace

TFX_PLUGIN_EXPORT(Granite, tfx::sdk::model_table<Granite>)
