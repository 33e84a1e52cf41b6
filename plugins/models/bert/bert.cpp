// BERT (BertModel, BertForSequenceClassification, BertForMaskedLM), mirroring transformers'
// modeling_bert.py:
//   LayerNorm(word + position + token_type embeddings)
//   -> N x post-norm layers [x = LN(x + attn(x)); x = LN(x + ffn(x))], bidirectional attention
//   -> heads: pooler tanh(dense(x[CLS])) -> classifier; or the MLM transform -> tied decoder.
#include <algorithm>
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

enum class Head { base, sequence_classification, masked_lm };

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
        layer_norm_eps = c.get_or<float>("layer_norm_eps", 1e-12f);
        num_labels = c.has("id2label") ? static_cast<int64_t>(c.json().at("id2label").size()) : c.get_or<int64_t>("num_labels", 2);
        act = tfx::sdk::activation_from(c, "hidden_act", "gelu");
        const std::string position_type = c.get_or<std::string>("position_embedding_type", "absolute");
        if (position_type != "absolute") c.fail("position_embedding_type", "only 'absolute' is supported, got '" + position_type + "'");
        tfx::sdk::require_positive(c, {{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                                       {"num_hidden_layers", num_layers}, {"num_attention_heads", num_heads}});
        if (hidden_size % num_heads != 0) c.fail("num_attention_heads", "must divide hidden_size");
        if (num_labels <= 0) c.fail("id2label", "a classifier needs at least one label");
    }
};

struct LayerNorm {
    View weight, bias;
};

struct Layer {
    Linear query, key, value, attention_output, intermediate, output;
    LayerNorm attention_norm, output_norm;
};

class Bert {
public:
    explicit Bert(const tfx_host_services* services) : host_(services), config_(host_.config()) {}

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
        const auto& c = config_;
        info->output_kind = head_ == Head::masked_lm ? TFX_OUTPUT_LOGITS
                            : head_ == Head::sequence_classification ? TFX_OUTPUT_CLASS_LOGITS
                                                                     : TFX_OUTPUT_HIDDEN_STATE;
        info->vocab_size = static_cast<int32_t>(c.vocab_size);
        info->hidden_size = static_cast<int32_t>(c.hidden_size);
        info->output_size = static_cast<int32_t>(head_ == Head::masked_lm ? c.vocab_size
                                                 : head_ == Head::sequence_classification ? c.num_labels
                                                                                          : c.hidden_size);
        info->num_layers = 0;  // bidirectional encoder: no KV cache
        info->num_kv_heads = static_cast<int32_t>(c.num_heads);
        info->head_dim = static_cast<int32_t>(c.hidden_size / c.num_heads);
        info->max_positions = c.max_positions;
        if (TFX_HAS_FIELD(info, tfx_model_info, has_pooler)) info->has_pooler = has_pooler_ ? 1 : 0;
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t b = a->batch, t = a->tokens, n = b * t, h = c.hidden_size, d = h / c.num_heads;
        if (b <= 0 || t <= 0 || a->input_ids == nullptr || a->positions == nullptr || a->output == nullptr) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: batch, tokens, input_ids, positions and output are required");
        }
        if (a->past_len != 0 || a->cache != nullptr) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "bert: an encoder runs whole sequences (no KV cache, past_len 0)");
        }
        hidden_.resize(n * h), tmp_.resize(n * h), q_.resize(n * h), k_.resize(n * h), v_.resize(n * h), attn_.resize(n * h);
        ffn_.resize(n * c.intermediate_size), ids_.resize(n);

        // Embeddings: word + position + token type, then LayerNorm.
        View x(hidden_.data(), {n, h}), y(tmp_.data(), {n, h});
        host_.embedding(word_embeddings_, View(const_cast<int32_t*>(a->input_ids), tfx::sdk::kI32, {n}), x);
        for (int64_t i = 0; i < n; ++i) {
            if (a->positions[i] < 0 || a->positions[i] >= c.max_positions) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "bert: position " + std::to_string(a->positions[i]) +
                                                          " is beyond max_position_embeddings (" + std::to_string(c.max_positions) + ")");
            }
            ids_[i] = static_cast<int32_t>(a->positions[i]);
        }
        View ids(ids_.data(), tfx::sdk::kI32, {n});
        host_.embedding(position_embeddings_, ids, y);
        host_.add(x, y, x);
        for (int64_t i = 0; i < n; ++i) ids_[i] = a->token_type_ids != nullptr && TFX_HAS_FIELD(a, tfx_forward_args, token_type_ids) ? a->token_type_ids[i] : 0;
        host_.embedding(token_type_embeddings_, ids, y);
        host_.add(x, y, x);
        host_.layer_norm(x, embedding_norm_.weight, &embedding_norm_.bias, c.layer_norm_eps, x);

        View q(q_.data(), {n, h}), k(k_.data(), {n, h}), v(v_.data(), {n, h}), o(attn_.data(), {n, h});
        View ffn(ffn_.data(), {n, c.intermediate_size});
        View q4(q_.data(), {b, t, c.num_heads, d}), k4(k_.data(), {b, t, c.num_heads, d});
        View v4(v_.data(), {b, t, c.num_heads, d}), o4(attn_.data(), {b, t, c.num_heads, d});
        for (int64_t i = 0; i < c.num_layers; ++i) {
            Layer& l = layers_[i];
            l.query(x, q);
            l.key(x, k);
            l.value(x, v);
            tfx::sdk::attend(host_, a, i, {.q = q4, .k = k4, .v = v4, .out = o4, .causal = false});
            l.attention_output(o, y);
            host_.add(y, x, x);
            host_.layer_norm(x, l.attention_norm.weight, &l.attention_norm.bias, c.layer_norm_eps, x);
            l.intermediate(x, ffn);
            host_.activation(c.act, ffn, ffn);
            l.output(ffn, y);
            host_.add(y, x, x);
            host_.layer_norm(x, l.output_norm.weight, &l.output_norm.bias, c.layer_norm_eps, x);
        }
        write_outputs(a, x);
    }

