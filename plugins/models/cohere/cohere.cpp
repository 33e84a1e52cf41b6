// Cohere (CohereForCausalLM: Command R, Command R7B), mirroring transformers' modeling_cohere.py:
//   embed -> N x [h = layer_norm(x); x += attn(h) + mlp(h)] -> layer_norm -> lm_head * logit_scale
// CohereLayerNorm subtracts the mean and has a weight only; attention and the SwiGLU MLP run in
// parallel from one norm; the rotary embedding is interleaved: it turns pairs (x0, x1), (x2, x3),
// ... where the backend's rope turns (x_i, x_{i + half}). q and k are therefore regrouped (even
// dims, then odd dims) before rotating: both get the same order, so q·k is unchanged and v
// and the output keep theirs. use_qk_norm (Command R+'s per-head q/k norms) is refused: no
// reference output covers it yet.
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

struct CohereConfig : DecoderConfig {
    float layer_norm_eps, logit_scale;
    bool attention_bias;
    tfx_activation act;
    RopeScaling rope;

    // CohereConfig's defaults (tied embeddings).
    explicit CohereConfig(const Config& c)
        : DecoderConfig(c, {.max_position_embeddings = 8192, .tie_word_embeddings = true}),
          layer_norm_eps(c.get_positive<float>("layer_norm_eps", 1e-5f)),
          logit_scale(c.get_positive<float>("logit_scale", 0.0625f)),
          attention_bias(c.get_or<bool>("attention_bias", false)),
          act(activation_from(c)),
          rope(rope_scaling(c, {"default", "linear", "dynamic"})) {
        if (c.get_or<bool>("use_qk_norm", false)) c.fail("use_qk_norm", "true is not supported yet (false only)");
    }
};

struct Layer {
    View input_norm;
    AttentionWeights attn;
    GatedMlp mlp;
};

class Cohere : public ModelPlugin<Cohere, CohereConfig> {
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
            l.input_norm = w.f32(p + "input_layernorm.weight", {h});
            l.attn = attention_weights(w, p + "self_attn.", {"q_proj", "k_proj", "v_proj", "o_proj"}, c,
                                       c.attention_bias, c.attention_bias);
            l.mlp = gated_mlp(w, p + "mlp.", {"gate_proj", "up_proj", "down_proj"}, h, c.intermediate_size, false);
        }
        final_norm_ = w.f32("model.norm.weight", {h});
        lm_head_ = w.lm_head("lm_head", embed_, c.tie_word_embeddings);
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
            host_.layer_norm(x, l.input_norm, nullptr, c.layer_norm_eps, xn);
            attn_.project(l.attn, xn);
            regroup_pairs(attn_.q_heads, c.num_heads);
            regroup_pairs(attn_.k_heads, c.num_kv_heads);
            attn_.rope(rope_);
            ffn_gated(host_, l.mlp, c.act, xn, mlp_out, gate_, up_);  // from the same normed input
            attn_.attend(a, i, {}).output(l.attn, xn);
            host_.add(x, xn, x);
            host_.add(x, mlp_out, x);
        }
        host_.layer_norm(x, final_norm_, nullptr, c.layer_norm_eps, xn);
        // lm_head has no bias: scaling its input scales the logits.
        host_.scale(xn, c.logit_scale, xn);
        output_.write(a, xn, &lm_head_, c.vocab_size);
    }

  private:
    // Each head's dims (x0, x1, x2, x3, ...) become (x0, x2, ..., x1, x3, ...), in place.
    void regroup_pairs(View& heads, int64_t count) {
        const int64_t n = heads.dim(0), d = config_.head_dim, half = d / 2;
        View copy = pairs_.rows(n * count, d).reshape({n, count, half, 2});
        host_.copy(heads.reshape({n, count, half, 2}), copy);
        View regrouped = heads.reshape({n, count, half, 2});
        regrouped.with_strides({count * d, d, 1, half});
        host_.copy(copy, regrouped);
    }

    View embed_, final_norm_;
    std::vector<Layer> layers_;
    Linear lm_head_;
    Rope rope_{host_, rope_settings(config_, config_.rope)};
    SelfAttention attn_{host_, config_.num_heads, config_.num_kv_heads, config_.head_dim};
    OutputWriter output_{host_};
    Scratch hidden_{host_}, normed_{host_}, mlp_out_{host_}, gate_{host_}, up_{host_}, pairs_{host_};
};

}  // namespace

TFX_PLUGIN_EXPORT(Cohere, tfx::sdk::model_table<Cohere>)
