// Qwen3-MoE (Qwen3MoeForCausalLM, Qwen3MoeModel), mirroring transformers' modeling_qwen3_moe.py:
//   embed -> N x [x += attn(rms_norm(x)); x += moe_or_mlp(rms_norm(x))] -> rms_norm -> lm_head
// Qwen3's attention (per-head q_norm / k_norm before the rotary embedding, head_dim from the
// config, grouped-query attention, per-layer sliding window) with a sparse MLP on the layers
// that decoder_sparse_step and mlp_only_layers select: a router picks the top-k of num_experts
// SwiGLU experts per token (softmax in f32, optional renormalization of the top-k weights) and
// sums their outputs weighted; the other layers keep a dense SwiGLU MLP. All compute goes
// through the host's ops.
#include <algorithm>
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
struct Qwen3MoeConfig {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    int64_t max_positions;
    float rms_norm_eps;
    double rope_theta;
    bool attention_bias, tie_word_embeddings;
    tfx_activation act;
    Config rope_scaling;  // empty object when absent
    std::string rope_type;
    // Sliding-window attention: the window (> 0) of each layer, 0 for full attention.
    std::vector<int32_t> layer_window;
    // Mixture of experts: which layers are sparse, and their experts.
    int64_t num_experts, num_experts_per_tok, moe_intermediate_size;
    bool norm_topk_prob;
    std::vector<bool> sparse_layer;

