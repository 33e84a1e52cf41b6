// Mixtral (MixtralForCausalLM, MixtralModel), mirroring transformers' modeling_mixtral.py:
//   embed -> N x [x += attn(rms_norm(x)); x += moe(rms_norm(x))] -> rms_norm -> lm_head
// Mistral's attention (GQA, RoPE, optional sliding window) with a sparse MLP on every layer:
// the router's softmax (f32) over all experts, the top num_experts_per_tok kept and renormalized
// to sum to one, each token through its SwiGLU experts (w1 gate, w3 up, w2 down), summed weighted.
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

struct MixtralConfig : DecoderConfig {
    tfx_activation act;
    RopeScaling rope;
    int32_t sliding_window;
    int64_t num_experts, num_experts_per_tok;

    explicit MixtralConfig(const Config& c)
        : DecoderConfig(c, {.max_position_embeddings = 4096 * 32, .rms_norm_eps = 1e-5f, .rope_theta = 1e6}),
          act(activation_from(c)),
          rope(rope_scaling(c, {"default", "linear", "dynamic", "yarn"})),
          sliding_window(sliding_window_field(c, 0)),
          num_experts(c.get_positive<int64_t>("num_local_experts", 8)),
          num_experts_per_tok(c.get_positive<int64_t>("num_experts_per_tok", 2)) {
        if (num_experts_per_tok > num_experts) c.fail("num_experts_per_tok", "must not exceed num_local_experts");
    }
};

struct Layer : DecoderLayer {
    Linear router;  // block_sparse_moe.gate, [num_experts, hidden]
    std::vector<GatedMlp> experts;
    // The experts' packed projections, indexed by expert, for the backend's linear_experts.
    std::vector<const tfx_weight*> expert_gate, expert_up, expert_down;
};

class Mixtral : public DecoderModel<Mixtral, MixtralConfig, Init::ones, Layer> {
  public:
    using DecoderModel::DecoderModel;

    void declare_layer(WeightTable& w, Layer& l, const std::string& p, int64_t) {
        const auto& c = config_;
        const int64_t h = c.hidden_size;
        l.input_norm = w.f32(p + "input_layernorm.weight", {h});
        l.post_attention_norm = w.f32(p + "post_attention_layernorm.weight", {h});
        l.attn = attention_weights(w, p + "self_attn.", {"q_proj", "k_proj", "v_proj", "o_proj"}, c, false, false);
        l.router = w.linear(p + "block_sparse_moe.gate", c.num_experts, h, false);
        l.experts.resize(static_cast<size_t>(c.num_experts));
        for (int64_t j = 0; j < c.num_experts; ++j) {
            const std::string e = p + "block_sparse_moe.experts." + std::to_string(j) + ".";
            l.experts[j] = gated_mlp(w, e, {"w1", "w3", "w2"}, h, c.intermediate_size, false);
            l.expert_gate.push_back(l.experts[j].gate.handle());
            l.expert_up.push_back(l.experts[j].up.handle());
            l.expert_down.push_back(l.experts[j].down.handle());
        }
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        auto [x, xn] = embed(a);
        View moe_out = moe_out_.rows(x.dim(0), c.hidden_size);
        rope_.compute(a);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const Layer& l = layers_[i];
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 0.0f, xn);
            attn_.project(l.attn, xn).rope(rope_).attend(a, i, {.sliding_window = c.sliding_window}).output(l.attn, xn);
            host_.add(x, xn, x);
            host_.rms_norm(x, l.post_attention_norm, c.rms_norm_eps, 0.0f, xn);
            sparse_moe(l, xn, moe_out);
            host_.add(x, moe_out, x);
        }
        host_.rms_norm(x, final_norm_, c.rms_norm_eps, 0.0f, xn);
        write_output(a, xn);
    }

  private:
    // The backend routes (softmax, top_k renormalized), runs each token through its experts
    // (linear_experts) and sums them weighted (weighted_sum).
    void sparse_moe(const Layer& l, const View& xn, View& y) {
        const auto& c = config_;
        const int64_t n = xn.dim(0), h = c.hidden_size, k = c.num_experts_per_tok, inter = c.intermediate_size;
        View probs = router_.rows(n, c.num_experts);
        l.router(xn, probs);
        host_.softmax(probs, probs);
        View ids = choice_.view(kI32, {n, k}), weights = weights_.rows(n, k);
        host_.top_k(probs, static_cast<int32_t>(k), true, ids, weights);
        View gate = gate_.rows(n * k, inter), up = up_.rows(n * k, inter), down = expert_out_.rows(n * k, h);
        View gate3 = gate.reshape({n, k, inter}), up3 = up.reshape({n, k, inter}), down3 = down.reshape({n, k, h});
        const View x3 = xn.reshape({n, 1, h});
        host_.linear_experts(x3, l.expert_gate, ids, gate3);
        host_.linear_experts(x3, l.expert_up, ids, up3);
        host_.gated_activation(c.act, gate, up, gate);
        host_.linear_experts(gate3, l.expert_down, ids, down3);
        host_.weighted_sum(down3, weights, y);
    }

    Rope rope_{host_, rope_settings(config_, config_.rope)};
    // Mixture-of-experts scratch: the layer's output, router probabilities, the routing, expert outputs.
    Scratch moe_out_{host_}, router_{host_}, weights_{host_}, expert_out_{host_};
    DeviceBuffer choice_{host_};
};

}  // namespace

TFX_PLUGIN_EXPORT(Mixtral, tfx::sdk::model_table<Mixtral>)
