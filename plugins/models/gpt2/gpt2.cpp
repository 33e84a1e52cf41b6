// GPT-2 (GPT2LMHeadModel, GPT2Model), mirroring transformers' modeling_gpt2.py (v4.44):
//   wte(ids) + wpe(positions) -> N x [x += attn(ln_1(x)); x += mlp(ln_2(x))] -> ln_f -> lm_head
// with learned position embeddings, LayerNorm with bias, multi-head attention from a fused
// c_attn projection, a gelu_new MLP and an LM head tied to wte. GPT-2's Conv1D layers store
// their weights [in, out]: they are handed to the backend as transposed views, and c_attn's
// q/k/v are column blocks of that view. All compute goes through the host's ops.
#include <cmath>
#include <string>
#include <vector>

#include "tfx/sdk/host.hpp"
#include "tfx/sdk/layers.hpp"
#include "tfx/sdk/plugin.hpp"

namespace {

using tfx::sdk::Config;
using tfx::sdk::Error;
using tfx::sdk::Init;
using tfx::sdk::Linear;
using tfx::sdk::View;
using tfx::sdk::WeightTable;

// ---- config.json: every field that changes the math ------------------------------------
// reorder_and_upcast_attn only changes the precision of fp16 runs; activations here are f32.
struct GPT2Config {
    int64_t vocab_size, hidden_size, inner_size, num_layers, num_heads, head_dim, max_positions;
    float layer_norm_eps;
    bool scale_attn_weights, scale_attn_by_inverse_layer_idx, tie_word_embeddings;
    tfx_activation act;

    explicit GPT2Config(const Config& c) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("n_embd");
        num_layers = c.get<int64_t>("n_layer");
        num_heads = c.get<int64_t>("n_head");
        max_positions = c.get<int64_t>("n_positions");
        inner_size = c.get_or<int64_t>("n_inner", 4 * hidden_size);  // null: 4 * n_embd
        layer_norm_eps = c.get_or<float>("layer_norm_epsilon", 1e-5f);
        scale_attn_weights = c.get_or<bool>("scale_attn_weights", true);
        scale_attn_by_inverse_layer_idx = c.get_or<bool>("scale_attn_by_inverse_layer_idx", false);
        tie_word_embeddings = c.get_or<bool>("tie_word_embeddings", true);
        act = tfx::sdk::activation_from(c, "activation_function", "gelu_new");
        tfx::sdk::require_positive(c, {{"vocab_size", vocab_size}, {"n_embd", hidden_size}, {"n_layer", num_layers},
                                       {"n_head", num_heads}, {"n_positions", max_positions}, {"n_inner", inner_size}});
        if (hidden_size % num_heads != 0) c.fail("n_head", "must divide n_embd");
        head_dim = hidden_size / num_heads;
    }
};

// ---- the model -----------------------------------------------------------------------------
struct Layer {
    View ln_1_w, ln_1_b, ln_2_w, ln_2_b;
    Linear q, k, v, attn_proj, fc, mlp_proj;
};

class GPT2 {
public:
    explicit GPT2(const tfx_host_services* services) : host_(services), config_(host_.config()) {}

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
        info->num_kv_heads = static_cast<int32_t>(config_.num_heads);
        info->head_dim = static_cast<int32_t>(config_.head_dim);
        info->max_positions = config_.max_positions;
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t b = a->batch, t = a->tokens, n = b * t, h = c.hidden_size;
        if (b <= 0 || t <= 0 || a->input_ids == nullptr || a->positions == nullptr || a->output == nullptr) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: batch, tokens, input_ids, positions and output are required");
        }
        hidden_.resize(n * h), normed_.resize(n * h), q_.resize(n * h), k_.resize(n * h), v_.resize(n * h);
        attn_.resize(n * h), inner_.resize(n * c.inner_size), position_ids_.resize(n);

        // Token plus learned position embeddings (positions index wpe, so they must fit it).
        for (int64_t i = 0; i < n; ++i) {
            if (a->positions[i] < 0 || a->positions[i] >= c.max_positions) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "gpt2: position " + std::to_string(a->positions[i]) +
                                                          " is beyond n_positions (" + std::to_string(c.max_positions) + ")");
            }
            position_ids_[i] = static_cast<int32_t>(a->positions[i]);
        }
        View ids(const_cast<int32_t*>(a->input_ids), tfx::sdk::kI32, {n});
        View pos(position_ids_.data(), tfx::sdk::kI32, {n});
        View x(hidden_.data(), {n, h}), xn(normed_.data(), {n, h});
        host_.embedding(wte_, ids, x);
        host_.embedding(wpe_, pos, xn);
        host_.add(x, xn, x);

        View q(q_.data(), {n, h}), k(k_.data(), {n, h}), v(v_.data(), {n, h}), o(attn_.data(), {n, h});
        View inner(inner_.data(), {n, c.inner_size});
        View q4(q_.data(), {b, t, c.num_heads, c.head_dim}), k4(k_.data(), {b, t, c.num_heads, c.head_dim});
        View v4(v_.data(), {b, t, c.num_heads, c.head_dim}), o4(attn_.data(), {b, t, c.num_heads, c.head_dim});

        for (int64_t i = 0; i < c.num_layers; ++i) {
            Layer& l = layers_[i];
            // Self-attention block.
            host_.layer_norm(x, l.ln_1_w, &l.ln_1_b, c.layer_norm_eps, xn);
            l.q(xn, q);
            l.k(xn, k);
            l.v(xn, v);
            // Scores / sqrt(head_dim) when scale_attn_weights, then / (layer_idx + 1) when
            // scale_attn_by_inverse_layer_idx.
            double scale = c.scale_attn_weights ? 1.0 / std::sqrt(static_cast<double>(c.head_dim)) : 1.0;
            if (c.scale_attn_by_inverse_layer_idx) scale /= static_cast<double>(i + 1);
            tfx::sdk::attend(host_, a, i, {.q = q4, .k = k4, .v = v4, .out = o4, .scale = static_cast<float>(scale)});
            l.attn_proj(o, xn);
            host_.add(x, xn, x);
            // MLP block: c_proj(gelu_new(c_fc(x))).
            host_.layer_norm(x, l.ln_2_w, &l.ln_2_b, c.layer_norm_eps, xn);
            l.fc(xn, inner);
            host_.activation(c.act, inner, inner);
            l.mlp_proj(inner, xn);
            host_.add(x, xn, x);
        }
        host_.layer_norm(x, ln_f_w_, &ln_f_b_, c.layer_norm_eps, xn);
        output_.write(a, xn, causal_lm_ ? &lm_head_ : nullptr, causal_lm_ ? c.vocab_size : h);
    }