    explicit Qwen3MoeConfig(const Config& c) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        num_kv_heads = c.get_or<int64_t>("num_key_value_heads", num_heads);
        head_dim = c.get_or<int64_t>("head_dim", 128);  // Qwen3MoeConfig's default, not hidden / heads
        max_positions = c.get_or<int64_t>("max_position_embeddings", 32768);
        rms_norm_eps = c.get_or<float>("rms_norm_eps", 1e-6f);
        rope_theta = c.get_or<double>("rope_theta", 10000.0);
        attention_bias = c.get_or<bool>("attention_bias", false);
        tie_word_embeddings = c.get_or<bool>("tie_word_embeddings", false);
        act = tfx::sdk::activation_from(c);
        tfx::sdk::require_positive(c, {{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                                       {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_layers},
                                       {"num_attention_heads", num_heads}, {"num_key_value_heads", num_kv_heads},
                                       {"head_dim", head_dim}});
        if (num_heads % num_kv_heads != 0) c.fail("num_key_value_heads", "must divide num_attention_heads");
        // Defaults are Qwen3MoeConfig's. A layer is sparse unless listed in mlp_only_layers, when
        // there are experts and (layer + 1) is a multiple of decoder_sparse_step.
        num_experts = c.get_or<int64_t>("num_experts", 128);
        num_experts_per_tok = c.get_or<int64_t>("num_experts_per_tok", 8);
        moe_intermediate_size = c.get_or<int64_t>("moe_intermediate_size", 768);
        norm_topk_prob = c.get_or<bool>("norm_topk_prob", false);
        const int64_t decoder_sparse_step = c.get_or<int64_t>("decoder_sparse_step", 1);
        std::vector<int64_t> mlp_only_layers;
        if (c.has("mlp_only_layers")) {
            const nlohmann::json& only = c.json().at("mlp_only_layers");
            if (!only.is_array()) c.fail("mlp_only_layers", "expected a list of layer indices");
            for (const nlohmann::json& i : only) {
                if (!i.is_number_integer()) c.fail("mlp_only_layers", "expected a list of layer indices");
                mlp_only_layers.push_back(i.get<int64_t>());
            }
        }
        if (num_experts < 0) c.fail("num_experts", "must not be negative");
        if (num_experts > 0) {
            if (decoder_sparse_step <= 0) c.fail("decoder_sparse_step", "must be positive");
            if (num_experts_per_tok <= 0 || num_experts_per_tok > num_experts) {
                c.fail("num_experts_per_tok", "must be between 1 and num_experts");
            }
            if (moe_intermediate_size <= 0) c.fail("moe_intermediate_size", "must be positive");
        }
        sparse_layer.assign(static_cast<size_t>(num_layers), false);
        for (int64_t i = 0; i < num_layers; ++i) {
            const bool dense_only = std::find(mlp_only_layers.begin(), mlp_only_layers.end(), i) != mlp_only_layers.end();
            sparse_layer[i] = !dense_only && num_experts > 0 && (i + 1) % decoder_sparse_step == 0;
        }
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
        // A sliding_window absent from config.json is Qwen3MoeConfig's default, 4096; null is none.
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
struct Expert {
    Linear gate, up, down;
};

struct Layer {
    View input_norm, post_attention_norm, q_norm, k_norm;
    Linear q, k, v, o;
    bool sparse = false;
    Linear gate, up, down;        // dense layers: the SwiGLU MLP
    Linear router;                // sparse layers: mlp.gate, [num_experts, hidden]
    std::vector<Expert> experts;  // sparse layers: mlp.experts.{j}
};

class Qwen3Moe {
public:
    explicit Qwen3Moe(const tfx_host_services* services) : host_(services), config_(host_.config()) {}

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

        View v(v_.data(), {n, kv_out}), o(attn_.data(), {n, q_out});
        View gate(gate_.data(), {n, c.intermediate_size}), up(up_.data(), {n, c.intermediate_size});
        View q_heads(q_.data(), {n, c.num_heads, c.head_dim}), k_heads(k_.data(), {n, c.num_kv_heads, c.head_dim});
        View q4(q_.data(), {b, t, c.num_heads, c.head_dim}), k4(k_.data(), {b, t, c.num_kv_heads, c.head_dim});
        // q and k are projected into the attention output buffer (free until attend) and
        // normalized per head from there into q_ and k_.
        View q_proj(attn_.data(), {n, q_out}), k_proj(attn_.data(), {n, kv_out});
        View q_proj_heads(attn_.data(), {n * c.num_heads, c.head_dim}), q_rows(q_.data(), {n * c.num_heads, c.head_dim});
        View k_proj_heads(attn_.data(), {n * c.num_kv_heads, c.head_dim}), k_rows(k_.data(), {n * c.num_kv_heads, c.head_dim});
        View v4(v_.data(), {b, t, c.num_kv_heads, c.head_dim}), o4(attn_.data(), {b, t, c.num_heads, c.head_dim});
        moe_out_.resize(n * h);
        View o_hidden(moe_out_.data(), {n, h});

        for (int64_t i = 0; i < c.num_layers; ++i) {
            Layer& l = layers_[i];
            // Self-attention block: q_norm / k_norm over each head's head_dim, then rotary.
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 0.0f, xn);
            l.q(xn, q_proj);
            host_.rms_norm(q_proj_heads, l.q_norm, c.rms_norm_eps, 0.0f, q_rows);
            l.k(xn, k_proj);
            host_.rms_norm(k_proj_heads, l.k_norm, c.rms_norm_eps, 0.0f, k_rows);
            l.v(xn, v);
            host_.rope(q_heads, cos_v, sin_v);
            host_.rope(k_heads, cos_v, sin_v);
            tfx::sdk::attend(host_, a, i, {.q = q4, .k = k4, .v = v4, .out = o4, .sliding_window = c.layer_window[i]});
            l.o(o, xn);
            host_.add(x, xn, x);
            // MLP block: the routed experts on sparse layers, else down(act(gate(x)) * up(x)).
            host_.rms_norm(x, l.post_attention_norm, c.rms_norm_eps, 0.0f, xn);
            if (l.sparse) {
                sparse_moe(l, xn, o_hidden);
                host_.add(x, o_hidden, x);
            } else {
                l.gate(xn, gate);
                l.up(xn, up);
                host_.gated_activation(c.act, gate, up, gate);
                l.down(gate, xn);
                host_.add(x, xn, x);
            }
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
        // A Qwen3MoeModel checkpoint stores its tensors without the "model." prefix.
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
            l.q = w.linear(p + "self_attn.q_proj", q_out, h, c.attention_bias);
            l.k = w.linear(p + "self_attn.k_proj", kv_out, h, c.attention_bias);
            l.v = w.linear(p + "self_attn.v_proj", kv_out, h, c.attention_bias);
            l.o = w.linear(p + "self_attn.o_proj", h, q_out, c.attention_bias);
            l.q_norm = w.f32(p + "self_attn.q_norm.weight", {c.head_dim});
            l.k_norm = w.f32(p + "self_attn.k_norm.weight", {c.head_dim});
            l.sparse = c.sparse_layer[i];
            if (l.sparse) {
                l.router = w.linear(p + "mlp.gate", c.num_experts, h, false);
                l.experts.resize(static_cast<size_t>(c.num_experts));
                for (int64_t j = 0; j < c.num_experts; ++j) {
                    const std::string e = p + "mlp.experts." + std::to_string(j) + ".";
                    l.experts[j].gate = w.linear(e + "gate_proj", c.moe_intermediate_size, h, false);
                    l.experts[j].up = w.linear(e + "up_proj", c.moe_intermediate_size, h, false);
                    l.experts[j].down = w.linear(e + "down_proj", h, c.moe_intermediate_size, false);
                }
            } else {
                l.gate = w.linear(p + "mlp.gate_proj", c.intermediate_size, h, false);
                l.up = w.linear(p + "mlp.up_proj", c.intermediate_size, h, false);
                l.down = w.linear(p + "mlp.down_proj", h, c.intermediate_size, false);
            }
        }
        final_norm_ = w.f32(pre + "norm.weight", {h});
        if (causal_lm_) {
            lm_head_ = c.tie_word_embeddings ? w.pack(embed_) : w.linear("lm_head", c.vocab_size, h, false);
        }
    }

