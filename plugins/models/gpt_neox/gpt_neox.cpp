// GPT-NeoX (GPTNeoXForCausalLM: Pythia, GPT-NeoX-20B, ...), mirroring transformers'
// modeling_gpt_neox.py (v4.44):
//   embed_in -> N x layer -> final_layer_norm -> embed_out
//   layer, parallel residual:   x = mlp(ln2(x)) + attn(ln1(x)) + x
//   layer, sequential residual: y = attn(ln1(x)) + x; x = mlp(ln2(y)) + y
// with LayerNorm (with bias), a fused query_key_value projection laid out per head as
// [q | k | v], rotary embeddings on the first rotary_pct of each head's dims, a plain
// (ungated) MLP and an untied output projection. All compute goes through the host's ops.
#include <cmath>
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

// ---- config.json: every field that changes the math ------------------------------------
// The standard decoder fields (no head_dim or num_key_value_heads in GPTNeoXConfig: every head
// is hidden_size / num_attention_heads wide and has its own keys and values).
struct GPTNeoXConfig : DecoderConfig {
    int64_t rotary_ndims;
    float layer_norm_eps;
    bool use_parallel_residual, attention_bias;
    tfx_activation act;
    RopeScaling rope;

    explicit GPTNeoXConfig(const Config& c)
        // The rotary base is "rotary_emb_base" (newer configs may name it "rope_theta").
        : DecoderConfig(c, {.max_position_embeddings = 2048,
                            .rope_theta = c.get_positive<double>("rotary_emb_base", 10000.0),
                            .rotary_head_dim = false}),
          layer_norm_eps(c.get_positive<float>("layer_norm_eps", 1e-5f)),
          use_parallel_residual(c.get_or<bool>("use_parallel_residual", true)),
          attention_bias(c.get_or<bool>("attention_bias", true)),
          act(activation_from(c, "hidden_act", "gelu")),
          rope(rope_scaling(c, {"default", "linear"})) {
        if (hidden_size % num_heads != 0) c.fail("num_attention_heads", "must divide hidden_size");
        // rotary_ndims = int(head_size * rotary_pct): the leading dims of each head that rotate.
        const double rotary_pct = c.get_or<double>("rotary_pct", 0.25);
        if (rotary_pct < 0.0 || rotary_pct > 1.0) c.fail("rotary_pct", "must be in [0, 1]");
        rotary_ndims = static_cast<int64_t>(static_cast<double>(head_dim) * rotary_pct);
        if (rotary_ndims % 2 != 0) {
            c.fail("rotary_pct", "gives an odd number of rotary dims (" + std::to_string(rotary_ndims) + ")");
        }
    }
};

// ---- the model -----------------------------------------------------------------------------
struct Layer {
    LayerNorm ln1, ln2;
    Linear qkv, dense;
    Mlp mlp;  // up: dense_h_to_4h, down: dense_4h_to_h
};

class GPTNeoX : public ModelPlugin<GPTNeoX, GPTNeoXConfig> {
  public:
    using ModelPlugin::ModelPlugin;

    // Every tensor of the checkpoint, for load() and weight_specs() alike.
    void declare(WeightTable& w) {
        const auto& c = config_;
        host_.task_head({"causal_lm"});  // the family's only head; throws on any other
        const int64_t h = c.hidden_size;
        embed_in_ =
            w.embedding("gpt_neox.embed_in.weight", "embed_out.weight", {c.vocab_size, h}, c.tie_word_embeddings);
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = "gpt_neox.layers." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.ln1 = w.layer_norm(p + "input_layernorm", h);
            l.ln2 = w.layer_norm(p + "post_attention_layernorm", h);
            l.qkv = w.linear(p + "attention.query_key_value", 3 * h, h, c.attention_bias);
            l.dense = w.linear(p + "attention.dense", h, h, c.attention_bias);
            l.mlp.up = w.linear(p + "mlp.dense_h_to_4h", c.intermediate_size, h, true);
            l.mlp.down = w.linear(p + "mlp.dense_4h_to_h", h, c.intermediate_size, true);
        }
        final_ln_ = w.layer_norm("gpt_neox.final_layer_norm", h);
        embed_out_ = w.lm_head("embed_out", embed_in_, c.tie_word_embeddings);
    }

    void get_info(tfx_model_info* info) { decoder_info(info, config_, true); }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t n = forward_rows(a), h = c.hidden_size, heads = c.num_heads, hd = c.head_dim;
        const auto scale = static_cast<float>(std::pow(static_cast<double>(hd), -0.5));  // norm_factor, in double
        View x = hidden_.rows(n, h), xn = normed_.rows(n, h), attn_out = attn_out_.rows(n, h);
        host_.embedding(embed_in_, input_ids(a), x);
        rope_.compute(a);

        // query_key_value's output is [n, heads, 3 * head_dim] with q, k, v side by side in each
        // head: strided views pick them out into compact [n, heads, head_dim] tensors.
        View qkv = qkv_.rows(n, 3 * h);
        View q_src = qkv.at(0, {n, heads, hd}), k_src = qkv.at(hd, {n, heads, hd}),
             v_src = qkv.at(2 * hd, {n, heads, hd});
        for (View* src : {&q_src, &k_src, &v_src}) src->with_strides({3 * h, 3 * hd, 1});
        attn_.resize(n);

        for (int64_t i = 0; i < c.num_layers; ++i) {
            const Layer& l = layers_[i];
            // Attention on input_layernorm(x).
            layer_norm(host_, x, l.ln1, c.layer_norm_eps, xn);
            l.qkv(xn, qkv);
            host_.copy(q_src, attn_.q_heads);
            host_.copy(k_src, attn_.k_heads);
            host_.copy(v_src, attn_.v_heads);
            if (c.rotary_ndims > 0) attn_.rope(rope_);  // the first rotary_ndims dims; the rest pass
            attn_.attend(a, i, {.scale = scale});
            l.dense(attn_.out, attn_out);
            if (c.use_parallel_residual) {
                // x = mlp(post_attention_layernorm(x)) + attn + x
                layer_norm(host_, x, l.ln2, c.layer_norm_eps, xn);
                ffn(host_, l.mlp, c.act, xn, xn, inner_);
                host_.add(xn, attn_out, xn);
                host_.add(xn, x, x);
            } else {
                // y = attn + x; x = mlp(post_attention_layernorm(y)) + y
                host_.add(attn_out, x, x);
                layer_norm(host_, x, l.ln2, c.layer_norm_eps, xn);
                ffn(host_, l.mlp, c.act, xn, xn, inner_);
                host_.add(xn, x, x);
            }
        }
        layer_norm(host_, x, final_ln_, c.layer_norm_eps, xn);
        output_.write(a, xn, &embed_out_, c.vocab_size);
    }

  private:
    View embed_in_;
    LayerNorm final_ln_;
    std::vector<Layer> layers_;
    Linear embed_out_;
    // Rotary embeddings over the first rotary_ndims dims: inv_freq = theta^(-2i/rotary_ndims) in
    // f32, divided by the factor under linear scaling.
    Rope rope_{host_, RopeSettings{config_.rotary_ndims, config_.rope_theta, config_.rope.type, config_.rope.scaling,
                                   config_.max_positions}};
    SelfAttention attn_{host_, config_.num_heads, config_.num_heads, config_.head_dim};
    OutputWriter output_{host_};
    Scratch hidden_{host_}, normed_{host_}, qkv_{host_}, attn_out_{host_}, inner_{host_};
};

}  // namespace

TFX_PLUGIN_EXPORT(GPTNeoX, tfx::sdk::model_table<GPTNeoX>)
