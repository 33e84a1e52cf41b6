// T5 (T5ForConditionalGeneration; T5 v1.0 and v1.1 / Flan-T5), mirroring transformers'
// modeling_t5.py (v4.44):
//   encoder: shared(ids) -> N x pre-norm blocks [x += attn(rms(x)) + bias; x += ffn(rms(x))]
//            -> final rms
//   decoder: shared(ids) -> M x pre-norm blocks [x += causal attn(rms(x)) + bias;
//            x += cross_attn(rms(x), encoder); x += ffn(rms(x))] -> final rms -> lm_head
// RMS norms have no mean and no bias (T5LayerNorm); scores are not scaled by 1/sqrt(d_kv). Each
// stack's first block holds a relative position bias by buckets of key - query distance
// (bidirectional in the encoder, causal in the decoder), reused by every block: handed to the
// attention as a table by distance (ABI 2.6), exact at any length as the buckets stop changing
// at relative_attention_max_distance. Cross-attention has no position bias. A tied lm_head
// scales the decoder's output by d_model^-0.5 first.
#include <cmath>
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

// ---- config.json: every field that changes the math ------------------------------------
struct T5Config {
    int64_t vocab_size, d_model, d_kv, d_ff, num_heads, encoder_layers, decoder_layers;
    int64_t num_buckets, max_distance;
    float eps;
    bool gated, tie_word_embeddings;
    tfx_activation act;

    explicit T5Config(const Config& c)
        : vocab_size(c.get<int64_t>("vocab_size")),
          d_model(c.get<int64_t>("d_model")),
          d_kv(c.get<int64_t>("d_kv")),
          d_ff(c.get<int64_t>("d_ff")),
          num_heads(c.get<int64_t>("num_heads")),
          encoder_layers(c.get<int64_t>("num_layers")),
          decoder_layers(c.get_or<int64_t>("num_decoder_layers", encoder_layers)),
          num_buckets(c.get_or<int64_t>("relative_attention_num_buckets", 32)),
          max_distance(c.get_or<int64_t>("relative_attention_max_distance", 128)),
          eps(c.get_positive<float>("layer_norm_epsilon", 1e-6f)),
          tie_word_embeddings(c.get_or<bool>("tie_word_embeddings", true)) {
        // feed_forward_proj: "relu", "gelu" or "gated-<act>"; T5Config maps "gated-gelu" to
        // gelu_new (dense_act_fn).
        const std::string proj = c.get_or<std::string>("feed_forward_proj", "relu");
        gated = proj.rfind("gated-", 0) == 0;
        const std::string act_name = gated ? proj.substr(6) : proj;
        act = activation_from(c, "dense_act_fn", act_name == "gelu" && gated ? "gelu_new" : act_name.c_str());
        require_positive(c, {{"vocab_size", vocab_size},
                             {"d_model", d_model},
                             {"d_kv", d_kv},
                             {"d_ff", d_ff},
                             {"num_heads", num_heads},
                             {"num_layers", encoder_layers},
                             {"num_decoder_layers", decoder_layers},
                             {"relative_attention_num_buckets", num_buckets},
                             {"relative_attention_max_distance", max_distance}});
        if (num_buckets < 4) c.fail("relative_attention_num_buckets", "must be at least 4");
        if (2 * max_distance + 1 > (int64_t{1} << 20))
            c.fail("relative_attention_max_distance", "is implausibly large");
    }
};

// T5Attention._relative_position_bucket for distance = key position - query position, in
// f32 as torch computes it.
int32_t relative_bucket(int64_t distance, bool bidirectional, int64_t num_buckets, int64_t max_distance) {
    int64_t bucket = 0, n = -distance;
    if (bidirectional) {
        num_buckets /= 2;
        if (n < 0) bucket += num_buckets;
        n = std::abs(n);
    } else {
        n = std::max<int64_t>(n, 0);
    }
    const int64_t max_exact = num_buckets / 2;
    if (n < max_exact) return static_cast<int32_t>(bucket + n);
    const float scaled =
        std::log(static_cast<float>(n) / static_cast<float>(max_exact)) /
        static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact))) *
        static_cast<float>(num_buckets - max_exact);
    return static_cast<int32_t>(bucket + std::min(max_exact + static_cast<int64_t>(scaled), num_buckets - 1));
}

