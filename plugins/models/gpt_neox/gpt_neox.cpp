// GPT-NeoX (GPTNeoXForCausalLM: Pythia, GPT-NeoX-20B, ...), mirroring transformers'
// modeling_gpt_neox.py (v4.44):
//   embed_in -> N x layer -> final_layer_norm -> embed_out
//   layer, parallel residual:   x = mlp(ln2(x)) + attn(ln1(x)) + x
//   layer, sequential residual: y = attn(ln1(x)) + x; x = mlp(ln2(y)) + y
// with LayerNorm (with bias), a fused query_key_value projection laid out per head as
// [q | k | v], rotary embeddings on the first rotary_pct of each head's dims, a plain
// (ungated) MLP and an untied output projection. All compute goes through the host's ops.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "tfx/sdk/host.hpp"
#include "tfx/sdk/layers.hpp"
#include "tfx/sdk/plugin.hpp"
#include "tfx/sdk/rotary.hpp"

namespace {

using tfx::sdk::Config;
using tfx::sdk::Error;
using tfx::sdk::Init;
using tfx::sdk::Linear;
using tfx::sdk::View;
using tfx::sdk::WeightTable;

// ---- config.json: every field that changes the math ------------------------------------
struct GPTNeoXConfig {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, head_dim, rotary_ndims;
    int64_t max_positions;
    float layer_norm_eps;
    double rope_theta;
    bool use_parallel_residual, attention_bias, tie_word_embeddings;
    tfx_activation act;
    Config rope_scaling;  // empty object when absent
    std::string rope_type;

    explicit GPTNeoXConfig(const Config& c) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        max_positions = c.get_or<int64_t>("max_position_embeddings", 2048);
        layer_norm_eps = c.get_or<float>("layer_norm_eps", 1e-5f);
        // The rotary base is "rotary_emb_base" (newer configs may name it "rope_theta").
        rope_theta = c.has("rope_theta") ? c.get<double>("rope_theta") : c.get_or<double>("rotary_emb_base", 10000.0);
        const double rotary_pct = c.get_or<double>("rotary_pct", 0.25);
        use_parallel_residual = c.get_or<bool>("use_parallel_residual", true);
        attention_bias = c.get_or<bool>("attention_bias", true);
        tie_word_embeddings = c.get_or<bool>("tie_word_embeddings", false);
        act = tfx::sdk::activation_from(c, "hidden_act", "gelu");
        tfx::sdk::require_positive(c, {{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                                       {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_layers},
                                       {"num_attention_heads", num_heads}});
        if (hidden_size % num_heads != 0) c.fail("num_attention_heads", "must divide hidden_size");
        head_dim = hidden_size / num_heads;
        // rotary_ndims = int(head_size * rotary_pct): the leading dims of each head that rotate.
        if (rotary_pct < 0.0 || rotary_pct > 1.0) c.fail("rotary_pct", "must be in [0, 1]");
        rotary_ndims = static_cast<int64_t>(static_cast<double>(head_dim) * rotary_pct);
        if (rotary_ndims % 2 != 0) c.fail("rotary_pct", "gives an odd number of rotary dims (" + std::to_string(rotary_ndims) + ")");
        rope_type = tfx::sdk::rope_type_of(c);
        if (c.has("rope_scaling")) rope_scaling = c.child("rope_scaling");
        if (rope_type == "linear") {
            if (rope_scaling.get<float>("factor") <= 0.0f) rope_scaling.fail("factor", "must be positive");
        } else if (rope_type != "default") {
            c.fail("rope_scaling", "unsupported rope type '" + rope_type + "' (default, linear)");
        }
    }
};

// ---- the model -----------------------------------------------------------------------------
struct Layer {
    View ln1_w, ln1_b, ln2_w, ln2_b;
    Linear qkv, dense, h_to_4h, four_h_to_h;
};

class GPTNeoX {
public:
    explicit GPTNeoX(const tfx_host_services* services) : host_(services), config_(host_.config()) {}

