// Qwen2-MoE (Qwen2MoeForCausalLM, Qwen2MoeModel), mirroring transformers' modeling_qwen2_moe.py:
//   embed -> N x [x += attn(rms_norm(x)); x += moe_or_mlp(rms_norm(x))] -> rms_norm -> lm_head
// Qwen2's attention (biases on q/k/v, GQA, RoPE, per-layer sliding window) with a sparse MLP on
// the layers decoder_sparse_step and mlp_only_layers select: the top-k of the router's softmax
// (f32; renormalized only with norm_topk_prob) through SwiGLU experts, plus a shared SwiGLU
// expert scaled per token by sigmoid(shared_expert_gate(x)).
#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

struct Qwen2MoeConfig : DecoderConfig {
    tfx_activation act;
    RopeScaling rope;
    std::vector<int32_t> layer_window;
    int64_t num_experts, num_experts_per_tok, moe_intermediate_size, shared_expert_intermediate_size;
    bool norm_topk_prob;
    std::vector<bool> sparse_layer;

    // Defaults are Qwen2MoeConfig's.
    explicit Qwen2MoeConfig(const Config& c)
        : DecoderConfig(c, {.max_position_embeddings = 32768}),
          act(activation_from(c)),
          rope(rope_scaling(c, {"default", "linear", "dynamic", "yarn"})),
          layer_window(layer_sliding_windows(c, num_layers)),
          num_experts(c.get_positive<int64_t>("num_experts", 60)),
          num_experts_per_tok(c.get_positive<int64_t>("num_experts_per_tok", 4)),
          moe_intermediate_size(c.get_positive<int64_t>("moe_intermediate_size", 1408)),
          shared_expert_intermediate_size(c.get_positive<int64_t>("shared_expert_intermediate_size", 5632)),
          norm_topk_prob(c.get_or<bool>("norm_topk_prob", false)) {
        if (num_experts_per_tok > num_experts) c.fail("num_experts_per_tok", "must not exceed num_experts");
        const int64_t step = c.get_positive<int64_t>("decoder_sparse_step", 1);
        std::vector<int64_t> mlp_only;
        if (c.has("mlp_only_layers")) {
            const nlohmann::json& only = c.json().at("mlp_only_layers");
            if (!only.is_array()) c.fail("mlp_only_layers", "expected a list of layer indices");
            for (const nlohmann::json& i : only) {
                if (!i.is_number_integer()) c.fail("mlp_only_layers", "expected a list of layer indices");
                mlp_only.push_back(i.get<int64_t>());
            }
        }
        // A layer is sparse unless listed in mlp_only_layers, when (layer + 1) % step == 0.
        sparse_layer.assign(static_cast<size_t>(num_layers), false);
        for (int64_t i = 0; i < num_layers; ++i)
            sparse_layer[i] = std::find(mlp_only.begin(), mlp_only.end(), i) == mlp_only.end() && (i + 1) % step == 0;
    }
};

struct Layer : DecoderLayer {
    bool sparse = false;
    RoutedExperts moe;   // mlp.gate and mlp.experts.{j}
    Linear shared_gate;  // mlp.shared_expert_gate [1, hidden]
    GatedMlp shared;     // mlp.shared_expert
};

class Qwen2Moe : public DecoderModel<Qwen2Moe, Qwen2MoeConfig, Init::ones, Layer> {
  public:
    using DecoderModel::DecoderModel;
    // Shards across --tp ranks: its attention and MLP are attention_weights and gated_mlp.
    static constexpr bool kTensorParallel = true;

    void declare_layer(WeightTable& w, Layer& l, const std::string& p, int64_t i) {
        const auto& c = config_;
        const int64_t h = c.hidden_size;
        l.sparse = c.sparse_layer[i];
        l.input_norm = w.f32(p + "input_layernorm.weight", {h});
        l.post_attention_norm = w.f32(p + "post_attention_layernorm.weight", {h});
        l.attn = attention_weights(w, p + "self_attn.", {"q_proj", "k_proj", "v_proj", "o_proj"}, c, true, false);
        if (!l.sparse) {
            l.mlp = gated_mlp(w, p + "mlp.", {"gate_proj", "up_proj", "down_proj"}, h, c.intermediate_size, false);
            return;
        }
        l.moe = routed_experts(w, p + "mlp.gate", p + "mlp.experts.", {"gate_proj", "up_proj", "down_proj"},
                               c.num_experts, h, c.moe_intermediate_size);
        l.shared_gate = w.linear(p + "mlp.shared_expert_gate", 1, h, false);
        l.shared = gated_mlp(w, p + "mlp.shared_expert.", {"gate_proj", "up_proj", "down_proj"}, h,
                             c.shared_expert_intermediate_size, false);
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        auto [x, xn] = embed(a);
        const int64_t n = x.dim(0);
        View moe_out = moe_out_.rows(n, c.hidden_size);
        if (!half_uploaded_) {  // the constant of sigmoid(z) = 0.5 + 0.5 tanh(z / 2)
            const float half = 0.5f;
            half_ = half_buffer_.view(kF32, {1});
            host_.upload(&half, half_);
            half_uploaded_ = true;
        }
        rope_.compute(a);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const Layer& l = layers_[i];
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 0.0f, xn);
            attn_.project(l.attn, xn)
                .rope(rope_)
                .attend(a, i, {.sliding_window = c.layer_window[i]})
                .output(l.attn, xn);
            host_.add(x, xn, x);
            host_.rms_norm(x, l.post_attention_norm, c.rms_norm_eps, 0.0f, xn);
            if (l.sparse) {
                sparse_moe(l, xn, moe_out);
                host_.add(x, moe_out, x);
            } else {
                ffn_gated(host_, l.mlp, c.act, xn, xn, gate_, up_);
                host_.add(x, xn, x);
            }
        }
        host_.rms_norm(x, final_norm_, c.rms_norm_eps, 0.0f, xn);
        write_output(a, xn);
    }

  private:
    // y = sum over the top-k experts of w * expert(x) + sigmoid(shared_gate(x)) * shared(x).
    void sparse_moe(const Layer& l, const View& xn, View& y) {
        const auto& c = config_;
        const int64_t n = xn.dim(0), h = c.hidden_size;
        routed_ffn(host_, l.moe, c.act, c.num_experts_per_tok, c.norm_topk_prob, xn, y, gate_, up_, routed_);
        // The shared expert, scaled per token by its gate (a one-slot weighted sum).
        View shared = shared_out_.rows(n, h), scaled = shared_scaled_.rows(n, h), g = shared_gate_.rows(n, 1);
        ffn_gated(host_, l.shared, c.act, xn, shared, gate_, up_);
        l.shared_gate(xn, g);
        host_.scale(g, 0.5f, g);
        host_.activation(TFX_ACT_TANH, g, g);
        host_.scale(g, 0.5f, g);
        host_.add(g, half_, g);
        host_.weighted_sum(shared.reshape({n, 1, h}), g, scaled);
        host_.add(y, scaled, y);
    }

    Rope rope_{host_, rope_settings(config_, config_.rope)};
    Scratch moe_out_{host_}, shared_out_{host_}, shared_scaled_{host_}, shared_gate_{host_};
    RoutedScratch routed_{host_};
    DeviceBuffer half_buffer_{host_};
    View half_;
    bool half_uploaded_ = false;
};

}  // namespace

TFX_PLUGIN_EXPORT(Qwen2Moe, tfx::sdk::model_table<Qwen2Moe>)
