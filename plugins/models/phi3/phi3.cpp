// Phi-3 (Phi3ForCausalLM, Phi3Model; Phi-3, Phi-3.5, Phi-4-mini), mirroring transformers'
// modeling_phi3.py:
//   embed -> N x [x += attn(rms_norm(x)); x += mlp(rms_norm(x))] -> rms_norm -> lm_head
// Llama's layout without biases, but with fused projections as stored: qkv_proj holds the
// q, k and v rows one after the other and gate_up_proj the gate then the up rows (each block
// is packed as its own weight). Rotary embeddings on the first partial_rotary_factor of each
// head, default or LongRoPE ("longrope", formerly "su"); sliding-window attention on every
// layer when the config sets sliding_window. All compute goes through the host's ops.
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

// ---- config.json: every field that changes the math ------------------------------------
struct Phi3Config : DecoderConfig {
    tfx_activation act;
    RopeScaling rope;
    int64_t rotary_dim;              // the leading dims of each head that the rotary embedding turns
    int64_t original_max_positions;  // longrope: past it, long_factor replaces short_factor
    int32_t sliding_window;          // > 0: every layer attends to the last sliding_window positions

    explicit Phi3Config(const Config& c)
        : DecoderConfig(c, {.max_position_embeddings = 4096, .rms_norm_eps = 1e-5f, .rotary_head_dim = false}),
          act(activation_from(c)),
          rope(rope_scaling(c, {"default", "longrope", "su", "yarn"})),
          sliding_window(sliding_window_field(c, 0)) {  // absent or null: full attention (Phi3Config's None)
        // partial_rotary_factor: int(head_dim * factor) dims are rotated, the rest pass through.
        const double partial_rotary_factor = c.get_or<double>("partial_rotary_factor", 1.0);
        rotary_dim = static_cast<int64_t>(static_cast<double>(head_dim) * partial_rotary_factor);
        if (!(partial_rotary_factor > 0.0) || rotary_dim > head_dim || rotary_dim <= 0 || rotary_dim % 2 != 0) {
            c.fail("partial_rotary_factor", "must select an even number of head dims between 2 and head_dim");
        }
        if (rope.type == "su" || rope.type == "yarn") rope.type = "longrope";  // Phi3Config's renaming
        // Phi3Config always has one (default 4096); with it, longrope's attention factor comes
        // from max_position_embeddings / original_max_position_embeddings.
        original_max_positions = c.get_or<int64_t>(
            "original_max_position_embeddings", rope.scaling.get_or<int64_t>("original_max_position_embeddings", 4096));
        if (original_max_positions <= 0) c.fail("original_max_position_embeddings", "must be positive");
    }
};

// ---- the model: model.embed_tokens -> model.layers.{i} -> model.norm -> lm_head (DecoderModel) ----
class Phi3 : public DecoderModel<Phi3, Phi3Config> {
  public:
    using DecoderModel::DecoderModel;

    // Layer i's tensors, p = "model.layers.{i}.", for load() and weight_specs() alike.
    void declare_layer(WeightTable& w, DecoderLayer& l, const std::string& p, int64_t) {
        const auto& c = config_;
        const int64_t h = c.hidden_size;
        l.input_norm = w.f32(p + "input_layernorm.weight", {h});
        l.post_attention_norm = w.f32(p + "post_attention_layernorm.weight", {h});
        // qkv_proj: rows [q | k | v]; gate_up_proj: rows [gate | up] (chunk(2) in the reference).
        const int64_t q_out = c.q_out(), kv_out = c.kv_out(), ff = c.intermediate_size;
        const View qkv = w.tensor(p + "self_attn.qkv_proj.weight", {q_out + 2 * kv_out, h});
        l.attn.q = w.pack(row_block(qkv, 0, q_out));
        l.attn.k = w.pack(row_block(qkv, q_out, kv_out));
        l.attn.v = w.pack(row_block(qkv, q_out + kv_out, kv_out));
        l.attn.o = w.linear(p + "self_attn.o_proj", h, q_out, false);
        const View gate_up = w.tensor(p + "mlp.gate_up_proj.weight", {2 * ff, h});
        l.mlp.gate = w.pack(row_block(gate_up, 0, ff));
        l.mlp.up = w.pack(row_block(gate_up, ff, ff));
        l.mlp.down = w.linear(p + "mlp.down_proj", h, ff, false);
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        auto [x, xn] = embed(a);
        rope_.compute(a);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const DecoderLayer& l = layers_[i];
            // Self-attention block; the rotary embedding turns the first rotary_dim dims of each head.
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 0.0f, xn);
            attn_.project(l.attn, xn).rope(rope_).attend(a, i, {.sliding_window = c.sliding_window}).output(l.attn, xn);
            host_.add(x, xn, x);
            // MLP block: down(act(gate(x)) * up(x)).
            host_.rms_norm(x, l.post_attention_norm, c.rms_norm_eps, 0.0f, xn);
            ffn_gated(host_, l.mlp, c.act, xn, xn, gate_, up_);
            host_.add(x, xn, x);
        }
        host_.rms_norm(x, final_norm_, c.rms_norm_eps, 0.0f, xn);
        write_output(a, xn);
    }

  private:
    // Built with the config, so that a bad longrope factor list fails before init-model writes anything.
    Rope rope_{host_, RopeSettings{config_.rotary_dim, config_.rope_theta, config_.rope.type, config_.rope.scaling,
                                   config_.max_positions, config_.original_max_positions}};
};

}  // namespace

TFX_PLUGIN_EXPORT(Phi3, tfx::sdk::model_table<Phi3>)
