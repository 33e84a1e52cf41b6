// BERT (BertModel, BertForSequenceClassification, BertForMaskedLM, BertForTokenClassification,
// BertForQuestionAnswering), mirroring transformers' modeling_bert.py:
//   LayerNorm(word + position + token_type embeddings)
//   -> N x post-norm layers [x = LN(x + attn(x)); x = LN(x + ffn(x))], bidirectional attention
//   -> heads: pooler tanh(dense(x[CLS])) -> classifier; or the MLM transform -> tied decoder; or
//      per token: classifier (token classification), qa_outputs (start and end logits).
#include <algorithm>
#include <string>
#include <vector>

#include "tfx/sdk/model.hpp"

namespace {

using namespace tfx::sdk;

enum class Head { base, sequence_classification, masked_lm, token_classification, question_answering };

// ---- config.json ---------------------------------------------------------------------------
struct BertConfig {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, max_positions, type_vocab_size;
    int64_t num_labels;
    float layer_norm_eps;
    tfx_activation act;

    explicit BertConfig(const Config& c) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        max_positions = c.get_or<int64_t>("max_position_embeddings", 512);
        type_vocab_size = c.get_or<int64_t>("type_vocab_size", 2);
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
    }
};

struct Layer {
    AttentionWeights attention;  // attention.self.{query, key, value}, attention.output.dense
    LayerNorm attention_norm, output_norm;
    Mlp ffn;  // intermediate.dense, output.dense
};

class Bert : public ModelPlugin<Bert, BertConfig> {
  public:
    using ModelPlugin::ModelPlugin;

    // Every tensor of the checkpoint, for load() and weight_specs() alike.
    void declare(WeightTable& w) {
        const auto& c = config_;
        const std::string head = host_.task_head(
            {"base", "sequence_classification", "masked_lm", "token_classification", "question_answering"});
        head_ = head == "masked_lm"                 ? Head::masked_lm
                : head == "sequence_classification" ? Head::sequence_classification
                : head == "token_classification"    ? Head::token_classification
                : head == "question_answering"      ? Head::question_answering
                                                    : Head::base;
        const int64_t h = c.hidden_size;
        // Checkpoints of a task model prefix the encoder with "bert."; a bare BertModel does not.
        const std::string pre = w.prefix("bert.", "embeddings.word_embeddings.weight", head_ != Head::base);
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
        // BertForMaskedLM and the per-token heads have no pooler; a base model may have been saved
        // without one.
        const bool per_token = head_ == Head::token_classification || head_ == Head::question_answering;
        has_pooler_ = head_ == Head::sequence_classification ||
                      (!per_token && w.has(pre + "pooler.dense.weight", head_ != Head::masked_lm));
        if (has_pooler_) pooler_ = w.linear(pre + "pooler.dense", h, h, true);
        if (head_ == Head::sequence_classification || head_ == Head::token_classification)
            classifier_ = w.linear("classifier", c.num_labels, h, true);
        if (head_ == Head::question_answering) classifier_ = w.linear("qa_outputs", 2, h, true);
        if (head_ == Head::masked_lm) {
            mlm_transform_ = w.linear("cls.predictions.transform.dense", h, h, true);
            mlm_norm_ = w.layer_norm("cls.predictions.transform.LayerNorm", h);
            // The decoder is tied to the word embeddings; its bias is stored on its own.
            const View decoder = w.has("cls.predictions.decoder.weight", false)
                                     ? w.tensor("cls.predictions.decoder.weight", {c.vocab_size, h})
                                     : word_embeddings_;
            mlm_decoder_ = w.pack(decoder, w.f32("cls.predictions.bias", {c.vocab_size}, Init::zeros), true);
        }
    }