    void load(const char*) {
        WeightTable w(host_, WeightTable::Mode::load);
        declare(w);
        // Rotary embeddings over the first rotary_ndims dims: inv_freq = theta^(-2i/rotary_ndims)
        // in f32, divided by the factor under linear scaling.
        rotary_ = std::make_unique<tfx::sdk::RotaryEmbedding>(tfx::sdk::RopeSettings{
            config_.rotary_ndims, config_.rope_theta, config_.rope_type, config_.rope_scaling, config_.max_positions});
    }

    void weight_specs(const char*, tfx_sink sink) {
        WeightTable w(host_, WeightTable::Mode::describe);
        declare(w);
        w.write_specs(sink);
    }

    void get_info(tfx_model_info* info) {
        info->output_kind = TFX_OUTPUT_LOGITS;
        info->vocab_size = static_cast<int32_t>(config_.vocab_size);
        info->hidden_size = static_cast<int32_t>(config_.hidden_size);
        info->output_size = static_cast<int32_t>(config_.vocab_size);
        info->num_layers = static_cast<int32_t>(config_.num_layers);
        info->num_kv_heads = static_cast<int32_t>(config_.num_heads);
        info->head_dim = static_cast<int32_t>(config_.head_dim);
        info->max_positions = config_.max_positions;
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t b = a->batch, t = a->tokens, n = b * t, h = c.hidden_size;
        const int64_t heads = c.num_heads, hd = c.head_dim, half = c.rotary_ndims / 2;
        const auto scale = static_cast<float>(std::pow(static_cast<double>(hd), -0.5));  // norm_factor, in double
        if (b <= 0 || t <= 0 || a->input_ids == nullptr || a->positions == nullptr || a->output == nullptr) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: batch, tokens, input_ids, positions and output are required");
        }
        hidden_.resize(n * h), normed_.resize(n * h), qkv_.resize(n * 3 * h), q_.resize(n * h), k_.resize(n * h);
        v_.resize(n * h), attn_.resize(n * h), attn_out_.resize(n * h), inner_.resize(n * c.intermediate_size);

        View ids(const_cast<int32_t*>(a->input_ids), tfx::sdk::kI32, {n});
        View x(hidden_.data(), {n, h}), xn(normed_.data(), {n, h}), attn_out(attn_out_.data(), {n, h});
        host_.embedding(embed_in_, ids, x);

        rotary_->compute(a->positions, n, cos_, sin_);
        View cos_v(cos_.data(), {n, half}), sin_v(sin_.data(), {n, half});

        // query_key_value's output is [n, heads, 3 * head_dim] with q, k, v side by side in each
        // head: strided views pick them out into compact [n, heads, head_dim] tensors.
        View qkv(qkv_.data(), {n, 3 * h});
        View q_src(qkv_.data(), {n, heads, hd}), k_src(qkv_.data() + hd, {n, heads, hd});
        View v_src(qkv_.data() + 2 * hd, {n, heads, hd});
        for (View* src : {&q_src, &k_src, &v_src}) src->with_strides({3 * h, 3 * hd, 1});
        View q_heads(q_.data(), {n, heads, hd}), k_heads(k_.data(), {n, heads, hd}), v_heads(v_.data(), {n, heads, hd});
        View o(attn_.data(), {n, h}), inner(inner_.data(), {n, c.intermediate_size});
        View q4(q_.data(), {b, t, heads, hd}), k4(k_.data(), {b, t, heads, hd});
        View v4(v_.data(), {b, t, heads, hd}), o4(attn_.data(), {b, t, heads, hd});

