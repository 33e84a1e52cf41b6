// Whisper (WhisperForConditionalGeneration, WhisperModel), mirroring transformers'
// modeling_whisper.py (v4.44):
//   encoder: gelu(conv2(gelu(conv1(input_features)))) + embed_positions -> N x pre-norm layers
//            [x += self_attn(LN(x)); x += fc2(act(fc1(LN(x))))], bidirectional -> LN
//   decoder: embed_tokens(ids) + embed_positions[p] -> M x pre-norm layers [x += causal
//            self_attn(LN(x)); x += cross_attn(LN(x), encoder); x += ffn(LN(x))] -> LN -> proj_out
// The encoder reads f32 [num_mel_bins, 2 * max_source_positions] log-mel features (ABI 2.9:
// tfx_forward_args.input_features), of which conv2 (stride 2) makes max_source_positions
// tokens; the stem's activation is always exact gelu (activation_function is the layers').
// k_proj has no bias. proj_out is tied to embed_tokens unless tie_word_embeddings is false.
// Like transformers, the model never multiplies by embed_scale (scale_embedding is read by no
// forward).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

// ---- config.json: every field that changes the math ------------------------------------
struct WhisperConfig {
    int64_t vocab_size, d_model, num_mel_bins, max_source_positions, max_target_positions;
    int64_t encoder_layers, encoder_heads, encoder_ffn, decoder_layers, decoder_heads, decoder_ffn;
    bool tie_word_embeddings;
    tfx_activation act;

    explicit WhisperConfig(const Config& c)
        : vocab_size(c.get<int64_t>("vocab_size")),
          d_model(c.get<int64_t>("d_model")),
          num_mel_bins(c.get_or<int64_t>("num_mel_bins", 80)),
          max_source_positions(c.get_or<int64_t>("max_source_positions", 1500)),
          max_target_positions(c.get_or<int64_t>("max_target_positions", 448)),
          encoder_layers(c.get<int64_t>("encoder_layers")),
          encoder_heads(c.get<int64_t>("encoder_attention_heads")),
          encoder_ffn(c.get<int64_t>("encoder_ffn_dim")),
          decoder_layers(c.get<int64_t>("decoder_layers")),
          decoder_heads(c.get<int64_t>("decoder_attention_heads")),
          decoder_ffn(c.get<int64_t>("decoder_ffn_dim")),
          tie_word_embeddings(c.get_or<bool>("tie_word_embeddings", true)),
          act(activation_from(c, "activation_function", "gelu")) {
        require_positive(c, {{"vocab_size", vocab_size},
                             {"d_model", d_model},
                             {"num_mel_bins", num_mel_bins},
                             {"max_source_positions", max_source_positions},
                             {"max_target_positions", max_target_positions},
                             {"encoder_layers", encoder_layers},
                             {"encoder_attention_heads", encoder_heads},
                             {"encoder_ffn_dim", encoder_ffn},
                             {"decoder_layers", decoder_layers},
                             {"decoder_attention_heads", decoder_heads},
                             {"decoder_ffn_dim", decoder_ffn}});
        if (d_model % encoder_heads != 0) c.fail("encoder_attention_heads", "must divide d_model");
        if (d_model % decoder_heads != 0) c.fail("decoder_attention_heads", "must divide d_model");
        // The convolution stem gathers one sequence's windows with i32 indices.
        // (Each factor bounded first, so the product cannot overflow.)
        if (max_source_positions > (int64_t{1} << 24) || std::max(num_mel_bins, d_model) > (int64_t{1} << 24) ||
            frames() * std::max(num_mel_bins, d_model) * 3 >= std::numeric_limits<int32_t>::max()) {
            c.fail("max_source_positions", "with num_mel_bins and d_model, makes convolution windows past 2^31 values");
        }
    }

    int64_t frames() const { return 2 * max_source_positions; }  // the input features' length
};

// Whisper's two 1-d convolutions (kernel 3, padding 1; stride 1 then 2, each followed by exact
// gelu, as transformers hard-codes it) as the backend's gather_rows and linear, so no backend
// needs a convolution op: each output frame's window (every input channel x 3 taps, in the conv
// weight's [out, in, k] order) is gathered into a row, and one linear layer with the conv weight
// as [out, in * 3] maps the rows. Taps before the first or past the last frame read a zero
// stored after the input. One sequence at a time, so the scratch and the i32 indices stay the
// size of one sequence's windows whatever the batch.
class ConvolutionStem {
  public:
    ConvolutionStem(const Host& host, int64_t bins, int64_t frames, int64_t width)
        : host_(host), bins_(bins), frames_(frames), width_(width) {}