    void get_info(tfx_model_info* info) {
        const auto& c = config_;
        // Per-token heads give logits rows: labels per token, or (start, end) per token.
        info->output_kind = head_ == Head::sequence_classification ? TFX_OUTPUT_CLASS_LOGITS
                            : head_ == Head::base                  ? TFX_OUTPUT_HIDDEN_STATE
                                                                   : TFX_OUTPUT_LOGITS;
        info->vocab_size = static_cast<int32_t>(c.vocab_size);
        info->hidden_size = static_cast<int32_t>(c.hidden_size);
        info->output_size = static_cast<int32_t>(head_output_size());
        info->num_layers = 0;  // bidirectional encoder: no KV cache
        info->num_kv_heads = static_cast<int32_t>(c.num_heads);
        info->head_dim = static_cast<int32_t>(c.hidden_size / c.num_heads);
        info->max_positions = c.max_positions;
        if (TFX_HAS_FIELD(info, tfx_model_info, has_pooler)) info->has_pooler = has_pooler_ ? 1 : 0;
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t n = forward_rows(a), h = c.hidden_size;
        if (a->cache != nullptr) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "bert: an encoder runs whole sequences (no KV cache)");
        }
        // Embeddings: word + position + token type, then LayerNorm.
        View x = hidden_.rows(n, h), y = tmp_.rows(n, h);
        host_.embedding(word_embeddings_, input_ids(a), x);
        host_.embedding(position_embeddings_, learned_positions(a, c.max_positions, "bert", "max_position_embeddings"),
                        y);
        host_.add(x, y, x);
        host_.embedding(token_type_embeddings_, a->token_type_ids != nullptr ? View(*a->token_type_ids) : zeros(n), y);
        host_.add(x, y, x);
        layer_norm(host_, x, embedding_norm_, c.layer_norm_eps, x);

        // Post-norm layers: x = LN(x + attn(x)); x = LN(x + ffn(x)), attention bidirectional.
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
    // Token type 0 for `n` tokens (no token_type_ids given), on the device: uploaded when it grows.
    View zeros(int64_t n) {
        if (n > zero_count_) {
            const std::vector<int32_t> host_zeros(static_cast<size_t>(n), 0);
            View z = zero_ids_.view(kI32, {n});
            host_.upload(host_zeros.data(), z);
            zero_count_ = n;
        }
        return zero_ids_.view(kI32, {n});
    }

    // The [CLS] (first) token of every sequence, through the pooler: tanh(dense(x)), into `pooled`.
    void pool(const tfx_forward_args* a, const View& x, View& pooled) {
        View cls = cls_.rows(a->batch->num_seqs, config_.hidden_size);
        host_.gather_rows(x, first_tokens(a), cls);
        pooler_(cls, pooled);
        host_.activation(TFX_ACT_TANH, pooled, pooled);
    }

    int64_t head_output_size() const {
        switch (head_) {
            case Head::masked_lm:
                return config_.vocab_size;
            case Head::sequence_classification:
            case Head::token_classification:
                return config_.num_labels;
            case Head::question_answering:
                return 2;  // start and end logits
            default:
                return config_.hidden_size;
        }
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
            View logits = out.reshape({b, c.num_labels}), pooled = pooled_.rows(b, h);
            pool(a, x, pooled);
            classifier_(pooled, logits);
            return;
        }
        if (head_ == Head::masked_lm) {
            // The MLM transform LayerNorm(act(dense(x))), then the decoder.
            View y = tmp_.rows(n, h);
            mlm_transform_(x, y);
            host_.activation(c.act, y, y);
            layer_norm(host_, y, mlm_norm_, c.layer_norm_eps, y);
            output_.write(a, y, &mlm_decoder_, c.vocab_size);
            return;
        }
        if (head_ == Head::token_classification || head_ == Head::question_answering) {
            output_.write(a, x, &classifier_, head_output_size());
            return;
        }
        output_.write(a, x, nullptr, h);
        if (has_pooler_ && TFX_HAS_FIELD(a, tfx_forward_args, pooled_output) && a->pooled_output != nullptr) {
            View pooled_out(*a->pooled_output);
            require_f32(pooled_out, b * h, "pooled_output");
            View pooled = pooled_out.reshape({b, h});
            pool(a, x, pooled);
        }
    }

    Head head_ = Head::base;
    View word_embeddings_, position_embeddings_, token_type_embeddings_;
    LayerNorm embedding_norm_, mlm_norm_;
    std::vector<Layer> layers_;
    bool has_pooler_ = false;
    Linear pooler_, classifier_, mlm_transform_, mlm_decoder_;
    SelfAttention attn_{host_, config_.num_heads, config_.num_heads, config_.hidden_size / config_.num_heads};
    OutputWriter output_{host_};
    Scratch hidden_{host_}, tmp_{host_}, ffn_{host_}, cls_{host_}, pooled_{host_};
    DeviceBuffer zero_ids_{host_};
    int64_t zero_count_ = 0;
};

}  // namespace

TFX_PLUGIN_EXPORT(Bert, tfx::sdk::model_table<Bert>)
