// RoBERTa and XLM-RoBERTa (RobertaModel, RobertaForMaskedLM, RobertaForSequenceClassification
// and their XLMRoberta twins), mirroring transformers' modeling_roberta.py: BERT's post-norm
// encoder with RoBERTa's embeddings and heads.
//   - Positions come from the ids: pos = padding_idx + (count of non-pad ids so far) for a
//     non-pad id, padding_idx for a pad id (create_position_ids_from_input_ids), per sequence.
//   - Masked LM: LayerNorm(gelu(dense(x))) -> decoder tied to the word embeddings, plus a bias.
//   - Sequence classification: out_proj(tanh(dense(x[<s>]))); no pooler.
#include <string>
#include <vector>

#include "tfx/sdk/model.hpp"

namespace {

using namespace tfx::sdk;

enum class Head { base, sequence_classification, masked_lm };

struct RobertaConfig {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, max_positions, type_vocab_size;
    int64_t num_labels, padding_idx;
    float layer_norm_eps;
    tfx_activation act;

    explicit RobertaConfig(const Config& c) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        max_positions = c.get_or<int64_t>("max_position_embeddings", 514);
        type_vocab_size = c.get_or<int64_t>("type_vocab_size", 1);
        padding_idx = c.get_or<int64_t>("pad_token_id", 1);
        layer_norm_eps = c.get_positive<float>("layer_norm_eps", 1e-12f);
        num_labels = label_count(c);
        act = activation_from(c, "hidden_act", "gelu");
        const std::string position_type = c.get_or<std::string>("position_embedding_type", "absolute");
        if (position_type != "absolute") {
            c.fail("position_embedding_type", "only 'absolute' is supported, got '" + position_type + "'");
        }
        require_positive(c, {{"vocab_size", vocab_size},
                             {"hidden_size", hidden_size},
                             {"intermediate_size", intermediate_size},
                             {"num_hidden_layers", num_layers},
                             {"num_attention_heads", num_heads},
                             {"max_position_embeddings", max_positions},
                             {"type_vocab_size", type_vocab_size}});
        if (hidden_size % num_heads != 0) c.fail("num_attention_heads", "must divide hidden_size");
        if (padding_idx < 0 || padding_idx >= max_positions) c.fail("pad_token_id", "must index the position table");
    }
};

struct Layer {
    AttentionWeights attention;  // attention.self.{query, key, value}, attention.output.dense
    LayerNorm attention_norm, output_norm;
    Mlp ffn;  // intermediate.dense, output.dense
};

class Roberta : public ModelPlugin<Roberta, RobertaConfig> {
  public:
    using ModelPlugin::ModelPlugin;

