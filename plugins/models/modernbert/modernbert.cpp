// ModernBERT (ModernBertModel, ModernBertForMaskedLM), mirroring transformers' modeling_modernbert.py:
//   LayerNorm(tok_embeddings) -> N x [x += attn(attn_norm(x)); x += mlp(mlp_norm(x))] -> final_norm
// A pre-norm encoder (layer 0 has no attn_norm) with rotary positions and no position table:
// every global_attn_every_n_layers-th layer (layer % n == 0) attends to the whole sequence with
// RoPE base global_rope_theta; the others attend to keys within local_attention / 2 positions
// on either side (ABI 2.3's window ahead) with base local_rope_theta. Wqkv and the MLP's Wi are
// fused in the checkpoint and packed here as row blocks: q, k, v; and Wi's (input, gate) halves,
// act(input) * gate. Norms and linears carry biases only as norm_bias, attention_bias and
// mlp_bias say. Masked LM: decoder(LayerNorm(act(dense(x)))), the decoder tied to the token
// embeddings, with a bias (decoder_bias).
#include <string>
#include <vector>

#include "tfx/sdk/model.hpp"
#include "tfx/sdk/rotary.hpp"

namespace {

using namespace tfx::sdk;

enum class Head { base, masked_lm };

struct ModernBertConfig {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, max_positions;
    int64_t local_window, global_every;
    double global_theta, local_theta;
    float norm_eps;
    bool norm_bias, attention_bias, mlp_bias, classifier_bias, decoder_bias;
    tfx_activation act, classifier_act;

    // Defaults are ModernBertConfig's.
    explicit ModernBertConfig(const Config& c) {
        vocab_size = c.get_or<int64_t>("vocab_size", 50368);
        hidden_size = c.get_or<int64_t>("hidden_size", 768);
        intermediate_size = c.get_or<int64_t>("intermediate_size", 1152);
        num_layers = c.get_or<int64_t>("num_hidden_layers", 22);
        num_heads = c.get_or<int64_t>("num_attention_heads", 12);
        max_positions = c.get_or<int64_t>("max_position_embeddings", 8192);
        local_window = c.get_or<int64_t>("local_attention", 128);
        global_every = c.get_or<int64_t>("global_attn_every_n_layers", 3);
        require_positive(c, {{"vocab_size", vocab_size},
                             {"hidden_size", hidden_size},
                             {"intermediate_size", intermediate_size},
                             {"num_hidden_layers", num_layers},
                             {"num_attention_heads", num_heads},
                             {"max_position_embeddings", max_positions},
                             {"local_attention", local_window},
                             {"global_attn_every_n_layers", global_every}});
        if (hidden_size % num_heads != 0) c.fail("num_attention_heads", "must divide hidden_size");
        if ((hidden_size / num_heads) % 2 != 0) c.fail("num_attention_heads", "must leave an even head_dim for RoPE");
        global_theta = c.get_positive<double>("global_rope_theta", 160000.0);
        // local_rope_theta null: the local layers turn as the global ones do.
        local_theta = c.get_positive<double>("local_rope_theta", global_theta);
        norm_eps = c.get_positive<float>("norm_eps", 1e-5f);
        norm_bias = c.get_or<bool>("norm_bias", false);
        attention_bias = c.get_or<bool>("attention_bias", false);
        mlp_bias = c.get_or<bool>("mlp_bias", false);
        classifier_bias = c.get_or<bool>("classifier_bias", false);
        decoder_bias = c.get_or<bool>("decoder_bias", true);
        act = activation_from(c, "hidden_activation", "gelu");
        classifier_act = activation_from(c, "classifier_activation", "gelu");
        if (!c.get_or<bool>("tie_word_embeddings", true)) {
            c.fail("tie_word_embeddings", "ModernBERT's decoder is tied to the token embeddings");
        }
    }

    int64_t head_dim() const { return hidden_size / num_heads; }
    bool global(int64_t layer) const { return layer % global_every == 0; }
};

struct Norm {
    View weight, bias;  // bias only with norm_bias
};

struct Layer {
    Norm attn_norm;              // none in layer 0
    AttentionWeights attention;  // attn.Wqkv as q, k, v row blocks; attn.Wo
    Norm mlp_norm;
    GatedMlp mlp;  // mlp.Wi's halves: gate = input (activated), up = gate; mlp.Wo
};

class ModernBert : public ModelPlugin<ModernBert, ModernBertConfig> {
  public:
    using ModelPlugin::ModelPlugin;