struct Block {
    AttentionWeights self_attn, cross_attn;          // cross_attn: decoder blocks only
    View self_attn_norm, cross_attn_norm, ffn_norm;  // RMS norm weights
    GatedMlp gated_ffn;                              // wi_0 (gate), wi_1 (up), wo
    Mlp ffn;                                         // wi, wo
};

// A stack's position bias: the bucket of each distance in [-span, span] (uploaded once), and
// the table [2 * span + 1, heads] looked up from the first block's bucket embedding.
class PositionBias {
  public:
    PositionBias(const Host& host, const T5Config& c, bool bidirectional)
        : host_(host), config_(c), bidirectional_(bidirectional), buckets_(host), table_(host) {}

    View weight;  // relative_attention_bias.weight [num_buckets, heads]

    // The table for this forward (the same every forward; recomputed as it is cheap).
    View table() {
        const int64_t span = config_.max_distance, rows = 2 * span + 1;
        if (!uploaded_) {
            std::vector<int32_t> ids(static_cast<size_t>(rows));
            for (int64_t d = -span; d <= span; ++d) {
                ids[static_cast<size_t>(d + span)] =
                    relative_bucket(d, bidirectional_, config_.num_buckets, config_.max_distance);
            }
            View view = buckets_.view(kI32, {rows});
            host_.upload(ids.data(), view);
            uploaded_ = true;
        }
        View out = table_.rows(rows, config_.num_heads);
        host_.embedding(weight, buckets_.view(kI32, {rows}), out);
        return out;
    }

  private:
    const Host& host_;
    const T5Config& config_;
    bool bidirectional_, uploaded_ = false;
    DeviceBuffer buckets_;
    Scratch table_;
};

class T5 : public ModelPlugin<T5, T5Config> {
  public:
    using ModelPlugin::ModelPlugin;

