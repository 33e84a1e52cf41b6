// DeBERTa-v2 / v3 (DebertaV2Model, DebertaV2ForSequenceClassification), mirroring
// transformers' modeling_deberta_v2.py (v4.44):
//   embeddings: LayerNorm(word (+ position when position_biased_input) (+ token type))
//   N x post-norm layers [x = LN(x + o(attn(x))); x = LN(x + down(act(up(x))))]
//   classification: classifier(act(pooler.dense(x[CLS]))) (ContextPooler)
// Attention is disentangled: besides q·k, a query's content meets the keys of relative
// positions (c2p) and a key's content meets their queries (p2c), all scaled by
// 1/sqrt(head_dim * (1 + number of those terms)). Relative positions i - j go to DeBERTa's log
// buckets (position_buckets), then to rows of the relative embeddings, normalised by the
// encoder's LayerNorm and projected by each layer's key and query projections (share_att_key)
// or its own pos_key_proj / pos_query_proj. The attention plugin receives those relative keys
// and queries and each distance's row (ABI 2.7); distances past max_relative_positions all map
// to the same row, so the table of rows by clamped distance is exact at any length.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tfx/sdk/model.hpp"

namespace {

using namespace tfx::sdk;

enum class Head { base, sequence_classification };

struct DebertaV2Config {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, max_positions, type_vocab_size;
    int64_t num_labels, position_buckets, max_relative_positions, relative_rows;
    float layer_norm_eps;
    bool position_biased_input, share_att_key, c2p, p2c, norm_relative_embeddings;
    tfx_activation act, pooler_act;

    explicit DebertaV2Config(const Config& c) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        max_positions = c.get_or<int64_t>("max_position_embeddings", 512);
        type_vocab_size = c.get_or<int64_t>("type_vocab_size", 0);
        layer_norm_eps = c.get_positive<float>("layer_norm_eps", 1e-7f);
        num_labels = label_count(c);
        act = activation_from(c, "hidden_act", "gelu");
        pooler_act = activation_from(c, "pooler_hidden_act", "gelu");
        position_biased_input = c.get_or<bool>("position_biased_input", true);
        share_att_key = c.get_or<bool>("share_att_key", false);
        if (!c.get_or<bool>("relative_attention", false)) {
            c.fail("relative_attention", "only DeBERTa's relative attention is supported (true)");
        }
        c2p = p2c = false;
        if (c.has("pos_att_type")) {
            for (const auto& t : c.json().at("pos_att_type")) {
                const std::string type = t.is_string() ? t.get<std::string>() : "";
                if (type == "c2p") {
                    c2p = true;
                } else if (type == "p2c") {
                    p2c = true;
                } else {
                    c.fail("pos_att_type", "expected \"c2p\" and/or \"p2c\", got " + t.dump());
                }
            }
        }
        if (!c2p && !p2c)
            c.fail("pos_att_type", "needs \"c2p\" or \"p2c\" (relative attention without them is not supported)");
        const std::string norm = c.get_or<std::string>("norm_rel_ebd", "none");
        norm_relative_embeddings = norm.find("layer_norm") != std::string::npos;
        if (c.get_or<int64_t>("conv_kernel_size", 0) > 0)
            c.fail("conv_kernel_size", "DeBERTa's convolution layer is not supported");
        if (c.get_or<int64_t>("embedding_size", c.get<int64_t>("hidden_size")) != c.get<int64_t>("hidden_size")) {
            c.fail("embedding_size", "must equal hidden_size (the embedding projection is not supported)");
        }
        if (c.has("attention_head_size") &&
            c.get<int64_t>("attention_head_size") * c.get<int64_t>("num_attention_heads") !=
                c.get<int64_t>("hidden_size")) {
            c.fail("attention_head_size", "must be hidden_size / num_attention_heads");
        }
        // DisentangledSelfAttention: max_relative_positions < 1 means max_position_embeddings;
        // the relative embeddings hold 2 x position_buckets rows (else 2 x max_relative_positions).
        max_relative_positions = c.get_or<int64_t>("max_relative_positions", -1);
        if (max_relative_positions < 1) max_relative_positions = max_positions;
        position_buckets = c.get_or<int64_t>("position_buckets", -1);
        relative_rows = 2 * (position_buckets > 0 ? position_buckets : max_relative_positions);
        require_positive(c, {{"vocab_size", vocab_size},
                             {"hidden_size", hidden_size},
                             {"intermediate_size", intermediate_size},
                             {"num_hidden_layers", num_layers},
                             {"num_attention_heads", num_heads},
                             {"max_position_embeddings", max_positions}});
        if (hidden_size % num_heads != 0) c.fail("num_attention_heads", "must divide hidden_size");
        if (type_vocab_size < 0) c.fail("type_vocab_size", "must be >= 0");
        if (max_relative_positions > (int64_t{1} << 20)) c.fail("max_relative_positions", "is implausibly large");
        if (position_buckets == 1) c.fail("position_buckets", "must be at least 2 (or <= 0: none)");
    }
};