    void declare(WeightTable& w) {
        const auto& c = config_;
        head_ = host_.task_head({"base", "masked_lm"}) == "masked_lm" ? Head::masked_lm : Head::base;
        const int64_t h = c.hidden_size, inter = c.intermediate_size;
        const std::string pre = w.prefix("model.", "embeddings.tok_embeddings.weight", head_ != Head::base);
        embeddings_ = w.tensor(pre + "embeddings.tok_embeddings.weight", {c.vocab_size, h});
        embedding_norm_ = norm(w, pre + "embeddings.norm", h);
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = pre + "layers." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            if (i > 0) l.attn_norm = norm(w, p + "attn_norm", h);
            const View qkv = w.tensor(p + "attn.Wqkv.weight", {3 * h, h});
            const View qkv_bias = c.attention_bias ? w.f32(p + "attn.Wqkv.bias", {3 * h}, Init::zeros) : View();
            Linear* parts[] = {&l.attention.q, &l.attention.k, &l.attention.v};
            for (int64_t j = 0; j < 3; ++j) *parts[j] = pack_rows(w, qkv, qkv_bias, c.attention_bias, j * h, h, h);
            l.attention.o = w.linear(p + "attn.Wo", h, h, c.attention_bias);
            l.mlp_norm = norm(w, p + "mlp_norm", h);
            const View wi = w.tensor(p + "mlp.Wi.weight", {2 * inter, h});
            const View wi_bias = c.mlp_bias ? w.f32(p + "mlp.Wi.bias", {2 * inter}, Init::zeros) : View();
            l.mlp.gate = pack_rows(w, wi, wi_bias, c.mlp_bias, 0, inter, h);
            l.mlp.up = pack_rows(w, wi, wi_bias, c.mlp_bias, inter, inter, h);
            l.mlp.down = w.linear(p + "mlp.Wo", h, inter, c.mlp_bias);
        }
        final_norm_ = norm(w, pre + "final_norm", h);
        if (head_ == Head::masked_lm) {
            head_dense_ = w.linear("head.dense", h, h, c.classifier_bias);
            head_norm_ = norm(w, "head.norm", h);
            const View decoder =
                w.has("decoder.weight", false) ? w.tensor("decoder.weight", {c.vocab_size, h}) : embeddings_;
            decoder_ = c.decoder_bias ? w.pack(decoder, w.f32("decoder.bias", {c.vocab_size}, Init::zeros), true)
                                      : w.pack(decoder);
        }
    }

    void get_info(tfx_model_info* info) {
        const auto& c = config_;
        info->output_kind = head_ == Head::masked_lm ? TFX_OUTPUT_LOGITS : TFX_OUTPUT_HIDDEN_STATE;
        info->vocab_size = static_cast<int32_t>(c.vocab_size);
        info->hidden_size = static_cast<int32_t>(c.hidden_size);
        info->output_size = static_cast<int32_t>(head_ == Head::masked_lm ? c.vocab_size : c.hidden_size);
        info->num_layers = 0;  // bidirectional encoder: no KV cache
        info->num_kv_heads = static_cast<int32_t>(c.num_heads);
        info->head_dim = static_cast<int32_t>(c.head_dim());
        info->max_positions = c.max_positions;
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t n = forward_rows(a), h = c.hidden_size;
        if (a->cache != nullptr) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "modernbert: an encoder runs whole sequences (no KV cache)");
        }
        View x = hidden_.rows(n, h), xn = normed_.rows(n, h);
        host_.embedding(embeddings_, input_ids(a), x);
        apply(embedding_norm_, x, x);
        global_rope_.compute(a);
        local_rope_.compute(a);
        // A local layer's token sees keys with |i - j| <= local_attention / 2.
        const auto reach = static_cast<int32_t>(c.local_window / 2 + 1);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const Layer& l = layers_[i];
            const bool global = c.global(i);
            if (i > 0) apply(l.attn_norm, x, xn);
            attn_.project(l.attention, i > 0 ? xn : x)
                .rope(global ? global_rope_ : local_rope_)
                .attend(a, i,
                        {.sliding_window = global ? 0 : reach, .window_ahead = global ? 0 : reach, .causal = false})
                .output(l.attention, xn);
            host_.add(x, xn, x);
            apply(l.mlp_norm, x, xn);
            ffn_gated(host_, l.mlp, c.act, xn, xn, gate_, up_);
            host_.add(x, xn, x);
        }
        apply(final_norm_, x, x);
        if (head_ == Head::masked_lm) {
            head_dense_(x, xn);
            host_.activation(c.classifier_act, xn, xn);
            apply(head_norm_, xn, xn);
            output_.write(a, xn, &decoder_, c.vocab_size);
            return;
        }
        output_.write(a, x, nullptr, h);
    }

  private:
    Norm norm(WeightTable& w, const std::string& name, int64_t dim) const {
        Norm n{w.f32(name + ".weight", {dim}), View()};
        if (config_.norm_bias) n.bias = w.f32(name + ".bias", {dim}, Init::zeros);
        return n;
    }
    void apply(const Norm& norm, const View& x, View& y) const {
        host_.layer_norm(x, norm.weight, config_.norm_bias ? &norm.bias : nullptr, config_.norm_eps, y);
    }
    // Rows [first, first + rows) of a fused weight [*, in] (and of its bias) as one linear.
    static Linear pack_rows(WeightTable& w, const View& fused, const View& bias, bool has_bias, int64_t first,
                            int64_t rows, int64_t in) {
        const View block = fused.at(first * in, {rows, in});
        return has_bias ? w.pack(block, bias.at(first, {rows}), true) : w.pack(block);
    }

    Head head_ = Head::base;
    View embeddings_;
    Norm embedding_norm_, final_norm_, head_norm_;
    std::vector<Layer> layers_;
    Linear head_dense_, decoder_;
    SelfAttention attn_{host_, config_.num_heads, config_.num_heads, config_.head_dim()};
    Rope global_rope_{host_,
                      RopeSettings{config_.head_dim(), config_.global_theta, "default", {}, config_.max_positions}};
    Rope local_rope_{host_,
                     RopeSettings{config_.head_dim(), config_.local_theta, "default", {}, config_.max_positions}};
    OutputWriter output_{host_};
    Scratch hidden_{host_}, normed_{host_}, gate_{host_}, up_{host_};
};

}  // namespace

TFX_PLUGIN_EXPORT(ModernBert, tfx::sdk::model_table<ModernBert>)