    // Every tensor of the checkpoint, for load() and weight_specs() alike.
    void declare(WeightTable& w) {
        const auto& c = config_;
        host_.task_head({"seq2seq_lm"});
        const int64_t d = c.d_model, inner = c.num_heads * c.d_kv;
        shared_ = w.tensor("shared.weight", {c.vocab_size, d});
        auto attention = [&](const std::string& p) {
            return AttentionWeights{w.linear(p + "q", inner, d, false), w.linear(p + "k", inner, d, false),
                                    w.linear(p + "v", inner, d, false), w.linear(p + "o", d, inner, false)};
        };
        auto feed_forward = [&](Block& b, const std::string& p) {
            if (c.gated) {
                b.gated_ffn = {w.linear(p + "wi_0", c.d_ff, d, false), w.linear(p + "wi_1", c.d_ff, d, false),
                               w.linear(p + "wo", d, c.d_ff, false)};
            } else {
                b.ffn = {w.linear(p + "wi", c.d_ff, d, false), w.linear(p + "wo", d, c.d_ff, false)};
            }
        };
        auto norm = [&](const std::string& name) { return w.f32(name + ".weight", {d}); };
        encoder_.resize(static_cast<size_t>(c.encoder_layers));
        for (int64_t i = 0; i < c.encoder_layers; ++i) {
            const std::string p = "encoder.block." + std::to_string(i) + ".layer.";
            Block& b = encoder_[i];
            b.self_attn = attention(p + "0.SelfAttention.");
            b.self_attn_norm = norm(p + "0.layer_norm");
            feed_forward(b, p + "1.DenseReluDense.");
            b.ffn_norm = norm(p + "1.layer_norm");
        }
        decoder_.resize(static_cast<size_t>(c.decoder_layers));
        for (int64_t i = 0; i < c.decoder_layers; ++i) {
            const std::string p = "decoder.block." + std::to_string(i) + ".layer.";
            Block& b = decoder_[i];
            b.self_attn = attention(p + "0.SelfAttention.");
            b.self_attn_norm = norm(p + "0.layer_norm");
            b.cross_attn = attention(p + "1.EncDecAttention.");
            b.cross_attn_norm = norm(p + "1.layer_norm");
            feed_forward(b, p + "2.DenseReluDense.");
            b.ffn_norm = norm(p + "2.layer_norm");
        }
        encoder_bias_.weight = w.tensor("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                                        {c.num_buckets, c.num_heads});
        decoder_bias_.weight = w.tensor("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                                        {c.num_buckets, c.num_heads});
        encoder_final_norm_ = norm("encoder.final_layer_norm");
        decoder_final_norm_ = norm("decoder.final_layer_norm");
        lm_head_ = w.lm_head("lm_head", shared_, c.tie_word_embeddings);
    }

    void get_info(tfx_model_info* info) {
        const auto& c = config_;
        // max_positions 0: relative positions have no table to outgrow.
        encoder_decoder_info(info, {c.vocab_size, c.d_model, c.decoder_layers, c.num_heads, c.d_kv, 0}, true);
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t n = forward_rows(a), d = c.d_model;
        View encoder_states;
        const bool encoding = encodes(a);
        if (encoding) encoder_states = encode(a);
        View x = hidden_.rows(n, d), y = normed_.rows(n, d);
        host_.embedding(shared_, input_ids(a), x);
        const View bias = decoder_bias_.table();
        for (int64_t i = 0; i < c.decoder_layers; ++i) {
            const Block& b = decoder_[i];
            rms(x, b.self_attn_norm, y);
            decoder_attn_.project(b.self_attn, y)
                .attend(a, i, {.scale = 1.0f, .relative_bias = bias, .relative_span = span()})
                .output(b.self_attn, y);
            host_.add(x, y, x);
            rms(x, b.cross_attn_norm, y);
            cross_attn_(a, i, b.cross_attn, y, encoding ? &encoder_states : nullptr, 1.0f, y);
            host_.add(x, y, x);
            feed_forward(b, x, y, inner_, up_);
        }
        rms(x, decoder_final_norm_, y);
        // A tied head scales by d_model^-0.5 first (T5ForConditionalGeneration).
        if (c.tie_word_embeddings) host_.scale(y, 1.0f / std::sqrt(static_cast<float>(d)), y);
        output_.write(a, y, &lm_head_, c.vocab_size);
    }

  private:
    int32_t span() const { return static_cast<int32_t>(config_.max_distance); }

    void rms(const View& x, const View& norm, View& y) const { host_.rms_norm(x, norm, config_.eps, 0.0f, y); }

    // x += ffn(rms(x)) (t: scratch rows like x).
    void feed_forward(const Block& b, View& x, View& t, Scratch& inner, Scratch& up) const {
        rms(x, b.ffn_norm, t);
        if (config_.gated) {
            ffn_gated(host_, b.gated_ffn, config_.act, t, t, inner, up);
        } else {
            ffn(host_, b.ffn, config_.act, t, t, inner);
        }
        host_.add(x, t, x);
    }

    // The encoder over encoder_batch's new tokens; its last hidden state (after the final norm),
    // also copied to encoder_output when given.
    View encode(const tfx_forward_args* a) {
        const auto& c = config_;
        const tfx_batch& eb = *a->encoder_batch;
        const int64_t m = eb.num_tokens, d = c.d_model;
        View e = encoder_hidden_.rows(m, d), t = encoder_normed_.rows(m, d);
        host_.embedding(shared_, encoder_input_ids(a), e);
        const View bias = encoder_bias_.table();
        for (int64_t i = 0; i < c.encoder_layers; ++i) {
            const Block& b = encoder_[i];
            rms(e, b.self_attn_norm, t);
            encoder_attn_.project(b.self_attn, t)
                .attend(a, i,
                        {.scale = 1.0f,
                         .causal = false,
                         .keys = AttentionCall::Keys::encoder,
                         .relative_bias = bias,
                         .relative_span = span()})
                .output(b.self_attn, t);
            host_.add(e, t, e);
            feed_forward(b, e, t, encoder_inner_, encoder_up_);
        }
        View states = encoder_states_.rows(m, d);
        rms(e, encoder_final_norm_, states);
        write_encoder_output(host_, a, states);
        return states;
    }

    View shared_;
    std::vector<Block> encoder_, decoder_;
    View encoder_final_norm_, decoder_final_norm_;
    Linear lm_head_;
    PositionBias encoder_bias_{host_, config_, true}, decoder_bias_{host_, config_, false};
    SelfAttention encoder_attn_{host_, config_.num_heads, config_.num_heads, config_.d_kv};
    SelfAttention decoder_attn_{host_, config_.num_heads, config_.num_heads, config_.d_kv};
    CrossAttention cross_attn_{host_, config_.num_heads, config_.d_kv};
    OutputWriter output_{host_};
    Scratch hidden_{host_}, normed_{host_}, inner_{host_}, up_{host_}, encoder_hidden_{host_}, encoder_normed_{host_},
        encoder_states_{host_}, encoder_inner_{host_}, encoder_up_{host_};
};

}  // namespace

TFX_PLUGIN_EXPORT(T5, tfx::sdk::model_table<T5>)
