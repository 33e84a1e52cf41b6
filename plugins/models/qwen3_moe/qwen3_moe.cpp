// Qwen3-MoE (Qwen3MoeForCausalLM, Qwen3MoeModel), mirroring transformers' modeling_qwen3_moe.py:
//   embed -> N x [x += attn(rms_norm(x)); x += moe_or_mlp(rms_norm(x))] -> rms_norm -> lm_head
// Qwen3's attention (per-head q_norm / k_norm before the rotary embedding, head_dim from the
// config, grouped-query attention, per-layer sliding window) with a sparse MLP on the layers
// that decoder_sparse_step and mlp_only_layers select: a router picks the top-k of num_experts
// SwiGLU experts per token (softmax in f32, optional renormalization of the top-k weights) and
// sums their outputs weighted; the other layers keep a dense SwiGLU MLP. All compute goes
// through the host's ops.
#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

// ---- config.json: every field that changes the math ------------------------------------
struct Qwen3MoeConfig : DecoderConfig {
    bool attention_bias;
    tfx_activation act;
    RopeScaling rope;
    // Sliding-window attention: the window (> 0) of each layer, 0 for full attention.
    std::vector<int32_t> layer_window;
    // Mixture of experts: which layers are sparse, and their experts.
    int64_t num_experts, num_experts_per_tok, moe_intermediate_size;
    bool norm_topk_prob;
    std::vector<bool> sparse_layer;

    explicit Qwen3MoeConfig(const Config& c)
        : DecoderConfig(c, {.head_dim = 128, .max_position_embeddings = 32768}),  // not hidden / heads
          attention_bias(c.get_or<bool>("attention_bias", false)),
          act(activation_from(c)),
          rope(rope_scaling(c, {"default", "linear", "dynamic", "yarn"})),
          layer_window(layer_sliding_windows(c, num_layers)) {
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
            const bool dense_only =
                std::find(mlp_only_layers.begin(), mlp_only_layers.end(), i) != mlp_only_layers.end();
            sparse_layer[i] = !dense_only && num_experts > 0 && (i + 1) % decoder_sparse_step == 0;
        }
    }
};

// ---- the model: model.embed_tokens -> model.layers.{i} -> model.norm -> lm_head (DecoderModel) ----
struct Layer : DecoderLayer {
    bool sparse = false;
    RoutedExperts moe;  // sparse layers: mlp.gate and mlp.experts.{j}
};

class Qwen3Moe : public DecoderModel<Qwen3Moe, Qwen3MoeConfig, Init::ones, Layer> {
  public:
    using DecoderModel::DecoderModel;
    // Shards across --tp ranks: its attention and MLP are attention_weights and gated_mlp.
    static constexpr bool kTensorParallel = true;

    // Layer i's tensors, p = "model.layers.{i}.", for load() and weight_specs() alike: a dense MLP,
    // or the router and its experts.
    void declare_layer(WeightTable& w, Layer& l, const std::string& p, int64_t i) {
        const auto& c = config_;
        const int64_t h = c.hidden_size;
        l.sparse = c.sparse_layer[i];
        l.input_norm = w.f32(p + "input_layernorm.weight", {h});
        l.post_attention_norm = w.f32(p + "post_attention_layernorm.weight", {h});
        l.attn = attention_weights(w, p + "self_attn.", {"q_proj", "k_proj", "v_proj", "o_proj"}, c, c.attention_bias,
                                   c.attention_bias);
        l.q_norm = w.f32(p + "self_attn.q_norm.weight", {c.head_dim});
        l.k_norm = w.f32(p + "self_attn.k_norm.weight", {c.head_dim});
        if (!l.sparse) {
            l.mlp = gated_mlp(w, p + "mlp.", {"gate_proj", "up_proj", "down_proj"}, h, c.intermediate_size, false);
            return;
        }
        l.moe = routed_experts(w, p + "mlp.gate", p + "mlp.experts.", {"gate_proj", "up_proj", "down_proj"},
                               c.num_experts, h, c.moe_intermediate_size);
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        auto [x, xn] = embed(a);
        View moe_out = moe_out_.rows(x.dim(0), c.hidden_size);
        rope_.compute(a);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const Layer& l = layers_[i];
            // Self-attention block: q_norm / k_norm over each head's head_dim, then rotary.
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 0.0f, xn);
            attn_.project(l.attn, xn);
            host_.rms_norm(attn_.q_rows, l.q_norm, c.rms_norm_eps, 0.0f, attn_.q_rows);
            host_.rms_norm(attn_.k_rows, l.k_norm, c.rms_norm_eps, 0.0f, attn_.k_rows);
            attn_.rope(rope_).attend(a, i, {.sliding_window = c.layer_window[i]}).output(l.attn, xn);
            host_.add(x, xn, x);
            // MLP block: the routed experts on sparse layers, else down(act(gate(x)) * up(x)).
            host_.rms_norm(x, l.post_attention_norm, c.rms_norm_eps, 0.0f, xn);
            if (l.sparse) {
                routed_ffn(host_, l.moe, c.act, c.num_experts_per_tok, c.norm_topk_prob, xn, moe_out, gate_, up_,
                           routed_);
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
    Rope rope_{host_, rope_settings(config_, config_.rope)};
    Scratch moe_out_{host_};  // a sparse layer's output
    RoutedScratch routed_{host_};
};

}  // namespace

TFX_PLUGIN_EXPORT(Qwen3Moe, tfx::sdk::model_table<Qwen3Moe>)
