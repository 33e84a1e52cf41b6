// Qwen2 (Qwen2ForCausalLM, Qwen2Model; Qwen1.5, Qwen2, Qwen2.5), mirroring transformers'
// modeling_qwen2.py:
//   embed -> N x [x += attn(rms_norm(x)); x += mlp(rms_norm(x))] -> rms_norm -> lm_head
// Llama's layout with a bias on the q/k/v projections (never on o_proj), grouped-query
// attention, a SwiGLU MLP, rotary embeddings (default, linear, dynamic, yarn) and sliding-window
// attention on the layers the config selects. All compute goes through the host's ops.
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfx/sdk/host.hpp"
#include "tfx/sdk/layers.hpp"
#include "tfx/sdk/plugin.hpp"
#include "tfx/sdk/rotary.hpp"

namespace {

using tfx::sdk::Config;
using tfx::sdk::Error;
using tfx::sdk::Linear;
using tfx::sdk::View;
using tfx::sdk::WeightTable;

// ---- config.json: every field that changes the math ------------------------------------
struct Qwen2Config {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    int64_t max_positions;
    float rms_norm_eps;
    double rope_theta;
    bool tie_word_embeddings;
    tfx_activation act;
    Config rope_scaling;  // empty object when absent
    std::string rope_type;
    // Sliding-window attention: the window (> 0) of each layer, 0 for full attention.
    std::vector<int32_t> layer_window;

    explicit Qwen2Config(const Config& c) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        num_kv_heads = c.get_or<int64_t>("num_key_value_heads", num_heads);
        head_dim = c.get_or<int64_t>("head_dim", num_heads > 0 ? hidden_size / num_heads : 0);
        max_positions = c.get_or<int64_t>("max_position_embeddings", 32768);
        rms_norm_eps = c.get_or<float>("rms_norm_eps", 1e-6f);
        rope_theta = c.get_or<double>("rope_theta", 10000.0);
        tie_word_embeddings = c.get_or<bool>("tie_word_embeddings", false);
        act = tfx::sdk::activation_from(c);
        tfx::sdk::require_positive(c, {{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                                       {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_layers},
                                       {"num_attention_heads", num_heads}, {"num_key_value_heads", num_kv_heads},
                                       {"head_dim", head_dim}});
        if (num_heads % num_kv_heads != 0) c.fail("num_key_value_heads", "must divide num_attention_heads");
        if (head_dim % 2 != 0) c.fail("head_dim", "must be even for rotary embeddings");
        rope_type = "default";
        if (c.has("rope_scaling")) {
            rope_scaling = c.child("rope_scaling");
            rope_type = tfx::sdk::rope_type_of(c);
            if (rope_type != "default" && rope_type != "linear" && rope_type != "dynamic" && rope_type != "yarn") {
                c.fail("rope_scaling", "unsupported rope_type '" + rope_type + "' (default, linear, dynamic, yarn)");
            }
        }
        // Sliding window: only with use_sliding_window and a sliding_window, and only on the
        // layers from max_window_layers on (the layer_idx >= max_window_layers test of
        // transformers), or on the layers that an explicit layer_types marks "sliding_attention".
        // A sliding_window absent from config.json is Qwen2Config's default, 4096; null is none.
        int64_t window = 0;
        if (c.get_or<bool>("use_sliding_window", false)) {
            window = c.json().contains("sliding_window") ? c.get_or<int64_t>("sliding_window", 0) : 4096;
            if (window < 0 || window > std::numeric_limits<int32_t>::max()) c.fail("sliding_window", "out of range");
        }
        layer_window.assign(static_cast<size_t>(num_layers), 0);
        if (c.has("layer_types")) {
            const nlohmann::json& types = c.json().at("layer_types");
            if (!types.is_array() || static_cast<int64_t>(types.size()) != num_layers) {
                c.fail("layer_types", "expected one entry per hidden layer");
            }
            for (int64_t i = 0; i < num_layers; ++i) {
                const nlohmann::json& t = types[static_cast<size_t>(i)];
                if (t == "sliding_attention") layer_window[i] = static_cast<int32_t>(window);
                else if (t != "full_attention") c.fail("layer_types", "unknown layer type " + t.dump());
            }
        } else {
            const int64_t max_window_layers = c.get_or<int64_t>("max_window_layers", 28);
            for (int64_t i = max_window_layers; i < num_layers; ++i) layer_window[i] = static_cast<int32_t>(window);
        }
    }
};

// ---- the model -----------------------------------------------------------------------------
struct Layer {
    View input_norm, post_attention_norm;
    Linear q, k, v, o, gate, up, down;
};

class Qwen2 {
public:
    explicit Qwen2(const tfx_host_services* services) : host_(services), config_(host_.config()) {}

