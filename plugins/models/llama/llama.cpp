// Llama (LlamaForCausalLM, LlamaModel), mirroring transformers' modeling_llama.py:
//   embed -> N x [x += attn(rms_norm(x)); x += mlp(rms_norm(x))] -> rms_norm -> lm_head
// with rotary position embeddings (default, linear, dynamic, llama3 and yarn scaling),
// grouped-query attention and a SwiGLU MLP. All compute goes through the host's ops.
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

// ---- config.json: every field that changes the math ------------------------------------
struct LlamaConfig : DecoderConfig {
    bool attention_bias, mlp_bias;
    tfx_activation act;
    RopeScaling rope;

    explicit LlamaConfig(const Config& c)
        : DecoderConfig(c, {.max_position_embeddings = 2048}),
          attention_bias(c.get_or<bool>("attention_bias", false)),
          mlp_bias(c.get_or<bool>("mlp_bias", false)),
          act(activation_from(c)),
          rope(rope_scaling(c, {"default", "linear", "dynamic", "llama3", "yarn"})) {}
};

// ---- the model: model.embed_tokens -> model.layers.{i} -> model.norm -> lm_head (DecoderModel) ----
class Llama : public DecoderModel<Llama, LlamaConfig> {
  public:
    using DecoderModel::DecoderModel;
    // Shards across --tp ranks: its attention and MLP are attention_weights and gated_mlp.
    static constexpr bool kTensorParallel = true;

    // Layer i's tensors, p = "model.layers.{i}.", for load() and weight_specs() alike.
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
        rope_.compute(a);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const DecoderLayer& l = layers_[i];
            // Self-attention block.
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 0.0f, xn);
            attn_.project(l.attn, xn).rope(rope_).attend(a, i, {}).output(l.attn, xn);
            host_.add(x, xn, x);
            // MLP block: down(act(gate(x)) * up(x)).
            host_.rms_norm(x, l.post_attention_norm, c.rms_norm_eps, 0.0f, xn);
            ffn_gated(host_, l.mlp, c.act, xn, xn, gate_, up_);
            host_.add(x, xn, x);
        }
        host_.rms_norm(x, final_norm_, c.rms_norm_eps, 0.0f, xn);
        write_output(a, xn);
    }

  private:
    Rope rope_{host_, rope_settings(config_, config_.rope)};
};

}  // namespace

TFX_PLUGIN_EXPORT(Llama, tfx::sdk::model_table<Llama>)