    void declare(WeightTable& w) {
        const auto& c = config_;
        const std::string head = host_.task_head({"base", "sequence_classification", "masked_lm"});
        head_ = head == "masked_lm"                 ? Head::masked_lm
                : head == "sequence_classification" ? Head::sequence_classification
                                                    : Head::base;
        const int64_t h = c.hidden_size;
        // Task models prefix the encoder with "roberta."; a bare RobertaModel does not.
        const std::string pre = w.prefix("roberta.", "embeddings.word_embeddings.weight", head_ != Head::base);
        const std::string e = pre + "embeddings.";
        word_embeddings_ = w.tensor(e + "word_embeddings.weight", {c.vocab_size, h});
        position_embeddings_ = w.tensor(e + "position_embeddings.weight", {c.max_positions, h});
        token_type_embeddings_ = w.tensor(e + "token_type_embeddings.weight", {c.type_vocab_size, h});
        embedding_norm_ = w.layer_norm(e + "LayerNorm", h);
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = pre + "encoder.layer." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.attention.q = w.linear(p + "attention.self.query", h, h, true);
            l.attention.k = w.linear(p + "attention.self.key", h, h, true);
            l.attention.v = w.linear(p + "attention.self.value", h, h, true);
            l.attention.o = w.linear(p + "attention.output.dense", h, h, true);
            l.attention_norm = w.layer_norm(p + "attention.output.LayerNorm", h);
            l.ffn.up = w.linear(p + "intermediate.dense", c.intermediate_size, h, true);
            l.ffn.down = w.linear(p + "output.dense", h, c.intermediate_size, true);
            l.output_norm = w.layer_norm(p + "output.LayerNorm", h);
        }
        // The task models have no pooler; a base model may have been saved without one.
        has_pooler_ = head_ == Head::base && w.has(pre + "pooler.dense.weight", false);
        if (has_pooler_) pooler_ = w.linear(pre + "pooler.dense", h, h, true);
        if (head_ == Head::sequence_classification) {
            classifier_dense_ = w.linear("classifier.dense", h, h, true);
            classifier_out_ = w.linear("classifier.out_proj", c.num_labels, h, true);
        }
        if (head_ == Head::masked_lm) {
            mlm_dense_ = w.linear("lm_head.dense", h, h, true);
            mlm_norm_ = w.layer_norm("lm_head.layer_norm", h);
            const View decoder = w.has("lm_head.decoder.weight", false)
                                     ? w.tensor("lm_head.decoder.weight", {c.vocab_size, h})
                                     : word_embeddings_;
            mlm_decoder_ = w.pack(decoder, w.f32("lm_head.bias", {c.vocab_size}, Init::zeros), true);
        }
    }

    void get_info(tfx_model_info* info) {
        const auto& c = config_;
        info->output_kind = head_ == Head::masked_lm                 ? TFX_OUTPUT_LOGITS
                            : head_ == Head::sequence_classification ? TFX_OUTPUT_CLASS_LOGITS
                                                                     : TFX_OUTPUT_HIDDEN_STATE;
        info->vocab_size = static_cast<int32_t>(c.vocab_size);
        info->hidden_size = static_cast<int32_t>(c.hidden_size);
        info->output_size = static_cast<int32_t>(head_ == Head::masked_lm                 ? c.vocab_size
                                                 : head_ == Head::sequence_classification ? c.num_labels
                                                                                          : c.hidden_size);
        info->num_layers = 0;  // bidirectional encoder: no KV cache
        info->num_kv_heads = static_cast<int32_t>(c.num_heads);
        info->head_dim = static_cast<int32_t>(c.hidden_size / c.num_heads);
        // Positions start at padding_idx + 1: the table holds that many fewer tokens.
        info->max_positions = c.max_positions - c.padding_idx - 1;
        if (TFX_HAS_FIELD(info, tfx_model_info, has_pooler)) info->has_pooler = has_pooler_ ? 1 : 0;
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t n = forward_rows(a), h = c.hidden_size;
        if (a->cache != nullptr) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "roberta: an encoder runs whole sequences (no KV cache)");
        }
        View x = hidden_.rows(n, h), y = tmp_.rows(n, h);
        host_.embedding(word_embeddings_, input_ids(a), x);
        host_.embedding(position_embeddings_, positions_from_ids(a), y);
        host_.add(x, y, x);
        host_.embedding(token_type_embeddings_, a->token_type_ids != nullptr ? View(*a->token_type_ids) : zeros(n), y);
        host_.add(x, y, x);
        layer_norm(host_, x, embedding_norm_, c.layer_norm_eps, x);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const Layer& l = layers_[i];
            attn_.project(l.attention, x).attend(a, i, {.causal = false}).output(l.attention, y);
            host_.add(y, x, x);
            layer_norm(host_, x, l.attention_norm, c.layer_norm_eps, x);
            ffn(host_, l.ffn, c.act, x, y, ffn_);
            host_.add(y, x, x);
            layer_norm(host_, x, l.output_norm, c.layer_norm_eps, x);
        }
        write_outputs(a, x);
    }

  private:
    // create_position_ids_from_input_ids, per sequence of the batch, from the ids on the host.
    View positions_from_ids(const tfx_forward_args* a) {
        const auto& c = config_;
        const tfx_batch& b = *a->batch;
        ids_.resize(static_cast<size_t>(b.num_tokens));
        positions_.resize(static_cast<size_t>(b.num_tokens));
        host_.download(input_ids(a), ids_.data());
        for (int32_t s = 0; s < b.num_seqs; ++s) {
            int64_t count = 0;
            for (int32_t t = b.seq_start[s]; t < b.seq_start[s + 1]; ++t) {
                const bool pad = ids_[t] == c.padding_idx;
                if (!pad) ++count;
                const int64_t p = pad ? c.padding_idx : c.padding_idx + count;
                if (p >= c.max_positions) {
                    throw Error(TFX_ERR_INVALID_ARGUMENT, "roberta: position " + std::to_string(p) +
                                                              " is beyond max_position_embeddings (" +
                                                              std::to_string(c.max_positions) + ")");
                }
                positions_[t] = static_cast<int32_t>(p);
            }
        }
        View on_device = position_ids_.view(kI32, {b.num_tokens});
        host_.upload(positions_.data(), on_device);
        return on_device;
    }

    View zeros(int64_t n) {
        if (n > zero_count_) {
            const std::vector<int32_t> host_zeros(static_cast<size_t>(n), 0);
            View z = zero_ids_.view(kI32, {n});
            host_.upload(host_zeros.data(), z);
            zero_count_ = n;
        }
        return zero_ids_.view(kI32, {n});
    }

    static void require_f32(const View& v, int64_t elements, const char* what) {
        if (v.dtype() != kF32 || v.numel() != elements) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string("forward: ") + what + " must be f32 with " +
                                                      std::to_string(elements) + " elements");
        }
    }

    void write_outputs(const tfx_forward_args* a, View& x) {
        const auto& c = config_;
        const int64_t b = a->batch->num_seqs, n = a->batch->num_tokens, h = c.hidden_size;
        if (head_ == Head::sequence_classification) {
            View out(*a->output);
            require_f32(out, b * c.num_labels, "output");
            View logits = out.reshape({b, c.num_labels});
            View first = cls_.rows(b, h), dense = pooled_.rows(b, h);
            host_.gather_rows(x, first_tokens(a), first);
            classifier_dense_(first, dense);
            host_.activation(TFX_ACT_TANH, dense, dense);
            classifier_out_(dense, logits);
            return;
        }
        if (head_ == Head::masked_lm) {
            View y = tmp_.rows(n, h);
            mlm_dense_(x, y);
            host_.activation(TFX_ACT_GELU, y, y);  // RobertaLMHead's gelu, whatever hidden_act says
            layer_norm(host_, y, mlm_norm_, c.layer_norm_eps, y);
            output_.write(a, y, &mlm_decoder_, c.vocab_size);
            return;
        }
        output_.write(a, x, nullptr, h);
        if (has_pooler_ && TFX_HAS_FIELD(a, tfx_forward_args, pooled_output) && a->pooled_output != nullptr) {
            View pooled_out(*a->pooled_output);
            require_f32(pooled_out, b * h, "pooled_output");
            View pooled = pooled_out.reshape({b, h}), first = cls_.rows(b, h);
            host_.gather_rows(x, first_tokens(a), first);
            pooler_(first, pooled);
            host_.activation(TFX_ACT_TANH, pooled, pooled);
        }
    }

    Head head_ = Head::base;
    View word_embeddings_, position_embeddings_, token_type_embeddings_;
    LayerNorm embedding_norm_, mlm_norm_;
    std::vector<Layer> layers_;
    bool has_pooler_ = false;
    Linear pooler_, classifier_dense_, classifier_out_, mlm_dense_, mlm_decoder_;
    SelfAttention attn_{host_, config_.num_heads, config_.num_heads, config_.hidden_size / config_.num_heads};
    OutputWriter output_{host_};
    Scratch hidden_{host_}, tmp_{host_}, ffn_{host_}, cls_{host_}, pooled_{host_};
    DeviceBuffer zero_ids_{host_}, position_ids_{host_};
    int64_t zero_count_ = 0;
    std::vector<int32_t> ids_, positions_;
};

}  // namespace

TFX_PLUGIN_EXPORT(Roberta, tfx::sdk::model_table<Roberta>)