    void load(const char*) {
        WeightTable w(host_, WeightTable::Mode::load);
        declare(w);
        rotary_ = std::make_unique<tfx::sdk::RotaryEmbedding>(tfx::sdk::RopeSettings{
            config_.head_dim, config_.rope_theta, config_.rope_type, config_.rope_scaling, config_.max_positions});
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

        rotary_->compute(a->positions, n, cos_, sin_);
        View cos_v(cos_.data(), {n, c.head_dim / 2}), sin_v(sin_.data(), {n, c.head_dim / 2});

        View q(q_.data(), {n, q_out}), k(k_.data(), {n, kv_out}), v(v_.data(), {n, kv_out}), o(attn_.data(), {n, q_out});
        View gate(gate_.data(), {n, c.intermediate_size}), up(up_.data(), {n, c.intermediate_size});
        View q_heads(q_.data(), {n, c.num_heads, c.head_dim}), k_heads(k_.data(), {n, c.num_kv_heads, c.head_dim});
        View q4(q_.data(), {b, t, c.num_heads, c.head_dim}), k4(k_.data(), {b, t, c.num_kv_heads, c.head_dim});
        View v4(v_.data(), {b, t, c.num_kv_heads, c.head_dim}), o4(attn_.data(), {b, t, c.num_heads, c.head_dim});

        for (int64_t i = 0; i < c.num_layers; ++i) {
            Layer& l = layers_[i];
            // Self-attention block (q/k/v with bias).
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 0.0f, xn);
            l.q(xn, q);
            l.k(xn, k);
            l.v(xn, v);
            host_.rope(q_heads, cos_v, sin_v);
            host_.rope(k_heads, cos_v, sin_v);
            tfx::sdk::attend(host_, a, i, {.q = q4, .k = k4, .v = v4, .out = o4, .sliding_window = c.layer_window[i]});
            l.o(o, xn);
            host_.add(x, xn, x);
            // MLP block: down(act(gate(x)) * up(x)).
            host_.rms_norm(x, l.post_attention_norm, c.rms_norm_eps, 0.0f, xn);
            l.gate(xn, gate);
            l.up(xn, up);
            host_.gated_activation(c.act, gate, up, gate);
            l.down(gate, xn);
            host_.add(x, xn, x);
        }
        host_.rms_norm(x, final_norm_, c.rms_norm_eps, 0.0f, xn);
        output_.write(a, xn, causal_lm_ ? &lm_head_ : nullptr, causal_lm_ ? c.vocab_size : h);
    }

private:
    // Every tensor of the checkpoint, for load() and weight_specs() alike.
    void declare(WeightTable& w) {
        const auto& c = config_;
        causal_lm_ = host_.task_head({"causal_lm", "base"}) == "causal_lm";
        const int64_t h = c.hidden_size, q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
        // A Qwen2Model checkpoint stores its tensors without the "model." prefix.
        const std::string pre = w.prefix("model.", "norm.weight", causal_lm_);
        // Tied embeddings: either side of the tie may be the stored tensor.
        embed_ = c.tie_word_embeddings ? w.tensor_or(pre + "embed_tokens.weight", "lm_head.weight", {c.vocab_size, h})
                                       : w.tensor(pre + "embed_tokens.weight", {c.vocab_size, h});
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = pre + "layers." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.input_norm = w.f32(p + "input_layernorm.weight", {h});
            l.post_attention_norm = w.f32(p + "post_attention_layernorm.weight", {h});
            l.q = w.linear(p + "self_attn.q_proj", q_out, h, true);
            l.k = w.linear(p + "self_attn.k_proj", kv_out, h, true);
            l.v = w.linear(p + "self_attn.v_proj", kv_out, h, true);
            l.o = w.linear(p + "self_attn.o_proj", h, q_out, false);
            l.gate = w.linear(p + "mlp.gate_proj", c.intermediate_size, h, false);
            l.up = w.linear(p + "mlp.up_proj", c.intermediate_size, h, false);
            l.down = w.linear(p + "mlp.down_proj", h, c.intermediate_size, false);
        }
        final_norm_ = w.f32(pre + "norm.weight", {h});
        if (causal_lm_) {
            lm_head_ = c.tie_word_embeddings ? w.pack(embed_) : w.linear("lm_head", c.vocab_size, h, false);
        }
    }

    tfx::sdk::Host host_;
    Qwen2Config config_;
    bool causal_lm_ = true;
    View embed_, final_norm_;
    std::vector<Layer> layers_;
    Linear lm_head_;
    std::unique_ptr<tfx::sdk::RotaryEmbedding> rotary_;
    tfx::sdk::OutputWriter output_;
    std::vector<float> hidden_, normed_, q_, k_, v_, attn_, gate_, up_, cos_, sin_;
};

const tfx_model_table kTable = {
    sizeof(tfx_model_table),
    tfx::sdk::method<&Qwen2::load>,
    tfx::sdk::method<&Qwen2::get_info>,
    tfx::sdk::method<&Qwen2::forward>,
    tfx::sdk::method<&Qwen2::weight_specs>,
};

}  // namespace

TFX_PLUGIN_EXPORT(Qwen2, kTable)
