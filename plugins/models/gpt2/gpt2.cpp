// GPT-2 (GPT2LMHeadModel, GPT2Model), mirroring transformers' modeling_gpt2.py (v4.44):
//   wte(ids) + wpe(positions) -> N x [x += attn(ln_1(x)); x += mlp(ln_2(x))] -> ln_f -> lm_head
// with learned position embeddings, LayerNorm with bias, multi-head attention from a fused
// c_attn projection, a gelu_new MLP and an LM head tied to wte. GPT-2's Conv1D layers store
// their weights [in, out]: they are handed to the backend as transposed views [out, in]
// (WeightTable::conv1d_weight; a GPTQ/AWQ checkpoint's are [out, in] as decoded), and c_attn's
// q/k/v are row blocks of that view. All compute goes through the host's ops.
#include <cmath>
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

// ---- config.json: every field that changes the math ------------------------------------
// reorder_and_upcast_attn only changes the precision of fp16 runs; activations here are f32.
struct GPT2Config {
    int64_t vocab_size, hidden_size, inner_size, num_layers, num_heads, head_dim, max_positions;
    float layer_norm_eps;
    bool scale_attn_weights, scale_attn_by_inverse_layer_idx, tie_word_embeddings;
    tfx_activation act;

    explicit GPT2Config(const Config& c)
        : vocab_size(c.get<int64_t>("vocab_size")),
          hidden_size(c.get<int64_t>("n_embd")),
          inner_size(c.get_or<int64_t>("n_inner", 4 * hidden_size)),  // null: 4 * n_embd
          num_layers(c.get<int64_t>("n_layer")),
          num_heads(c.get<int64_t>("n_head")),
          max_positions(c.get<int64_t>("n_positions")),
          layer_norm_eps(c.get_positive<float>("layer_norm_epsilon", 1e-5f)),
          scale_attn_weights(c.get_or<bool>("scale_attn_weights", true)),
          scale_attn_by_inverse_layer_idx(c.get_or<bool>("scale_attn_by_inverse_layer_idx", false)),
          tie_word_embeddings(c.get_or<bool>("tie_word_embeddings", true)),
          act(activation_from(c, "activation_function", "gelu_new")) {
        require_positive(c, {{"vocab_size", vocab_size},
                             {"n_embd", hidden_size},
                             {"n_layer", num_layers},
                             {"n_head", num_heads},
                             {"n_positions", max_positions},
                             {"n_inner", inner_size}});
        if (hidden_size % num_heads != 0) c.fail("n_head", "must divide n_embd");
        head_dim = hidden_size / num_heads;
    }
};

// ---- the model -----------------------------------------------------------------------------
struct Layer {
    LayerNorm ln_1, ln_2;
    AttentionWeights attn;  // q, k, v: c_attn's column blocks; o: attn.c_proj
    Mlp mlp;                // up: mlp.c_fc; down: mlp.c_proj
};

// Rows [start, start + count) of a Conv1D weight as WeightTable::conv1d_weight hands it ([out,
// in]), packed with the matching bias slice.
Linear conv1d_rows(WeightTable& w, const View& weight, const View& bias, int64_t start, int64_t count) {
    if (w.describing()) return Linear();  // no data to view
    return w.pack(row_block(weight, start, count), bias.at(start, {count}), true);
}

class GPT2 : public ModelPlugin<GPT2, GPT2Config> {
  public:
    using ModelPlugin::ModelPlugin;