        for (int64_t i = 0; i < c.num_layers; ++i) {
            Layer& l = layers_[i];
            // Attention on input_layernorm(x).
            host_.layer_norm(x, l.ln1_w, &l.ln1_b, c.layer_norm_eps, xn);
            l.qkv(xn, qkv);
            host_.copy(q_src, q_heads);
            host_.copy(k_src, k_heads);
            host_.copy(v_src, v_heads);
            if (half > 0) {
                host_.rope(q_heads, cos_v, sin_v);  // the first rotary_ndims dims; the rest pass
                host_.rope(k_heads, cos_v, sin_v);
            }
            tfx::sdk::attend(host_, a, i, {.q = q4, .k = k4, .v = v4, .out = o4, .scale = scale});
            l.dense(o, attn_out);
            if (c.use_parallel_residual) {
                // x = mlp(post_attention_layernorm(x)) + attn + x
                host_.layer_norm(x, l.ln2_w, &l.ln2_b, c.layer_norm_eps, xn);
                mlp(l, xn, inner, xn);
                host_.add(xn, attn_out, xn);
                host_.add(xn, x, x);
            } else {
                // y = attn + x; x = mlp(post_attention_layernorm(y)) + y
                host_.add(attn_out, x, x);
                host_.layer_norm(x, l.ln2_w, &l.ln2_b, c.layer_norm_eps, xn);
                mlp(l, xn, inner, xn);
                host_.add(xn, x, x);
            }
        }
        host_.layer_norm(x, final_ln_w_, &final_ln_b_, c.layer_norm_eps, xn);
        output_.write(a, xn, &embed_out_, c.vocab_size);
    }

private:
    // Every tensor of the checkpoint, for load() and weight_specs() alike.
    void declare(WeightTable& w) {
        const auto& c = config_;
        host_.task_head({"causal_lm"});  // the family's only head; throws on any other
        const int64_t h = c.hidden_size;
        // Tied embeddings: either side of the tie may be the stored tensor.
        embed_in_ = c.tie_word_embeddings
                        ? w.tensor_or("gpt_neox.embed_in.weight", "embed_out.weight", {c.vocab_size, h})
                        : w.tensor("gpt_neox.embed_in.weight", {c.vocab_size, h});
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = "gpt_neox.layers." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.ln1_w = w.f32(p + "input_layernorm.weight", {h});
            l.ln1_b = w.f32(p + "input_layernorm.bias", {h}, Init::zeros);
            l.ln2_w = w.f32(p + "post_attention_layernorm.weight", {h});
            l.ln2_b = w.f32(p + "post_attention_layernorm.bias", {h}, Init::zeros);
            l.qkv = w.linear(p + "attention.query_key_value", 3 * h, h, c.attention_bias);
            l.dense = w.linear(p + "attention.dense", h, h, c.attention_bias);
            l.h_to_4h = w.linear(p + "mlp.dense_h_to_4h", c.intermediate_size, h, true);
            l.four_h_to_h = w.linear(p + "mlp.dense_4h_to_h", h, c.intermediate_size, true);
        }
        final_ln_w_ = w.f32("gpt_neox.final_layer_norm.weight", {h});
        final_ln_b_ = w.f32("gpt_neox.final_layer_norm.bias", {h}, Init::zeros);
        embed_out_ = c.tie_word_embeddings ? w.pack(embed_in_) : w.linear("embed_out", c.vocab_size, h, false);
    }

    // dense_4h_to_h(act(dense_h_to_4h(x))).
    void mlp(const Layer& l, const View& x, View& inner, View& y) {
        l.h_to_4h(x, inner);
        host_.activation(config_.act, inner, inner);
        l.four_h_to_h(inner, y);
    }

    tfx::sdk::Host host_;
    GPTNeoXConfig config_;
    View embed_in_, final_ln_w_, final_ln_b_;
    std::vector<Layer> layers_;
    Linear embed_out_;
    std::unique_ptr<tfx::sdk::RotaryEmbedding> rotary_;
    tfx::sdk::OutputWriter output_;
    std::vector<float> hidden_, normed_, qkv_, q_, k_, v_, attn_, attn_out_, inner_, cos_, sin_;
};

const tfx_model_table kTable = {
    sizeof(tfx_model_table),
    tfx::sdk::method<&GPTNeoX::load>,
    tfx::sdk::method<&GPTNeoX::get_info>,
    tfx::sdk::method<&GPTNeoX::forward>,
    tfx::sdk::method<&GPTNeoX::weight_specs>,
};

}  // namespace

TFX_PLUGIN_EXPORT(GPTNeoX, kTable)
