// Phi-3 (Phi3ForCausalLM, Phi3Model; Phi-3, Phi-3.5, Phi-4-mini), mirroring transformers'
// modeling_phi3.py:
//   embed -> N x [x += attn(rms_norm(x)); x += mlp(rms_norm(x))] -> rms_norm -> lm_head
// Llama's layout without biases, but with fused projections as stored: qkv_proj holds the
// q, k and v rows one after the other and gate_up_proj the gate then the up rows (each block
// is packed as its own weight). Rotary embeddings on the first partial_rotary_factor of each
// head, default or LongRoPE ("longrope", formerly "su"); sliding-window attention on every
// layer when the config sets sliding_window. All compute goes through the host's ops.
#include <cmath>
#include <limits>
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
using tfx::sdk::Linear;
using tfx::sdk::View;
using tfx::sdk::WeightTable;

// ---- config.json: every field that changes the math ------------------------------------
struct Phi3Config {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim;
    int64_t max_positions;
    float rms_norm_eps;
    double rope_theta;
    bool tie_word_embeddings;
    tfx_activation act;
    Config rope_scaling;  // empty object when absent
    std::string rope_type;
    int64_t rotary_dim;  // the leading dims of each head that the rotary embedding turns
    int64_t original_max_positions;  // longrope: past it, long_factor replaces short_factor
    int32_t sliding_window;  // > 0: every layer attends to the last sliding_window positions

    explicit Phi3Config(const Config& c) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        num_kv_heads = c.get_or<int64_t>("num_key_value_heads", num_heads);
        head_dim = c.get_or<int64_t>("head_dim", num_heads > 0 ? hidden_size / num_heads : 0);
        max_positions = c.get_or<int64_t>("max_position_embeddings", 4096);
        rms_norm_eps = c.get_or<float>("rms_norm_eps", 1e-5f);
        rope_theta = c.get_or<double>("rope_theta", 10000.0);
        tie_word_embeddings = c.get_or<bool>("tie_word_embeddings", false);
        act = tfx::sdk::activation_from(c);
        tfx::sdk::require_positive(c, {{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                                       {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_layers},
                                       {"num_attention_heads", num_heads}, {"num_key_value_heads", num_kv_heads},
                                       {"head_dim", head_dim}});
        if (num_heads % num_kv_heads != 0) c.fail("num_key_value_heads", "must divide num_attention_heads");
        // partial_rotary_factor: int(head_dim * factor) dims are rotated, the rest pass through.
        const double partial_rotary_factor = c.get_or<double>("partial_rotary_factor", 1.0);
        rotary_dim = static_cast<int64_t>(static_cast<double>(head_dim) * partial_rotary_factor);
        if (!(partial_rotary_factor > 0.0) || rotary_dim > head_dim || rotary_dim <= 0 || rotary_dim % 2 != 0) {
            c.fail("partial_rotary_factor", "must select an even number of head dims between 2 and head_dim");
        }
        rope_type = tfx::sdk::rope_type_of(c);
        if (c.has("rope_scaling")) rope_scaling = c.child("rope_scaling");
        if (rope_type == "su" || rope_type == "yarn") rope_type = "longrope";  // Phi3Config's renaming
        if (rope_type != "default" && rope_type != "longrope") {
            c.fail("rope_scaling", "unsupported rope type '" + rope_type + "' (default, longrope, su)");
        }
        // Phi3Config always has one (default 4096); with it, longrope's attention factor comes
        // from max_position_embeddings / original_max_position_embeddings.
        original_max_positions = c.get_or<int64_t>(
            "original_max_position_embeddings", rope_scaling.get_or<int64_t>("original_max_position_embeddings", 4096));
        if (original_max_positions <= 0) c.fail("original_max_position_embeddings", "must be positive");
        // sliding_window: absent or null is full attention (Phi3Config's default is None).
        const int64_t window = c.get_or<int64_t>("sliding_window", 0);
        if (window < 0 || window > std::numeric_limits<int32_t>::max()) c.fail("sliding_window", "out of range");
        sliding_window = static_cast<int32_t>(window);
    }
};

// ---- the model -----------------------------------------------------------------------------
struct Layer {
    View input_norm, post_attention_norm;
    Linear q, k, v, o, gate, up, down;
};

