// Phi (PhiForCausalLM: phi-1, phi-1.5, phi-2), mirroring transformers' modeling_phi.py:
//   embed -> N x [h = layer_norm(x); x += attn(h) + mlp(h)] -> final_layernorm -> lm_head (+ bias)
// One LayerNorm per layer feeding attention and MLP in parallel, partial rotary embeddings (the
// first partial_rotary_factor of each head's dims rotate, the rest pass), biases on q/k/v/dense
// and fc1/fc2, a plain gelu_new MLP. qk_layernorm (LayerNorms over each head of q and k) when set.
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

struct PhiConfig : DecoderConfig {
    float layer_norm_eps;
    tfx_activation act;
    RopeScaling rope;
    int64_t rotary_ndims;
    bool qk_layernorm;

    explicit PhiConfig(const Config& c)
        : DecoderConfig(c, {.rotary_head_dim = false}),
          layer_norm_eps(c.get_positive<float>("layer_norm_eps", 1e-5f)),
          act(activation_from(c, "hidden_act", "gelu_new")),
          rope(rope_scaling(c, {"default", "linear", "dynamic"})),
          qk_layernorm(c.get_or<bool>("qk_layernorm", false)) {
        const double factor = c.get_or<double>("partial_rotary_factor", 0.5);
        if (factor < 0.0 || factor > 1.0) c.fail("partial_rotary_factor", "must be in [0, 1]");
        rotary_ndims = static_cast<int64_t>(static_cast<double>(head_dim) * factor);
        if (rotary_ndims % 2 != 0) c.fail("partial_rotary_factor", "gives an odd number of rotary dims");
    }
};

struct Layer {
    LayerNorm input_norm, q_norm, k_norm;
    AttentionWeights attn;  // q_proj, k_proj, v_proj, dense
    Mlp mlp;                // fc1, fc2
};

class Phi : public ModelPlugin<Phi, PhiConfig> {
  public:
    using ModelPlugin::ModelPlugin;

    void declare(WeightTable& w) {
        const auto& c = config_;
        host_.task_head({"causal_lm"});
        const int64_t h = c.hidden_size;
        embed_ = w.embedding("model.embed_tokens.weight", "lm_head.weight", {c.vocab_size, h}, c.tie_word_embeddings);
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = "model.layers." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.input_norm = w.layer_norm(p + "input_layernorm", h);
            l.attn = attention_weights(w, p + "self_attn.", {"q_proj", "k_proj", "v_proj", "dense"}, c, true, true);
            if (c.qk_layernorm) {
                l.q_norm = w.layer_norm(p + "self_attn.q_layernorm", c.head_dim);
                l.k_norm = w.layer_norm(p + "self_attn.k_layernorm", c.head_dim);
            }
            l.mlp.up = w.linear(p + "mlp.fc1", c.intermediate_size, h, true);
            l.mlp.down = w.linear(p + "mlp.fc2", h, c.intermediate_size, true);
        }
        final_norm_ = w.layer_norm("model.final_layernorm", h);
        lm_head_ =
            c.tie_word_embeddings ? w.lm_head("lm_head", embed_, true) : w.linear("lm_head", c.vocab_size, h, true);
    }

    void get_info(tfx_model_info* info) { decoder_info(info, config_, true); }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t n = forward_rows(a), h = c.hidden_size;
        View x = hidden_.rows(n, h), xn = normed_.rows(n, h), mlp_out = mlp_out_.rows(n, h);
        host_.embedding(embed_, input_ids(a), x);
        rope_.compute(a);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const Layer& l = layers_[i];
            layer_norm(host_, x, l.input_norm, c.layer_norm_eps, xn);
            attn_.project(l.attn, xn);
            if (c.qk_layernorm) {
                layer_norm(host_, attn_.q_rows, l.q_norm, c.layer_norm_eps, attn_.q_rows);
                layer_norm(host_, attn_.k_rows, l.k_norm, c.layer_norm_eps, attn_.k_rows);
            }
            if (c.rotary_ndims > 0) attn_.rope(rope_);
            ffn(host_, l.mlp, c.act, xn, mlp_out, inner_);  // from the same normed input
            attn_.attend(a, i, {}).output(l.attn, xn);
            host_.add(x, xn, x);
            host_.add(x, mlp_out, x);
        }
        layer_norm(host_, x, final_norm_, c.layer_norm_eps, xn);
        output_.write(a, xn, &lm_head_, c.vocab_size);
    }

  private:
    View embed_;
    LayerNorm final_norm_;
    std::vector<Layer> layers_;
    Linear lm_head_;
    Rope rope_{host_, RopeSettings{config_.rotary_ndims, config_.rope_theta, config_.rope.type, config_.rope.scaling,
                                   config_.max_positions}};
    SelfAttention attn_{host_, config_.num_heads, config_.num_kv_heads, config_.head_dim};
    OutputWriter output_{host_};
    Scratch hidden_{host_}, normed_{host_}, mlp_out_{host_}, inner_{host_};
};

}  // namespace

TFX_PLUGIN_EXPORT(Phi, tfx::sdk::model_table<Phi>)
