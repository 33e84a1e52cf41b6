// Qwen2 (Qwen2ForCausalLM, Qwen2Model; Qwen1.5, Qwen2, Qwen2.5), mirroring transformers'
// modeling_qwen2.py:
//   embed -> N x [x += attn(rms_norm(x)); x += mlp(rms_norm(x))] -> rms_norm -> lm_head
// Llama's layout with a bias on the q/k/v projections (never on o_proj), grouped-query
// attention, a SwiGLU MLP, rotary embeddings (default, linear, dynamic, yarn) and sliding-window
// attention on the layers the config selects. All compute goes through the host's ops.
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

// ---- config.json: every field that changes the math ------------------------------------
struct Qwen2Config : DecoderConfig {
    tfx_activation act;
    RopeScaling rope;
    // Sliding-window attention: the window (> 0) of each layer, 0 for full attention; selected by
    // use_sliding_window, sliding_window, max_window_layers or layer_types.
    std::vector<int32_t> layer_window;

    explicit Qwen2Config(const Config& c)
        : DecoderConfig(c, {.max_position_embeddings = 32768}),
          act(activation_from(c)),
          rope(rope_scaling(c, {"default", "linear", "dynamic", "yarn"})),
          layer_window(layer_sliding_windows(c, num_layers)) {}
};

// ---- the model: model.embed_tokens -> model.layers.{i} -> model.norm -> lm_head (DecoderModel) ----
class Qwen2 : public DecoderModel<Qwen2, Qwen2Config> {
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
        l.attn = attention_weights(w, p + "self_attn.", {"q_proj", "k_proj", "v_proj", "o_proj"}, c, true, false);
        l.mlp = gated_mlp(w, p + "mlp.", {"gate_proj", "up_proj", "down_proj"}, h, c.intermediate_size, false);
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        auto [x, xn] = embed(a);
        rope_.compute(a);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const DecoderLayer& l = layers_[i];
            // Self-attention block (q/k/v with bias).
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 0.0f, xn);
            attn_.project(l.attn, xn)
                .rope(rope_)
                .attend(a, i, {.sliding_window = c.layer_window[i]})
                .output(l.attn, xn);
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

TFX_PLUGIN_EXPORT(Qwen2, tfx::sdk::model_table<Qwen2>)