    // out [seqs * frames / 2, width] from features [seqs, bins, frames].
    void operator()(const View& features, const Linear& conv1, const Linear& conv2, View& out) {
        const int64_t tokens = frames_ / 2, in_values = bins_ * frames_, mid_values = frames_ * width_;
        upload_indices();
        for (int64_t s = 0; s < features.dim(0); ++s) {
            // conv1 over the sequence's features, channel-major, with the zero after them.
            View input = input_.rows(in_values + 1, 1);
            View input_values = input.at(0, {in_values, 1});
            host_.copy(features.at(s * in_values, {in_values, 1}), input_values);
            write_zero(input.at(in_values, {1, 1}));
            View windows = windows_.rows(frames_ * bins_ * kTaps, 1);
            host_.gather_rows(input, conv1_windows_.view(kI32, {windows.dim(0)}), windows);
            // Its output is frame-major [frames, width], again with a zero after it.
            View mid = mid_.rows(mid_values + 1, 1);
            View mid_rows = mid.at(0, {frames_, width_});
            conv1(windows.reshape({frames_, bins_ * kTaps}), mid_rows);
            host_.activation(TFX_ACT_GELU, mid_rows, mid_rows);
            write_zero(mid.at(mid_values, {1, 1}));
            View windows2 = windows_.rows(tokens * width_ * kTaps, 1);
            host_.gather_rows(mid, conv2_windows_.view(kI32, {windows2.dim(0)}), windows2);
            View sequence_out = out.at(s * tokens * width_, {tokens, width_});
            conv2(windows2.reshape({tokens, width_ * kTaps}), sequence_out);
            host_.activation(TFX_ACT_GELU, sequence_out, sequence_out);
        }
    }

  private:
    static constexpr int64_t kTaps = 3;

    void write_zero(View dst) const {
        const float zero = 0.0f;
        host_.upload(&zero, dst);
    }

    // One sequence's window indices, uploaded once.
    void upload_indices() {
        if (indexed_) return;
        const int64_t tokens = frames_ / 2, first_zero = bins_ * frames_, second_zero = frames_ * width_;
        std::vector<int32_t> first, second;
        for (int64_t t = 0; t < frames_; ++t) {  // conv1: stride 1, input [bins, frames]
            for (int64_t c = 0; c < bins_; ++c) {
                for (int64_t k = 0; k < kTaps; ++k) {
                    const int64_t f = t + k - 1;
                    first.push_back(static_cast<int32_t>(f < 0 || f >= frames_ ? first_zero : c * frames_ + f));
                }
            }
        }
        for (int64_t t = 0; t < tokens; ++t) {  // conv2: stride 2, input [frames, width]
            for (int64_t c = 0; c < width_; ++c) {
                for (int64_t k = 0; k < kTaps; ++k) {
                    const int64_t f = 2 * t + k - 1;
                    second.push_back(static_cast<int32_t>(f < 0 || f >= frames_ ? second_zero : f * width_ + c));
                }
            }
        }
        View first_view = conv1_windows_.view(kI32, {static_cast<int64_t>(first.size())});
        View second_view = conv2_windows_.view(kI32, {static_cast<int64_t>(second.size())});
        host_.upload(first.data(), first_view);
        host_.upload(second.data(), second_view);
        indexed_ = true;
    }

    const Host& host_;
    int64_t bins_, frames_, width_;
    Scratch input_{host_}, windows_{host_}, mid_{host_};
    DeviceBuffer conv1_windows_{host_}, conv2_windows_{host_};
    bool indexed_ = false;
};

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

class Whisper : public ModelPlugin<Whisper, WhisperConfig> {
  public:
    using ModelPlugin::ModelPlugin;