    // Qwen3MoeSparseMoeBlock: y[t] = sum over the top-k experts e of token t of
    // w[t, e] * down_e(act(gate_e(x[t])) * up_e(x[t])), with w the router's softmax (f32)
    // restricted to the top-k and, with norm_topk_prob, renormalized to sum to one.
    // Tokens are grouped by expert so that each expert runs once on all of its rows.
    // Activations are host memory on the CPU backend: the routing (top-k), the gather of rows
    // by expert and the weighted scatter-add back are plain loops and copies over that memory.
    void sparse_moe(Layer& l, const View& xn, View& y) {
        const auto& c = config_;
        const int64_t n = xn.dim(0), h = c.hidden_size, experts = c.num_experts, top_k = c.num_experts_per_tok;
        const int64_t inter = c.moe_intermediate_size, routed = n * top_k;
        router_.resize(n * experts);
        View probs(router_.data(), {n, experts});
        l.router(xn, probs);
        host_.softmax(probs, probs);

        // Top-k per token, highest probability first (ties: lower expert index first).
        choice_.resize(routed);
        weight_.resize(routed);
        order_.resize(experts);
        for (int64_t t = 0; t < n; ++t) {
            const float* p = router_.data() + t * experts;
            for (int64_t e = 0; e < experts; ++e) order_[e] = static_cast<int32_t>(e);
            std::partial_sort(order_.begin(), order_.begin() + top_k, order_.end(),
                              [p](int32_t i, int32_t j) { return p[i] > p[j] || (p[i] == p[j] && i < j); });
            float sum = 0.0f;
            for (int64_t s = 0; s < top_k; ++s) sum += p[order_[s]];
            for (int64_t s = 0; s < top_k; ++s) {
                choice_[t * top_k + s] = order_[s];
                weight_[t * top_k + s] = c.norm_topk_prob ? p[order_[s]] / sum : p[order_[s]];
            }
        }

        // Group the routed (token, slot) pairs by expert: a counting sort.
        start_.assign(static_cast<size_t>(experts + 1), 0);
        for (int64_t r = 0; r < routed; ++r) ++start_[choice_[r] + 1];
        for (int64_t e = 0; e < experts; ++e) start_[e + 1] += start_[e];
        slot_.resize(routed);
        fill_.assign(start_.begin(), start_.end() - 1);
        for (int64_t r = 0; r < routed; ++r) slot_[fill_[choice_[r]]++] = r;

        moe_in_.resize(routed * h), moe_y_.resize(routed * h), moe_gate_.resize(routed * inter), moe_up_.resize(routed * inter);
        for (int64_t r = 0; r < routed; ++r) {
            std::copy_n(xn.data() + (slot_[r] / top_k) * h, h, moe_in_.data() + r * h);
        }
        for (int64_t e = 0; e < experts; ++e) {
            const int64_t first = start_[e], rows = start_[e + 1] - first;
            if (rows == 0) continue;
            Expert& ex = l.experts[e];
            View in(moe_in_.data() + first * h, {rows, h}), out(moe_y_.data() + first * h, {rows, h});
            View gate(moe_gate_.data(), {rows, inter}), up(moe_up_.data(), {rows, inter});
            ex.gate(in, gate);
            ex.up(in, up);
            host_.gated_activation(c.act, gate, up, gate);
            ex.down(gate, out);
        }

        // Weighted sum back into token order, expert by expert as the reference accumulates.
        float* dst = y.data();
        std::fill(dst, dst + n * h, 0.0f);
        for (int64_t r = 0; r < routed; ++r) {
            const int64_t token = slot_[r] / top_k;
            const float w = weight_[slot_[r]];
            const float* src = moe_y_.data() + r * h;
            float* row = dst + token * h;
            for (int64_t d = 0; d < h; ++d) row[d] += src[d] * w;
        }
    }

    tfx::sdk::Host host_;
    Qwen3MoeConfig config_;
    bool causal_lm_ = true;
    View embed_, final_norm_;
    std::vector<Layer> layers_;
    Linear lm_head_;
    std::unique_ptr<tfx::sdk::RotaryEmbedding> rotary_;
    tfx::sdk::OutputWriter output_;
    std::vector<float> hidden_, normed_, q_, k_, v_, attn_, gate_, up_, cos_, sin_;
    // Mixture-of-experts scratch: router probabilities, routing, rows grouped by expert.
    std::vector<float> moe_out_, router_, weight_, moe_in_, moe_y_, moe_gate_, moe_up_;
    std::vector<int32_t> choice_, order_;
    std::vector<int64_t> start_, fill_, slot_;
};

const tfx_model_table kTable = {
    sizeof(tfx_model_table),
    tfx::sdk::method<&Qwen3Moe::load>,
    tfx::sdk::method<&Qwen3Moe::get_info>,
    tfx::sdk::method<&Qwen3Moe::forward>,
    tfx::sdk::method<&Qwen3Moe::weight_specs>,
};

}  // namespace

TFX_PLUGIN_EXPORT(Qwen3Moe, kTable)
