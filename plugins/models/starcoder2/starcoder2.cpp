// StarCoder2 (Starcoder2ForCausalLM), mirroring transformers' modeling_starcoder2.py:
//   embed -> N x [x += attn(layer_norm(x)); x += mlp(layer_norm(x))] -> layer_norm -> lm_head
// with LayerNorms that have biases, biases on every linear (use_bias), grouped-query attention
// with rotary embeddings (optionally a sliding window) and a plain MLP c_fc -> act -> c_proj.
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

struct Starcoder2Config : DecoderConfig {
    float norm_eps;
    bool use_bias;
    tfx_activation act;
    RopeScaling rope;
    int32_t sliding_window;

    explicit Starcoder2Config(const Config& c)
        // Starcoder2Config keeps PretrainedConfig's tie_word_embeddings=True.
        : DecoderConfig(c, {.max_position_embeddings = 4096, .tie_word_embeddings = true}),
          norm_eps(c.get_positive<float>("norm_epsilon", 1e-5f)),
          use_bias(c.get_or<bool>("use_bias", true)),
          act(activation_from(c, "hidden_act", "gelu_pytorch_tanh")),
          rope(rope_scaling(c, {"default", "linear", "dynamic", "llama3", "yarn"})),
          sliding_window(sliding_window_field(c, 0)) {}
};

struct Layer {
    LayerNorm input_norm, post_attention_norm;
    AttentionWeights attn;
    Mlp mlp;  // up: c_fc, down: c_proj
};

class Starcoder2 : public ModelPlugin<Starcoder2, Starcoder2Config> {
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
            l.post_attention_norm = w.layer_norm(p + "post_attention_layernorm", h);
            l.attn = attention_weights(w, p + "self_attn.", {"q_proj", "k_proj", "v_proj", "o_proj"}, c, c.use_bias,
                                       c.use_bias);
            l.mlp.up = w.linear(p + "mlp.c_fc", c.intermediate_size, h, c.use_bias);
            l.mlp.down = w.linear(p + "mlp.c_proj", h, c.intermediate_size, c.use_bias);
        }
        final_norm_ = w.layer_norm("model.norm", h);
        lm_head_ = w.lm_head("lm_head", embed_, c.tie_word_embeddings);
    }

    void get_info(tfx_model_info* info) { decoder_info(info, config_, true); }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t n = forward_rows(a), h = c.hidden_size;
        View x = hidden_.rows(n, h), xn = normed_.rows(n, h);
        host_.embedding(embed_, input_ids(a), x);
        rope_.compute(a);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const Layer& l = layers_[i];
            layer_norm(host_, x, l.input_norm, c.norm_eps, xn);
            attn_.project(l.attn, xn).rope(rope_).attend(a, i, {.sliding_window = c.sliding_window}).output(l.attn, xn);
            host_.add(x, xn, x);
            layer_norm(host_, x, l.post_attention_norm, c.norm_eps, xn);
            ffn(host_, l.mlp, c.act, xn, xn, inner_);
            host_.add(x, xn, x);
        }
        layer_norm(host_, x, final_norm_, c.norm_eps, xn);
        output_.write(a, xn, &lm_head_, c.vocab_size);
    }

  private:
    View embed_;
    LayerNorm final_norm_;
    std::vector<Layer> layers_;
    Linear lm_head_;
    Rope rope_{host_, rope_settings(config_, config_.rope)};
    SelfAttention attn_{host_, config_.num_heads, config_.num_kv_heads, config_.head_dim};
    OutputWriter output_{host_};
    Scratch hidden_{host_}, normed_{host_}, inner_{host_};
};

}  // namespace

TFX_PLUGIN_EXPORT(Starcoder2, tfx::sdk::model_table<Starcoder2>)
