// OLMo 2 (Olmo2ForCausalLM, Olmo2Model), mirroring transformers' modeling_olmo2.py:
//   embed -> N x [x += post_attention_norm(attn(x)); x += post_feedforward_norm(mlp(x))]
//         -> rms_norm -> lm_head
// Norms sit after each sublayer (no pre-norm), and q_norm / k_norm are RMSNorms over the whole
// projected q (heads x head_dim) and k (kv_heads x head_dim), before the heads rotate.
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

struct Olmo2Config : DecoderConfig {
    bool attention_bias;
    tfx_activation act;
    RopeScaling rope;

    explicit Olmo2Config(const Config& c)
        : DecoderConfig(c, {.max_position_embeddings = 2048}),
          attention_bias(c.get_or<bool>("attention_bias", false)),
          act(activation_from(c)),
          rope(rope_scaling(c, {"default", "linear", "dynamic", "llama3", "yarn"})) {}
};

class Olmo2 : public DecoderModel<Olmo2, Olmo2Config> {
  public:
    using DecoderModel::DecoderModel;

    void declare_layer(WeightTable& w, DecoderLayer& l, const std::string& p, int64_t) {
        const auto& c = config_;
        const int64_t h = c.hidden_size;
        l.post_attention_norm = w.f32(p + "post_attention_layernorm.weight", {h});
        l.post_feedforward_norm = w.f32(p + "post_feedforward_layernorm.weight", {h});
        l.attn = attention_weights(w, p + "self_attn.", {"q_proj", "k_proj", "v_proj", "o_proj"}, c, c.attention_bias,
                                   c.attention_bias);
        l.q_norm = w.f32(p + "self_attn.q_norm.weight", {c.num_heads * c.head_dim});
        l.k_norm = w.f32(p + "self_attn.k_norm.weight", {c.num_kv_heads * c.head_dim});
        l.mlp = gated_mlp(w, p + "mlp.", {"gate_proj", "up_proj", "down_proj"}, h, c.intermediate_size, false);
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        auto [x, xn] = embed(a);
        rope_.compute(a);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const DecoderLayer& l = layers_[i];
            // Attention on x itself; q and k normalized as whole rows, then rotated.
            attn_.project(l.attn, x);
            host_.rms_norm(attn_.q, l.q_norm, c.rms_norm_eps, 0.0f, attn_.q);
            host_.rms_norm(attn_.k, l.k_norm, c.rms_norm_eps, 0.0f, attn_.k);
            attn_.rope(rope_).attend(a, i, {}).output(l.attn, xn);
            host_.rms_norm(xn, l.post_attention_norm, c.rms_norm_eps, 0.0f, xn);
            host_.add(x, xn, x);
            ffn_gated(host_, l.mlp, c.act, x, xn, gate_, up_);
            host_.rms_norm(xn, l.post_feedforward_norm, c.rms_norm_eps, 0.0f, xn);
            host_.add(x, xn, x);
        }
        host_.rms_norm(x, final_norm_, c.rms_norm_eps, 0.0f, xn);
        write_output(a, xn);
    }

  private:
    Rope rope_{host_, rope_settings(config_, config_.rope)};
};

}  // namespace

TFX_PLUGIN_EXPORT(Olmo2, tfx::sdk::model_table<Olmo2>)