    // Every tensor of the checkpoint, for load() and weight_specs() alike.
    void declare(WeightTable& w) {
        const auto& c = config_;
        seq2seq_ = host_.task_head({"seq2seq_lm", "base"}) == "seq2seq_lm";
        const int64_t d = c.d_model;
        // WhisperForConditionalGeneration nests the model under "model."; WhisperModel does not.
        const std::string pre = w.prefix("model.", "decoder.embed_tokens.weight", seq2seq_);
        auto convolution = [&](const std::string& name, int64_t in) {
            const View weight = w.tensor(name + ".weight", {d, in, 3});
            return w.pack(weight.reshape({d, in * 3}), w.f32(name + ".bias", {d}, Init::zeros), true);
        };
        conv1_ = convolution(pre + "encoder.conv1", c.num_mel_bins);
        conv2_ = convolution(pre + "encoder.conv2", d);
        encoder_positions_ = w.tensor(pre + "encoder.embed_positions.weight", {c.max_source_positions, d});
        embed_tokens_ = w.tensor(pre + "decoder.embed_tokens.weight", {c.vocab_size, d});
        decoder_positions_ = w.tensor(pre + "decoder.embed_positions.weight", {c.max_target_positions, d});
        auto attention = [&](const std::string& p) {
            return AttentionWeights{w.linear(p + "q_proj", d, d, true), w.linear(p + "k_proj", d, d, false),
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
        encoder_norm_ = w.layer_norm(pre + "encoder.layer_norm", d);
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
        decoder_norm_ = w.layer_norm(pre + "decoder.layer_norm", d);
        if (seq2seq_) {
            lm_head_ = w.pack(c.tie_word_embeddings ? embed_tokens_ : w.tensor("proj_out.weight", {c.vocab_size, d}));
        }
    }

    void get_info(tfx_model_info* info) {
        const auto& c = config_;
        encoder_decoder_info(info,
                             {c.vocab_size, c.d_model, c.decoder_layers, c.decoder_heads, c.d_model / c.decoder_heads,
                              c.max_target_positions},
                             seq2seq_);
        if (TFX_HAS_FIELD(info, tfx_model_info, input_feature_tokens)) {
            info->input_feature_bins = static_cast<int32_t>(c.num_mel_bins);
            info->input_feature_frames = static_cast<int32_t>(c.frames());
            info->input_feature_tokens = static_cast<int32_t>(c.max_source_positions);
        }
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t n = forward_rows(a), d = c.d_model;
        View encoder_states;
        const bool encoding = encodes(a);
        if (encoding) encoder_states = encode(a);
        View x = hidden_.rows(n, d), y = tmp_.rows(n, d);
        host_.embedding(embed_tokens_, input_ids(a), x);
        host_.embedding(decoder_positions_,
                        learned_positions(a, c.max_target_positions, "whisper", "max_target_positions"), y);
        host_.add(x, y, x);
        const float scale = 1.0f / std::sqrt(static_cast<float>(d / c.decoder_heads));
        for (int64_t i = 0; i < c.decoder_layers; ++i) {
            const DecoderLayer& l = decoder_[i];
            layer_norm(host_, x, l.self_attn_norm, kLayerNormEps, y);
            decoder_attn_.project(l.self_attn, y).attend(a, i, {.scale = scale}).output(l.self_attn, y);
            host_.add(x, y, x);
            layer_norm(host_, x, l.cross_attn_norm, kLayerNormEps, y);
            cross_attn_(a, i, l.cross_attn, y, encoding ? &encoder_states : nullptr, scale, y);
            host_.add(x, y, x);
            layer_norm(host_, x, l.final_norm, kLayerNormEps, y);
            ffn(host_, l.ffn, c.act, y, y, inner_);
            host_.add(x, y, x);
        }
        layer_norm(host_, x, decoder_norm_, kLayerNormEps, x);
        output_.write(a, x, seq2seq_ ? &lm_head_ : nullptr, seq2seq_ ? c.vocab_size : d);
    }

  private:
    // The encoder over the call's input features (one sequence of max_source_positions tokens
    // each); its last hidden state, also copied to encoder_output when given.
    View encode(const tfx_forward_args* a) {
        const auto& c = config_;
        const tfx_batch& b = *a->encoder_batch;
        const int64_t seqs = b.num_seqs, tokens = c.max_source_positions, d = c.d_model;
        const View features = input_features(a);
        if (features.dtype() != kF32 || features.ndim() != 3 || features.dim(0) != seqs ||
            features.dim(1) != c.num_mel_bins || features.dim(2) != c.frames()) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "whisper: input_features must be f32 [sequences, " +
                                                      std::to_string(c.num_mel_bins) + ", " +
                                                      std::to_string(c.frames()) + "]");
        }
        if (b.num_tokens != seqs * tokens) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "whisper: every encoder sequence must hold " +
                                                      std::to_string(tokens) + " tokens (max_source_positions)");
        }
        View e = encoder_hidden_.rows(b.num_tokens, d), t = encoder_tmp_.rows(b.num_tokens, d);
        stem_(features, conv1_, conv2_, e);
        host_.embedding(encoder_positions_, View(*b.positions_dev), t);
        host_.add(e, t, e);
        const float scale = 1.0f / std::sqrt(static_cast<float>(d / c.encoder_heads));
        for (int64_t i = 0; i < c.encoder_layers; ++i) {
            const EncoderLayer& l = encoder_[i];
            layer_norm(host_, e, l.self_attn_norm, kLayerNormEps, t);
            encoder_attn_.project(l.self_attn, t)
                .attend(a, i, {.scale = scale, .causal = false, .keys = AttentionCall::Keys::encoder})
                .output(l.self_attn, t);
            host_.add(e, t, e);
            layer_norm(host_, e, l.final_norm, kLayerNormEps, t);
            ffn(host_, l.ffn, c.act, t, t, encoder_inner_);
            host_.add(e, t, e);
        }
        layer_norm(host_, e, encoder_norm_, kLayerNormEps, e);
        write_encoder_output(host_, a, e);
        return e;
    }

    static constexpr float kLayerNormEps = 1e-5f;  // nn.LayerNorm's default; Whisper's config has no field

    bool seq2seq_ = true;
    Linear conv1_, conv2_, lm_head_;
    View encoder_positions_, embed_tokens_, decoder_positions_;
    std::vector<EncoderLayer> encoder_;
    std::vector<DecoderLayer> decoder_;
    LayerNorm encoder_norm_, decoder_norm_;
    ConvolutionStem stem_{host_, config_.num_mel_bins, config_.frames(), config_.d_model};
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

TFX_PLUGIN_EXPORT(Whisper, tfx::sdk::model_table<Whisper>)