    // Every tensor of the checkpoint, for load() and weight_specs() alike.
    void declare(WeightTable& w) {
        const auto& c = config_;
        causal_lm_ = host_.task_head({"causal_lm", "base"}) == "causal_lm";
        const int64_t h = c.hidden_size;
        // GPT2LMHeadModel checkpoints name their tensors "transformer.*"; GPT2Model ones (and
        // the original OpenAI conversions) have no prefix.
        const std::string pre = w.prefix("transformer.", "ln_f.weight", causal_lm_);
        wte_ = w.embedding(pre + "wte.weight", "lm_head.weight", {c.vocab_size, h}, c.tie_word_embeddings);
        wpe_ = w.tensor(pre + "wpe.weight", {c.max_positions, h});
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = pre + "h." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.ln_1 = w.layer_norm(p + "ln_1", h);
            // c_attn: [h, 3h] stored; query, key and value are its three column blocks, the
            // row blocks of the [3h, h] view.
            const View c_attn = w.conv1d_weight(p + "attn.c_attn.weight", h, 3 * h);
            const View c_attn_bias = w.f32(p + "attn.c_attn.bias", {3 * h}, Init::zeros);
            l.attn.q = conv1d_rows(w, c_attn, c_attn_bias, 0, h);
            l.attn.k = conv1d_rows(w, c_attn, c_attn_bias, h, h);
            l.attn.v = conv1d_rows(w, c_attn, c_attn_bias, 2 * h, h);
            l.attn.o = w.conv1d(p + "attn.c_proj", h, h);
            l.ln_2 = w.layer_norm(p + "ln_2", h);
            l.mlp.up = w.conv1d(p + "mlp.c_fc", h, c.inner_size);
            l.mlp.down = w.conv1d(p + "mlp.c_proj", c.inner_size, h);
        }
        ln_f_ = w.layer_norm(pre + "ln_f", h);
        if (causal_lm_) lm_head_ = w.lm_head("lm_head", wte_, c.tie_word_embeddings);
    }

    void get_info(tfx_model_info* info) {
        const auto& c = config_;
        decoder_info(info, {c.vocab_size, c.hidden_size, c.num_layers, c.num_heads, c.head_dim, c.max_positions},
                     causal_lm_);
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t n = forward_rows(a);
        View x = hidden_.rows(n, c.hidden_size), xn = normed_.rows(n, c.hidden_size);
        // Token plus learned position embeddings (positions index wpe, so they must fit it).
        const View positions = learned_positions(a, c.max_positions, "gpt2", "n_positions");
        host_.embedding(wte_, input_ids(a), x);
        host_.embedding(wpe_, positions, xn);
        host_.add(x, xn, x);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const Layer& l = layers_[i];
            // Self-attention block: scores / sqrt(head_dim) when scale_attn_weights, then
            // / (layer_idx + 1) when scale_attn_by_inverse_layer_idx.
            layer_norm(host_, x, l.ln_1, c.layer_norm_eps, xn);
            attn_.project(l.attn, xn);
            double scale = c.scale_attn_weights ? 1.0 / std::sqrt(static_cast<double>(c.head_dim)) : 1.0;
            if (c.scale_attn_by_inverse_layer_idx) scale /= static_cast<double>(i + 1);
            attn_.attend(a, i, {.scale = static_cast<float>(scale)}).output(l.attn, xn);
            host_.add(x, xn, x);
            // MLP block: c_proj(gelu_new(c_fc(x))).
            layer_norm(host_, x, l.ln_2, c.layer_norm_eps, xn);
            ffn(host_, l.mlp, c.act, xn, xn, inner_);
            host_.add(x, xn, x);
        }
        layer_norm(host_, x, ln_f_, c.layer_norm_eps, xn);
        output_.write(a, xn, causal_lm_ ? &lm_head_ : nullptr, causal_lm_ ? c.vocab_size : c.hidden_size);
    }

  private:
    bool causal_lm_ = true;
    View wte_, wpe_;
    LayerNorm ln_f_;
    std::vector<Layer> layers_;
    Linear lm_head_;
    SelfAttention attn_{host_, config_.num_heads, config_.num_heads, config_.head_dim};
    OutputWriter output_{host_};
    Scratch hidden_{host_}, normed_{host_}, inner_{host_};
};

}  // namespace

TFX_PLUGIN_EXPORT(GPT2, tfx::sdk::model_table<GPT2>)
