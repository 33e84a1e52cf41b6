// Gemma (GemmaForCausalLM, GemmaModel), mirroring transformers' modeling_gemma.py (v4.44):
//   embed * sqrt(hidden) -> N x [x += attn(norm(x)); x += mlp(norm(x))] -> norm -> lm_head
// where every RMSNorm scales by (1 + w), the MLP is GeGLU (tanh-approximated GELU), the head
// size comes from the config (not hidden / heads), and the LM head is tied to the embedding.
// All compute goes through the host's ops.
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
struct GemmaConfig {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    int64_t max_positions;
    float rms_norm_eps, attn_scale;
    double rope_theta;
    bool attention_bias, tie_word_embeddings;
    tfx_activation act;

    explicit GemmaConfig(const Config& c) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        num_kv_heads = c.get_or<int64_t>("num_key_value_heads", num_heads);
        head_dim = c.get_or<int64_t>("head_dim", 256);  // GemmaConfig's default, not hidden / heads
        max_positions = c.get_or<int64_t>("max_position_embeddings", 8192);
        rms_norm_eps = c.get_or<float>("rms_norm_eps", 1e-6f);
        rope_theta = c.get_or<double>("rope_theta", 10000.0);
        attention_bias = c.get_or<bool>("attention_bias", false);
        tie_word_embeddings = c.get_or<bool>("tie_word_embeddings", true);
        // GemmaMLP reads hidden_activation and ignores hidden_act: the first Gemma configs say
        // "hidden_act": "gelu" but the models were trained with the tanh approximation.
        act = tfx::sdk::activation_from(c, "hidden_activation", "gelu_pytorch_tanh");
        tfx::sdk::require_positive(c, {{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                                       {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_layers},
                                       {"num_attention_heads", num_heads}, {"num_key_value_heads", num_kv_heads},
                                       {"head_dim", head_dim}});
        if (num_heads % num_kv_heads != 0) c.fail("num_key_value_heads", "must divide num_attention_heads");
        if (head_dim % 2 != 0) c.fail("head_dim", "must be even for rotary embeddings");
        // 1 / sqrt(head_dim) as a Python double, then f32 (head_dim need not be a square).
        attn_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
        // GemmaRotaryEmbedding has no scaling: refuse a config that asks for one rather than ignore it.
        const std::string rope_type = tfx::sdk::rope_type_of(c);
        if (rope_type != "default") {
            c.fail("rope_scaling", "unsupported rope_type '" + rope_type + "' (gemma has no rope scaling)");
        }
    }
};

// ---- the model -----------------------------------------------------------------------------
struct Layer {
    View input_norm, post_attention_norm;
    Linear q, k, v, o, gate, up, down;
};

class Gemma {
public:
    explicit Gemma(const tfx_host_services* services) : host_(services), config_(host_.config()) {}

    void load(const char*) {
        WeightTable w(host_, WeightTable::Mode::load);
        declare(w);
        const auto& c = config_;
        rotary_ = std::make_unique<tfx::sdk::RotaryEmbedding>(
            tfx::sdk::RopeSettings{c.head_dim, c.rope_theta, "default", Config(), c.max_positions});
        // GemmaModel multiplies the embeddings by a tensor of sqrt(hidden_size) in the
        // activation dtype (f32 here): the double rounded once to f32.
        normalizer_ = static_cast<float>(std::sqrt(static_cast<double>(c.hidden_size)));
    }

    void weight_specs(const char*, tfx_sink sink) {
        WeightTable w(host_, WeightTable::Mode::describe);
        declare(w);
        w.write_specs(sink);
    }

    void get_info(tfx_model_info* info) {
        info->output_kind = causal_lm_ ? TFX_OUTPUT_LOGITS : TFX_OUTPUT_HIDDEN_STATE;
        info->vocab_size = static_cast<int32_t>(config_.vocab_size);
        info->hidden_size = static_cast<int32_t>(config_.hidden_size);
        info->output_size = static_cast<int32_t>(causal_lm_ ? config_.vocab_size : config_.hidden_size);
        info->num_layers = static_cast<int32_t>(config_.num_layers);
        info->num_kv_heads = static_cast<int32_t>(config_.num_kv_heads);
        info->head_dim = static_cast<int32_t>(config_.head_dim);
        info->max_positions = config_.max_positions;
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t b = a->batch, t = a->tokens, n = b * t, h = c.hidden_size;
        const int64_t q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
        if (b <= 0 || t <= 0 || a->input_ids == nullptr || a->positions == nullptr || a->output == nullptr) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: batch, tokens, input_ids, positions and output are required");
        }
        hidden_.resize(n * h), normed_.resize(n * h), q_.resize(n * q_out), k_.resize(n * kv_out), v_.resize(n * kv_out);
        attn_.resize(n * q_out), gate_.resize(n * c.intermediate_size), up_.resize(n * c.intermediate_size);

        View ids(const_cast<int32_t*>(a->input_ids), tfx::sdk::kI32, {n});
        View x(hidden_.data(), {n, h}), xn(normed_.data(), {n, h});
        host_.embedding(embed_, ids, x);
        host_.scale(x, normalizer_, x);

