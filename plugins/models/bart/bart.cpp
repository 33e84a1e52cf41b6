// BART (BartForConditionalGeneration, BartModel), mirroring transformers' modeling_bart.py
// (v4.44):
//   encoder: LN(shared(ids) * embed_scale + positions[p + 2]) -> N x post-norm layers
//            [x = LN(x + self_attn(x)); x = LN(x + fc2(act(fc1(x))))], bidirectional
//   decoder: the same embeddings -> M x post-norm layers [x = LN(x + causal self_attn(x));
//            x = LN(x + cross_attn(x, encoder)); x = LN(x + ffn(x))] -> lm_head + final_logits_bias
// The learned position tables have 2 rows before position 0 (BartLearnedPositionalEmbedding's
// offset). The encoder runs on the call that brings its tokens (ABI 2.5); each decoder layer's
// cross-attention keys and values of the encoder's states go to the cross cache then, and later
// calls read them from it.
#include <cmath>
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

// ---- config.json: every field that changes the math ------------------------------------
struct BartConfig {
    int64_t vocab_size, d_model, max_positions;
    int64_t encoder_layers, encoder_heads, encoder_ffn, decoder_layers, decoder_heads, decoder_ffn;
    bool scale_embedding, tie_word_embeddings;
    tfx_activation act;

    explicit BartConfig(const Config& c)
        : vocab_size(c.get<int64_t>("vocab_size")),
          d_model(c.get<int64_t>("d_model")),
          max_positions(c.get<int64_t>("max_position_embeddings")),
          encoder_layers(c.get<int64_t>("encoder_layers")),
          encoder_heads(c.get<int64_t>("encoder_attention_heads")),
          encoder_ffn(c.get<int64_t>("encoder_ffn_dim")),
          decoder_layers(c.get<int64_t>("decoder_layers")),
          decoder_heads(c.get<int64_t>("decoder_attention_heads")),
          decoder_ffn(c.get<int64_t>("decoder_ffn_dim")),
          scale_embedding(c.get_or<bool>("scale_embedding", false)),
          tie_word_embeddings(c.get_or<bool>("tie_word_embeddings", true)),
          act(activation_from(c, "activation_function", "gelu")) {
        require_positive(c, {{"vocab_size", vocab_size},
                             {"d_model", d_model},
                             {"max_position_embeddings", max_positions},
                             {"encoder_layers", encoder_layers},
                             {"encoder_attention_heads", encoder_heads},
                             {"encoder_ffn_dim", encoder_ffn},
                             {"decoder_layers", decoder_layers},
                             {"decoder_attention_heads", decoder_heads},
                             {"decoder_ffn_dim", decoder_ffn}});
        if (d_model % encoder_heads != 0) c.fail("encoder_attention_heads", "must divide d_model");
        if (d_model % decoder_heads != 0) c.fail("decoder_attention_heads", "must divide d_model");
    }
};

// BartLearnedPositionalEmbedding: position p reads row p + 2.
constexpr int64_t kPositionOffset = 2;

struct EncoderLayer {
    AttentionWeights self_attn;
    LayerNorm self_attn_norm, final_norm;
    Mlp ffn;  // fc1, fc2
};

struct DecoderLayer {
    AttentionWeights self_attn, cross_attn;  // self_attn, encoder_attn
    LayerNorm self_attn_norm, cross_attn_norm, final_norm;
    Mlp ffn;
};

class Bart : public ModelPlugin<Bart, BartConfig> {
  public:
    using ModelPlugin::ModelPlugin;