private:
    // Every tensor of the checkpoint, for load() and weight_specs() alike.
    void declare(WeightTable& w) {
        const auto& c = config_;
        causal_lm_ = host_.task_head({"causal_lm", "base"}) == "causal_lm";
        const int64_t h = c.hidden_size;
        // GPT2LMHeadModel checkpoints name their tensors "transformer.*"; GPT2Model ones (and
        // the original OpenAI conversions) have no prefix.
        const std::string pre = w.prefix("transformer.", "ln_f.weight", causal_lm_);
        // Tied embeddings: either side of the tie may be the stored tensor.
        wte_ = c.tie_word_embeddings ? w.tensor_or(pre + "wte.weight", "lm_head.weight", {c.vocab_size, h})
                                     : w.tensor(pre + "wte.weight", {c.vocab_size, h});
        wpe_ = w.tensor(pre + "wpe.weight", {c.max_positions, h});
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = pre + "h." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.ln_1_w = w.f32(p + "ln_1.weight", {h});
            l.ln_1_b = w.f32(p + "ln_1.bias", {h}, Init::zeros);
            // c_attn: [h, 3h] stored; query, key and value are its three column blocks.
            const View c_attn = w.tensor(p + "attn.c_attn.weight", {h, 3 * h});
            const View c_attn_bias = w.f32(p + "attn.c_attn.bias", {3 * h}, Init::zeros);
            l.q = conv1d_block(w, c_attn, c_attn_bias, 0, h);
            l.k = conv1d_block(w, c_attn, c_attn_bias, h, h);
            l.v = conv1d_block(w, c_attn, c_attn_bias, 2 * h, h);
            l.attn_proj = conv1d(w, p + "attn.c_proj", h, h);
            l.ln_2_w = w.f32(p + "ln_2.weight", {h});
            l.ln_2_b = w.f32(p + "ln_2.bias", {h}, Init::zeros);
            l.fc = conv1d(w, p + "mlp.c_fc", h, c.inner_size);
            l.mlp_proj = conv1d(w, p + "mlp.c_proj", c.inner_size, h);
        }
        ln_f_w_ = w.f32(pre + "ln_f.weight", {h});
        ln_f_b_ = w.f32(pre + "ln_f.bias", {h}, Init::zeros);
        if (causal_lm_) {
            lm_head_ = c.tie_word_embeddings ? w.pack(wte_) : w.linear("lm_head", c.vocab_size, h, false);
        }
    }

    // Columns [start, start + count) of a Conv1D weight stored [in, out], as the transposed
    // view [count, in] (strides {1, out}) that pack() takes, with the matching bias slice.
    static Linear conv1d_block(WeightTable& w, const View& weight, const View& bias, int64_t start, int64_t count) {
        if (w.describing()) return Linear();  // no data to view
        const tfx_tensor* stored = weight.get();
        const int64_t in = weight.dim(0);
        const int64_t row_stride = stored->strides != nullptr ? stored->strides[0] : weight.dim(1);
        const int64_t col_stride = stored->strides != nullptr ? stored->strides[1] : 1;
        const int64_t element_bytes = weight.dtype().bits / 8;
        View block(weight.data<char>() + start * col_stride * element_bytes, weight.dtype(), {count, in});
        block.with_strides({col_stride, row_stride});
        return w.pack(block, View(bias.data() + start, {count}), true);
    }

    // A whole Conv1D layer: weight [in, out], bias [out].
    static Linear conv1d(WeightTable& w, const std::string& name, int64_t in, int64_t out) {
        const View weight = w.tensor(name + ".weight", {in, out});
        const View bias = w.f32(name + ".bias", {out}, Init::zeros);
        return conv1d_block(w, weight, bias, 0, out);
    }

    tfx::sdk::Host host_;
    GPT2Config config_;
    bool causal_lm_ = true;
    View wte_, wpe_, ln_f_w_, ln_f_b_;
    std::vector<Layer> layers_;
    Linear lm_head_;
    tfx::sdk::OutputWriter output_;
    std::vector<float> hidden_, normed_, q_, k_, v_, attn_, inner_;
    std::vector<int32_t> position_ids_;
};

const tfx_model_table kTable = {
    sizeof(tfx_model_table),
    tfx::sdk::method<&GPT2::load>,
    tfx::sdk::method<&GPT2::get_info>,
    tfx::sdk::method<&GPT2::forward>,
    tfx::sdk::method<&GPT2::weight_specs>,
};

}  // namespace

TFX_PLUGIN_EXPORT(GPT2, kTable)