class Phi3 {
public:
    // The rotary embedding is built with the config, so that a bad longrope factor list fails
    // before init-model writes anything.
    explicit Phi3(const tfx_host_services* services) : host_(services), config_(host_.config()) {
        const auto& c = config_;
        rotary_ = std::make_unique<tfx::sdk::RotaryEmbedding>(tfx::sdk::RopeSettings{
            c.rotary_dim, c.rope_theta, c.rope_type, c.rope_scaling, c.max_positions, c.original_max_positions});
    }

    void load(const char*) {
        WeightTable w(host_, WeightTable::Mode::load);
        declare(w);
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
        View cos_v(cos_.data(), {n, c.rotary_dim / 2}), sin_v(sin_.data(), {n, c.rotary_dim / 2});

        View q(q_.data(), {n, q_out}), k(k_.data(), {n, kv_out}), v(v_.data(), {n, kv_out}), o(attn_.data(), {n, q_out});
        View gate(gate_.data(), {n, c.intermediate_size}), up(up_.data(), {n, c.intermediate_size});
        View q_heads(q_.data(), {n, c.num_heads, c.head_dim}), k_heads(k_.data(), {n, c.num_kv_heads, c.head_dim});
        View q4(q_.data(), {b, t, c.num_heads, c.head_dim}), k4(k_.data(), {b, t, c.num_kv_heads, c.head_dim});
        View v4(v_.data(), {b, t, c.num_kv_heads, c.head_dim}), o4(attn_.data(), {b, t, c.num_heads, c.head_dim});

        for (int64_t i = 0; i < c.num_layers; ++i) {
            Layer& l = layers_[i];
            // Self-attention block.
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 0.0f, xn);
            l.q(xn, q);
            l.k(xn, k);
            l.v(xn, v);
            host_.rope(q_heads, cos_v, sin_v);
            host_.rope(k_heads, cos_v, sin_v);
            tfx::sdk::attend(host_, a, i, {.q = q4, .k = k4, .v = v4, .out = o4, .sliding_window = c.sliding_window});
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
        const int64_t ff = c.intermediate_size;
        // A Phi3Model checkpoint stores its tensors without the "model." prefix.
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
            // qkv_proj: rows [q | k | v]; gate_up_proj: rows [gate | up] (chunk(2) in the reference).
            const View qkv = w.tensor(p + "self_attn.qkv_proj.weight", {q_out + 2 * kv_out, h});
            l.q = w.pack(row_block(qkv, 0, q_out));
            l.k = w.pack(row_block(qkv, q_out, kv_out));
            l.v = w.pack(row_block(qkv, q_out + kv_out, kv_out));
            l.o = w.linear(p + "self_attn.o_proj", h, q_out, false);
            const View gate_up = w.tensor(p + "mlp.gate_up_proj.weight", {2 * ff, h});
            l.gate = w.pack(row_block(gate_up, 0, ff));
            l.up = w.pack(row_block(gate_up, ff, ff));
            l.down = w.linear(p + "mlp.down_proj", h, ff, false);
        }
        final_norm_ = w.f32(pre + "norm.weight", {h});
        if (causal_lm_) {
            lm_head_ = c.tie_word_embeddings ? w.pack(embed_) : w.linear("lm_head", c.vocab_size, h, false);
        }
    }

    // Rows [first, first + rows) of a stored [out, in] weight: the same data with a byte offset
    // and a smaller shape, so each block of a fused projection is packed on its own.
    static View row_block(const View& w, int64_t first, int64_t rows) {
        tfx_tensor t = *w.get();
        const int64_t row_stride = t.strides != nullptr ? t.strides[0] : w.dim(1);
        t.byte_offset += static_cast<uint64_t>(first * row_stride * (t.dtype.bits / 8));
        int64_t shape[2] = {rows, w.dim(1)};
        t.shape = shape;
        return View(t);  // copies shape and strides
    }

    tfx::sdk::Host host_;
    Phi3Config config_;
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
    tfx::sdk::method<&Phi3::load>,
    tfx::sdk::method<&Phi3::get_info>,
    tfx::sdk::method<&Phi3::forward>,
    tfx::sdk::method<&Phi3::weight_specs>,
};

}  // namespace

TFX_PLUGIN_EXPORT(Phi3, kTable)