        rotary_->compute(a->positions, n, cos_, sin_);
        View cos_v(cos_.data(), {n, c.head_dim / 2}), sin_v(sin_.data(), {n, c.head_dim / 2});

        View q(q_.data(), {n, q_out}), k(k_.data(), {n, kv_out}), v(v_.data(), {n, kv_out}), o(attn_.data(), {n, q_out});
        View gate(gate_.data(), {n, c.intermediate_size}), up(up_.data(), {n, c.intermediate_size});
        View q_heads(q_.data(), {n, c.num_heads, c.head_dim}), k_heads(k_.data(), {n, c.num_kv_heads, c.head_dim});
        View q4(q_.data(), {b, t, c.num_heads, c.head_dim}), k4(k_.data(), {b, t, c.num_kv_heads, c.head_dim});
        View v4(v_.data(), {b, t, c.num_kv_heads, c.head_dim}), o4(attn_.data(), {b, t, c.num_heads, c.head_dim});

        for (int64_t i = 0; i < c.num_layers; ++i) {
            Layer& l = layers_[i];
            // Self-attention block: RMSNorm scales by (1 + w).
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 1.0f, xn);
            l.q(xn, q);
            l.k(xn, k);
            l.v(xn, v);
            host_.rope(q_heads, cos_v, sin_v);
            host_.rope(k_heads, cos_v, sin_v);
            tfx::sdk::attend(host_, a, i, {.q = q4, .k = k4, .v = v4, .out = o4, .scale = c.attn_scale});
            l.o(o, xn);
            host_.add(x, xn, x);
            // MLP block: down(gelu_tanh(gate(x)) * up(x)).
            host_.rms_norm(x, l.post_attention_norm, c.rms_norm_eps, 1.0f, xn);
            l.gate(xn, gate);
            l.up(xn, up);
            host_.gated_activation(c.act, gate, up, gate);
            l.down(gate, xn);
            host_.add(x, xn, x);
        }
        host_.rms_norm(x, final_norm_, c.rms_norm_eps, 1.0f, xn);
        output_.write(a, xn, causal_lm_ ? &lm_head_ : nullptr, causal_lm_ ? c.vocab_size : h);
    }

private:
    // Every tensor of the checkpoint, for load() and weight_specs() alike. Norm weights start
    // at zero: (1 + w) makes that the identity scale, as in HF's init.
    void declare(WeightTable& w) {
        const auto& c = config_;
        causal_lm_ = host_.task_head({"causal_lm", "base"}) == "causal_lm";
        const int64_t h = c.hidden_size, q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
        // A GemmaModel checkpoint stores its tensors without the "model." prefix.
        const std::string pre = w.prefix("model.", "norm.weight", causal_lm_);
        // Tied embeddings: either side of the tie may be the stored tensor.
        embed_ = c.tie_word_embeddings ? w.tensor_or(pre + "embed_tokens.weight", "lm_head.weight", {c.vocab_size, h})
                                       : w.tensor(pre + "embed_tokens.weight", {c.vocab_size, h});
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = pre + "layers." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.input_norm = w.f32(p + "input_layernorm.weight", {h}, Init::zeros);
            l.post_attention_norm = w.f32(p + "post_attention_layernorm.weight", {h}, Init::zeros);
            l.q = w.linear(p + "self_attn.q_proj", q_out, h, c.attention_bias);
            l.k = w.linear(p + "self_attn.k_proj", kv_out, h, c.attention_bias);
            l.v = w.linear(p + "self_attn.v_proj", kv_out, h, c.attention_bias);
            l.o = w.linear(p + "self_attn.o_proj", h, q_out, c.attention_bias);
            l.gate = w.linear(p + "mlp.gate_proj", c.intermediate_size, h, false);
            l.up = w.linear(p + "mlp.up_proj", c.intermediate_size, h, false);
            l.down = w.linear(p + "mlp.down_proj", h, c.intermediate_size, false);
        }
        final_norm_ = w.f32(pre + "norm.weight", {h}, Init::zeros);
        if (causal_lm_) {
            lm_head_ = c.tie_word_embeddings ? w.pack(embed_) : w.linear("lm_head", c.vocab_size, h, false);
        }
    }

    tfx::sdk::Host host_;
    GemmaConfig config_;
    bool causal_lm_ = true;
    View embed_, final_norm_;
    std::vector<Layer> layers_;
    Linear lm_head_;
    std::unique_ptr<tfx::sdk::RotaryEmbedding> rotary_;
    float normalizer_ = 1.0f;
    tfx::sdk::OutputWriter output_;
    std::vector<float> hidden_, normed_, q_, k_, v_, attn_, gate_, up_, cos_, sin_;
};

const tfx_model_table kTable = {
    sizeof(tfx_model_table),
    tfx::sdk::method<&Gemma::load>,
    tfx::sdk::method<&Gemma::get_info>,
    tfx::sdk::method<&Gemma::forward>,
    tfx::sdk::method<&Gemma::weight_specs>,
};

}  // namespace

TFX_PLUGIN_EXPORT(Gemma, kTable)