    // Every tensor of the checkpoint, for load() and weight_specs() alike.
    void declare(WeightTable& w) {
        const auto& c = config_;
        seq2seq_ = host_.task_head({"seq2seq_lm", "base"}) == "seq2seq_lm";
        const int64_t d = c.d_model;
        // BartForConditionalGeneration nests the model under "model."; BartModel does not.
        const std::string pre = w.prefix("model.", "shared.weight", seq2seq_);
        shared_ = w.tensor(pre + "shared.weight", {c.vocab_size, d});
        encoder_positions_ = w.tensor(pre + "encoder.embed_positions.weight", {c.max_positions + kPositionOffset, d});
        decoder_positions_ = w.tensor(pre + "decoder.embed_positions.weight", {c.max_positions + kPositionOffset, d});
        encoder_embedding_norm_ = w.layer_norm(pre + "encoder.layernorm_embedding", d);
        decoder_embedding_norm_ = w.layer_norm(pre + "decoder.layernorm_embedding", d);
        auto attention = [&](const std::string& p) {
            return AttentionWeights{w.linear(p + "q_proj", d, d, true), w.linear(p + "k_proj", d, d, true),
                                    w.linear(p + "v_proj", d, d, true), w.linear(p + "out_proj", d, d, true)};
        };
        encoder_.resize(static_cast<size_t>(c.encoder_layers));
        for (int64_t i = 0; i < c.encoder_layers; ++i) {
            const std::string p = pre + "encoder.layers." + std::to_string(i) + ".";
            EncoderLayer& l = encoder_[i];
            l.self_attn = attention(p + "self_attn.");
            l.self_attn_norm = w.layer_norm(p + "self_attn_layer_norm", d);
            l.ffn.up = w.linear(p + "fc1", c.encoder_ffn, d, true);
            l.ffn.down = w.linear(p + "fc2", d, c.encoder_ffn, true);
            l.final_norm = w.layer_norm(p + "final_layer_norm", d);
        }
        decoder_.resize(static_cast<size_t>(c.decoder_layers));
        for (int64_t i = 0; i < c.decoder_layers; ++i) {
            const std::string p = pre + "decoder.layers." + std::to_string(i) + ".";
            DecoderLayer& l = decoder_[i];
            l.self_attn = attention(p + "self_attn.");
            l.self_attn_norm = w.layer_norm(p + "self_attn_layer_norm", d);
            l.cross_attn = attention(p + "encoder_attn.");
            l.cross_attn_norm = w.layer_norm(p + "encoder_attn_layer_norm", d);
            l.ffn.up = w.linear(p + "fc1", c.decoder_ffn, d, true);
            l.ffn.down = w.linear(p + "fc2", d, c.decoder_ffn, true);
            l.final_norm = w.layer_norm(p + "final_layer_norm", d);
        }
        if (seq2seq_) {
            // lm_head is tied to the shared embeddings (unless tie_word_embeddings is false); the
            // logits add final_logits_bias, a [1, vocab] buffer.
            const View bias = w.f32("final_logits_bias", {1, c.vocab_size}, Init::zeros);
            const View head = c.tie_word_embeddings ? shared_ : w.tensor("lm_head.weight", {c.vocab_size, d});
            lm_head_ = w.pack(head, w.describing() ? View() : bias.reshape({c.vocab_size}), true);
        }
    }

    void get_info(tfx_model_info* info) {
        const auto& c = config_;
        encoder_decoder_info(
            info,
            {c.vocab_size, c.d_model, c.decoder_layers, c.decoder_heads, c.d_model / c.decoder_heads, c.max_positions},
            seq2seq_);
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t n = forward_rows(a), d = c.d_model;
        View encoder_states;
        const bool encoding = encodes(a);
        if (encoding) encoder_states = encode(a);
        View x = hidden_.rows(n, d), y = tmp_.rows(n, d);
        embed(input_ids(a), *a->batch, decoder_positions_, decoder_embedding_norm_, x, y);
        const float scale = 1.0f / std::sqrt(static_cast<float>(d / c.decoder_heads));
        for (int64_t i = 0; i < c.decoder_layers; ++i) {
            const DecoderLayer& l = decoder_[i];
            decoder_attn_.project(l.self_attn, x).attend(a, i, {.scale = scale}).output(l.self_attn, y);
            add_and_norm(x, y, l.self_attn_norm);
            cross_attn_(a, i, l.cross_attn, x, encoding ? &encoder_states : nullptr, scale, y);
            add_and_norm(x, y, l.cross_attn_norm);
            ffn(host_, l.ffn, c.act, x, y, inner_);
            add_and_norm(x, y, l.final_norm);
        }
        output_.write(a, x, seq2seq_ ? &lm_head_ : nullptr, seq2seq_ ? c.vocab_size : d);
    }