private:
    // Every tensor of the checkpoint, for load() and weight_specs() alike.
    void declare(WeightTable& w) {
        const auto& c = config_;
        const std::string head = host_.task_head({"base", "sequence_classification", "masked_lm"});
        head_ = head == "masked_lm"                 ? Head::masked_lm
                : head == "sequence_classification" ? Head::sequence_classification
                                                    : Head::base;
        const int64_t h = c.hidden_size;
        // Checkpoints of a task model prefix the encoder with "bert."; a bare BertModel does not.
        const std::string pre = w.prefix("bert.", "embeddings.word_embeddings.weight", head_ != Head::base);
        const std::string e = pre + "embeddings.";
        word_embeddings_ = w.tensor(e + "word_embeddings.weight", {c.vocab_size, h});
        position_embeddings_ = w.tensor(e + "position_embeddings.weight", {c.max_positions, h});
        token_type_embeddings_ = w.tensor(e + "token_type_embeddings.weight", {c.type_vocab_size, h});
        embedding_norm_ = layer_norm(w, e + "LayerNorm", h);
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = pre + "encoder.layer." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.query = w.linear(p + "attention.self.query", h, h, true);
            l.key = w.linear(p + "attention.self.key", h, h, true);
            l.value = w.linear(p + "attention.self.value", h, h, true);
            l.attention_output = w.linear(p + "attention.output.dense", h, h, true);
            l.attention_norm = layer_norm(w, p + "attention.output.LayerNorm", h);
            l.intermediate = w.linear(p + "intermediate.dense", c.intermediate_size, h, true);
            l.output = w.linear(p + "output.dense", h, c.intermediate_size, true);
            l.output_norm = layer_norm(w, p + "output.LayerNorm", h);
        }
        // BertForMaskedLM has no pooler; a base model may have been saved without one.
        has_pooler_ = head_ == Head::sequence_classification ||
                      w.has(pre + "pooler.dense.weight", head_ != Head::masked_lm);
        if (has_pooler_) pooler_ = w.linear(pre + "pooler.dense", h, h, true);
        if (head_ == Head::sequence_classification) classifier_ = w.linear("classifier", c.num_labels, h, true);
        if (head_ == Head::masked_lm) {
            mlm_transform_ = w.linear("cls.predictions.transform.dense", h, h, true);
            mlm_norm_ = layer_norm(w, "cls.predictions.transform.LayerNorm", h);
            // The decoder is tied to the word embeddings; its bias is stored on its own.
            const View decoder = w.has("cls.predictions.decoder.weight", false)
                                     ? w.tensor("cls.predictions.decoder.weight", {c.vocab_size, h})
                                     : word_embeddings_;
            mlm_decoder_ = w.pack(decoder, w.f32("cls.predictions.bias", {c.vocab_size}, Init::zeros), true);
        }
    }

    static LayerNorm layer_norm(WeightTable& w, const std::string& name, int64_t dim) {
        return {w.f32(name + ".weight", {dim}), w.f32(name + ".bias", {dim}, Init::zeros)};  // in this order
    }

    // The [CLS] (first) position of every sequence, through the pooler: tanh(dense(x)).
    View pool(const View& x, int64_t b, int64_t t) {
        const int64_t h = config_.hidden_size;
        cls_.resize(b * h), pooled_.resize(b * h);
        for (int64_t i = 0; i < b; ++i) std::copy_n(x.data() + i * t * h, h, cls_.data() + i * h);
        View cls(cls_.data(), {b, h}), pooled(pooled_.data(), {b, h});
        pooler_(cls, pooled);
        host_.activation(TFX_ACT_TANH, pooled, pooled);
        return pooled;
    }

    static void require_f32(const View& v, int64_t elements, const char* what) {
        if (v.dtype() != tfx::sdk::kF32 || v.numel() != elements) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string("forward: ") + what + " must be f32 with " +
                                                      std::to_string(elements) + " elements");
        }
    }

    void write_outputs(const tfx_forward_args* a, View& x) {
        const auto& c = config_;
        const int64_t b = a->batch, t = a->tokens, h = c.hidden_size;
        if (head_ == Head::sequence_classification) {
            View out(*a->output);
            require_f32(out, b * c.num_labels, "output");
            View logits(out.data(), {b, c.num_labels});
            classifier_(pool(x, b, t), logits);
            return;
        }
        if (head_ == Head::masked_lm) {
            // The MLM transform LayerNorm(act(dense(x))), then the decoder.
            View y(tmp_.data(), {b * t, h});
            mlm_transform_(x, y);
            host_.activation(c.act, y, y);
            host_.layer_norm(y, mlm_norm_.weight, &mlm_norm_.bias, c.layer_norm_eps, y);
            output_.write(a, y, &mlm_decoder_, c.vocab_size);
            return;
        }
        output_.write(a, x, nullptr, h);
        if (has_pooler_ && TFX_HAS_FIELD(a, tfx_forward_args, pooled_output) && a->pooled_output != nullptr) {
            View pooled_out(*a->pooled_output);
            require_f32(pooled_out, b * h, "pooled_output");
            View pooled = pool(x, b, t);
            std::copy_n(pooled.data(), b * h, pooled_out.data());
        }
    }

    tfx::sdk::Host host_;
    BertConfig config_;
    Head head_ = Head::base;
    View word_embeddings_, position_embeddings_, token_type_embeddings_;
    LayerNorm embedding_norm_, mlm_norm_;
    std::vector<Layer> layers_;
    bool has_pooler_ = false;
    Linear pooler_, classifier_, mlm_transform_, mlm_decoder_;
    tfx::sdk::OutputWriter output_;
    std::vector<float> hidden_, tmp_, q_, k_, v_, attn_, ffn_, cls_, pooled_;
    std::vector<int32_t> ids_;
};

const tfx_model_table kTable = {
    sizeof(tfx_model_table),
    tfx::sdk::method<&Bert::load>,
    tfx::sdk::method<&Bert::get_info>,
    tfx::sdk::method<&Bert::forward>,
    tfx::sdk::method<&Bert::weight_specs>,
};

}  // namespace

TFX_PLUGIN_EXPORT(Bert, kTable)