// make_log_bucket_position for one relative position i - j, in f32 as torch computes it.
int64_t log_bucket(int64_t relative, int64_t bucket_size, int64_t max_position) {
    const int64_t mid = bucket_size / 2;
    const int64_t abs_pos = relative < mid && relative > -mid ? mid - 1 : std::abs(relative);
    if (abs_pos <= mid) return relative;
    const float log_pos =
        std::ceil(std::log(static_cast<float>(abs_pos) / static_cast<float>(mid)) /
                  std::log(static_cast<float>(static_cast<double>(max_position - 1) / static_cast<double>(mid))) *
                  static_cast<float>(mid - 1)) +
        static_cast<float>(mid);
    return static_cast<int64_t>(log_pos) * (relative < 0 ? -1 : 1);
}

struct Layer {
    AttentionWeights attention;  // attention.self.{query,key,value}_proj, attention.output.dense
    Linear pos_key, pos_query;   // without share_att_key: attention.self.pos_{key,query}_proj
    LayerNorm attention_norm, output_norm;
    Mlp ffn;  // intermediate.dense, output.dense
};

class DebertaV2 : public ModelPlugin<DebertaV2, DebertaV2Config> {
  public:
    using ModelPlugin::ModelPlugin;

    void declare(WeightTable& w) {
        const auto& c = config_;
        const std::string head = host_.task_head({"base", "sequence_classification"});
        head_ = head == "sequence_classification" ? Head::sequence_classification : Head::base;
        const int64_t h = c.hidden_size;
        const std::string pre = w.prefix("deberta.", "embeddings.word_embeddings.weight", head_ != Head::base);
        const std::string e = pre + "embeddings.";
        word_embeddings_ = w.tensor(e + "word_embeddings.weight", {c.vocab_size, h});
        if (c.position_biased_input)
            position_embeddings_ = w.tensor(e + "position_embeddings.weight", {c.max_positions, h});
        if (c.type_vocab_size > 0)
            token_type_embeddings_ = w.tensor(e + "token_type_embeddings.weight", {c.type_vocab_size, h});
        embedding_norm_ = w.layer_norm(e + "LayerNorm", h);
        relative_embeddings_ = w.f32(pre + "encoder.rel_embeddings.weight", {c.relative_rows, h}, Init::normal);
        if (c.norm_relative_embeddings) relative_norm_ = w.layer_norm(pre + "encoder.LayerNorm", h);
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = pre + "encoder.layer." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.attention.q = w.linear(p + "attention.self.query_proj", h, h, true);
            l.attention.k = w.linear(p + "attention.self.key_proj", h, h, true);
            l.attention.v = w.linear(p + "attention.self.value_proj", h, h, true);
            l.attention.o = w.linear(p + "attention.output.dense", h, h, true);
            if (!c.share_att_key) {
                if (c.c2p) l.pos_key = w.linear(p + "attention.self.pos_key_proj", h, h, true);
                if (c.p2c) l.pos_query = w.linear(p + "attention.self.pos_query_proj", h, h, true);
            }
            l.attention_norm = w.layer_norm(p + "attention.output.LayerNorm", h);
            l.ffn.up = w.linear(p + "intermediate.dense", c.intermediate_size, h, true);
            l.ffn.down = w.linear(p + "output.dense", h, c.intermediate_size, true);
            l.output_norm = w.layer_norm(p + "output.LayerNorm", h);
        }
        if (head_ == Head::sequence_classification) {
            pooler_ = w.linear("pooler.dense", h, h, true);
            classifier_ = w.linear("classifier", c.num_labels, h, true);
        }
    }

    void get_info(tfx_model_info* info) {
        const auto& c = config_;
        info->output_kind = head_ == Head::sequence_classification ? TFX_OUTPUT_CLASS_LOGITS : TFX_OUTPUT_HIDDEN_STATE;
        info->vocab_size = static_cast<int32_t>(c.vocab_size);
        info->hidden_size = static_cast<int32_t>(c.hidden_size);
        info->output_size = static_cast<int32_t>(head_ == Head::sequence_classification ? c.num_labels : c.hidden_size);
        info->num_layers = 0;  // bidirectional encoder: no KV cache
        info->num_kv_heads = static_cast<int32_t>(c.num_heads);
        info->head_dim = static_cast<int32_t>(c.hidden_size / c.num_heads);
        // Relative positions reach any length; learned absolute ones stop at their table.
        info->max_positions = c.position_biased_input ? c.max_positions : 0;
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t n = forward_rows(a), h = c.hidden_size, heads = c.num_heads, d = h / heads;
        if (a->cache != nullptr) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "deberta_v2: an encoder runs whole sequences (no KV cache)");
        }
        View x = hidden_.rows(n, h), y = tmp_.rows(n, h);
        host_.embedding(word_embeddings_, input_ids(a), x);
        if (c.position_biased_input) {
            host_.embedding(position_embeddings_,
                            learned_positions(a, c.max_positions, "deberta_v2", "max_position_embeddings"), y);
            host_.add(x, y, x);
        }
        if (c.type_vocab_size > 0) {
            if (a->token_type_ids == nullptr)
                throw Error(TFX_ERR_INVALID_ARGUMENT, "deberta_v2: token_type_ids are required");
            host_.embedding(token_type_embeddings_, View(*a->token_type_ids), y);
            host_.add(x, y, x);
        }
        layer_norm(host_, x, embedding_norm_, c.layer_norm_eps, x);

        // The relative embeddings, normalised once for every layer (get_rel_embedding).
        const int64_t rows = c.relative_rows;
        View relative = c.norm_relative_embeddings ? relative_.rows(rows, h) : relative_embeddings_;
        if (c.norm_relative_embeddings)
            layer_norm(host_, relative_embeddings_, relative_norm_, c.layer_norm_eps, relative);
        const float scale = 1.0f / std::sqrt(static_cast<float>(d * (1 + (c.c2p ? 1 : 0) + (c.p2c ? 1 : 0))));
        const View columns = relative_columns();
        View pos_k = pos_k_.rows(rows, h), pos_q = pos_q_.rows(rows, h);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const Layer& l = layers_[i];
            if (c.c2p) (c.share_att_key ? l.attention.k : l.pos_key)(relative, pos_k);
            if (c.p2c) (c.share_att_key ? l.attention.q : l.pos_query)(relative, pos_q);
            attn_.project(l.attention, x)
                .attend(a, i,
                        {.scale = scale,
                         .causal = false,
                         .relative_span = span(),
                         .relative_k = c.c2p ? pos_k.reshape({rows, heads, d}) : View(),
                         .relative_q = c.p2c ? pos_q.reshape({rows, heads, d}) : View(),
                         .relative_columns = columns})
                .output(l.attention, y);
            host_.add(y, x, x);
            layer_norm(host_, x, l.attention_norm, c.layer_norm_eps, x);
            ffn(host_, l.ffn, c.act, x, y, ffn_);
            host_.add(y, x, x);
            layer_norm(host_, x, l.output_norm, c.layer_norm_eps, x);
        }
        write_outputs(a, x);
    }

  private:
    // The distance past which every relative position maps to the same row (the first or the last).
    int32_t span() const { return static_cast<int32_t>(config_.max_relative_positions); }

    // The relative-embedding row of each key - query distance in [-span, span] (uploaded once):
    // clamp(bucket(i - j) + rows / 2, 0, rows - 1), as both of DeBERTa's gathers index.
    View relative_columns() {
        const auto& c = config_;
        const int64_t s = span(), count = 2 * s + 1, half = c.relative_rows / 2;
        View view = columns_.view(kI32, {count});
        if (!columns_uploaded_) {
            std::vector<int32_t> rows(static_cast<size_t>(count));
            for (int64_t distance = -s; distance <= s; ++distance) {
                const int64_t relative = -distance;  // query - key
                const int64_t bucket = c.position_buckets > 0
                                           ? log_bucket(relative, c.position_buckets, c.max_relative_positions)
                                           : relative;
                rows[static_cast<size_t>(distance + s)] =
                    static_cast<int32_t>(std::clamp(bucket + half, int64_t{0}, c.relative_rows - 1));
            }
            host_.upload(rows.data(), view);
            columns_uploaded_ = true;
        }
        return view;
    }

    void write_outputs(const tfx_forward_args* a, View& x) {
        const auto& c = config_;
        const int64_t b = a->batch->num_seqs, h = c.hidden_size;
        if (head_ == Head::sequence_classification) {
            View out(*a->output);
            if (out.dtype() != kF32 || out.numel() != b * c.num_labels) {
                throw Error(TFX_ERR_INVALID_ARGUMENT,
                            "forward: output must be f32 with " + std::to_string(b * c.num_labels) + " elements");
            }
            View logits = out.reshape({b, c.num_labels});
            View first = cls_.rows(b, h), pooled = pooled_.rows(b, h);
            host_.gather_rows(x, first_tokens(a), first);  // ContextPooler: the first token
            pooler_(first, pooled);
            host_.activation(c.pooler_act, pooled, pooled);
            classifier_(pooled, logits);
            return;
        }
        output_.write(a, x, nullptr, h);
    }

    Head head_ = Head::base;
    View word_embeddings_, position_embeddings_, token_type_embeddings_, relative_embeddings_;
    LayerNorm embedding_norm_, relative_norm_;
    std::vector<Layer> layers_;
    Linear pooler_, classifier_;
    SelfAttention attn_{host_, config_.num_heads, config_.num_heads, config_.hidden_size / config_.num_heads};
    OutputWriter output_{host_};
    Scratch hidden_{host_}, tmp_{host_}, ffn_{host_}, cls_{host_}, pooled_{host_}, relative_{host_}, pos_k_{host_},
        pos_q_{host_};
    DeviceBuffer columns_{host_};
    bool columns_uploaded_ = false;
};

}  // namespace

TFX_PLUGIN_EXPORT(DebertaV2, tfx::sdk::model_table<DebertaV2>)
