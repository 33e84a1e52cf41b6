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
    RoutedExperts moe;  // block_sparse_moe
};

class Mixtral : public DecoderModel<Mixtral, MixtralConfig, Init::ones, Layer> {
  public:
    using DecoderModel::DecoderModel;
    // Shards across --tp ranks: its attention and MLP are attention_weights and gated_mlp.
    static constexpr bool kTensorParallel = true;

    void declare_layer(WeightTable& w, Layer& l, const std::string& p, int64_t) {
        const auto& c = config_;
        const int64_t h = c.hidden_size;
        l.input_norm = w.f32(p + "input_layernorm.weight", {h});
        l.post_attention_norm = w.f32(p + "post_attention_layernorm.weight", {h});
        l.attn = attention_weights(w, p + "self_attn.", {"q_proj", "k_proj", "v_proj", "o_proj"}, c, false, false);
        l.moe = routed_experts(w, p + "block_sparse_moe.gate", p + "block_sparse_moe.experts.", {"w1", "w3", "w2"},
                               c.num_experts, h, c.intermediate_size);
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
            routed_ffn(host_, l.moe, c.act, c.num_experts_per_tok, true, xn, moe_out, gate_, up_, routed_);
            host_.add(x, moe_out, x);
        }
        host_.rms_norm(x, final_norm_, c.rms_norm_eps, 0.0f, xn);
        write_output(a, xn);
    }

  private:
    Rope rope_{host_, rope_settings(config_, config_.rope)};
    Scratch moe_out_{host_};
    RoutedScratch routed_{host_};
};

}  // namespace

TFX_PLUGIN_EXPORT(Mixtral, tfx::sdk::model_table<Mixtral>)