  private:
    // The encoder over encoder_batch's new tokens; its last hidden state, also copied to
    // encoder_output when given.
    View encode(const tfx_forward_args* a) {
        const auto& c = config_;
        const tfx_batch& b = *a->encoder_batch;
        const int64_t m = b.num_tokens, d = c.d_model;
        View e = encoder_hidden_.rows(m, d), t = encoder_tmp_.rows(m, d);
        embed(encoder_input_ids(a), b, encoder_positions_, encoder_embedding_norm_, e, t);
        const float scale = 1.0f / std::sqrt(static_cast<float>(d / c.encoder_heads));
        for (int64_t i = 0; i < c.encoder_layers; ++i) {
            const EncoderLayer& l = encoder_[i];
            encoder_attn_.project(l.self_attn, e)
                .attend(a, i, {.scale = scale, .causal = false, .keys = AttentionCall::Keys::encoder})
                .output(l.self_attn, t);
            add_and_norm(e, t, l.self_attn_norm);
            ffn(host_, l.ffn, c.act, e, t, encoder_inner_);
            add_and_norm(e, t, l.final_norm);
        }
        write_encoder_output(host_, a, e);
        return e;
    }

    // x = LN(shared(ids) * embed_scale + positions[p + 2]) for the batch's tokens (t: scratch).
    void embed(const View& ids, const tfx_batch& b, const View& position_table, const LayerNorm& norm, View& x,
               View& t) const {
        const auto& c = config_;
        for (int32_t i = 0; i < b.num_tokens; ++i) {
            if (b.positions[i] < 0 || b.positions[i] >= c.max_positions) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "bart: position " + std::to_string(b.positions[i]) +
                                                          " is beyond max_position_embeddings (" +
                                                          std::to_string(c.max_positions) + ")");
            }
        }
        host_.embedding(shared_, ids, x);
        if (c.scale_embedding) host_.scale(x, std::sqrt(static_cast<float>(c.d_model)), x);
        const View table = position_table.at(kPositionOffset * c.d_model, {c.max_positions, c.d_model});
        host_.embedding(table, View(*b.positions_dev), t);
        host_.add(x, t, x);
        layer_norm(host_, x, norm, kLayerNormEps, x);
    }

    // Post-norm residual: x = LN(x + y).
    void add_and_norm(View& x, const View& y, const LayerNorm& norm) const {
        host_.add(x, y, x);
        layer_norm(host_, x, norm, kLayerNormEps, x);
    }

    static constexpr float kLayerNormEps = 1e-5f;  // nn.LayerNorm's default; BART's config has no field

    bool seq2seq_ = true;
    View shared_, encoder_positions_, decoder_positions_;
    LayerNorm encoder_embedding_norm_, decoder_embedding_norm_;
    std::vector<EncoderLayer> encoder_;
    std::vector<DecoderLayer> decoder_;
    Linear lm_head_;
    SelfAttention encoder_attn_{host_, config_.encoder_heads, config_.encoder_heads,
                                config_.d_model / config_.encoder_heads};
    SelfAttention decoder_attn_{host_, config_.decoder_heads, config_.decoder_heads,
                                config_.d_model / config_.decoder_heads};
    CrossAttention cross_attn_{host_, config_.decoder_heads, config_.d_model / config_.decoder_heads};
    OutputWriter output_{host_};
    Scratch hidden_{host_}, tmp_{host_}, inner_{host_}, encoder_hidden_{host_}, encoder_tmp_{host_},
        encoder_inner_{host_};
};

}  // namespace

TFX_PLUGIN_EXPORT(Bart, tfx::sdk::model_table<Bart>)
