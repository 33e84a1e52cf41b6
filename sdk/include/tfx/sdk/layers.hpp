// Plumbing every model file needs and none should repeat: a linear layer that owns its
// packed weight, one weight table that both load() and weight_specs() read (each tensor is
// declared once, as llama.cpp's create_tensor does), the activation named by config.json,
// the steps of a forward pass that model files call one by one (as llama.cpp's build_norm,
// build_ffn and build_attn): layer norm, the gated MLP, self-attention with its rotary
// embedding, and the writer of a forward's output rows. Model semantics stay in the model
// files; these are mechanisms.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfx/model.h"
#include "tfx/sdk/host.hpp"
#include "tfx/sdk/rotary.hpp"

namespace tfx::sdk {

// transformers' ACT2FN names for the activations the backends implement.
inline tfx_activation activation_named(const Config& c, const char* field, const std::string& name) {
    if (name == "silu" || name == "swish") return TFX_ACT_SILU;
    if (name == "gelu") return TFX_ACT_GELU;
    if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return TFX_ACT_GELU_TANH;
    if (name == "relu") return TFX_ACT_RELU;
    c.fail(field,
           "unsupported activation '" + name + "' (silu, swish, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu)");
}

// The activation config.json names in `field` (hidden_act, hidden_activation, ...).
inline tfx_activation activation_from(const Config& c, const char* field = "hidden_act",
                                      const char* fallback = "silu") {
    return activation_named(c, field, c.get_or<std::string>(field, fallback));
}

// A classifier's label count as transformers' PretrainedConfig reads it: id2label's size, else
// num_labels, else 2; throws naming the field unless id2label is an object and the count positive.
inline int64_t label_count(const Config& c) {
    if (c.has("id2label")) {
        const nlohmann::json& labels = c.json().at("id2label");
        if (!labels.is_object()) c.fail("id2label", "expected an object of label names by id");
        if (labels.empty()) c.fail("id2label", "a classifier needs at least one label");
        return static_cast<int64_t>(labels.size());
    }
    const auto count = c.get_or<int64_t>("num_labels", 2);
    if (count <= 0) c.fail("num_labels", "a classifier needs at least one label");
    return count;
}

// Each named field must be a positive integer; returns nothing, throws naming the field.
inline void require_positive(const Config& c, std::initializer_list<std::pair<const char*, int64_t>> fields) {
    for (const auto& [name, value] : fields) {
        if (value <= 0) c.fail(name, "must be positive");
    }
}

// Rows [first, first + rows) of a 2-D [out, in] weight view (strided or not): the same data with
// a byte offset and a smaller shape, so each block of a fused projection (Phi-3's qkv_proj,
// GPT-2's c_attn) is packed on its own.
inline View row_block(const View& w, int64_t first, int64_t rows) {
    tfx_tensor t = *w.get();
    const int64_t row_stride = t.strides != nullptr ? t.strides[0] : w.dim(1);
    t.byte_offset += static_cast<uint64_t>(first * row_stride * (t.dtype.bits / 8));
    int64_t shape[2] = {rows, w.dim(1)};
    t.shape = shape;
    return View(t);  // copies shape and strides
}

// Elements [first, first + count) of a compact 1-D view (a bias's share of a split layer).
inline View element_block(const View& v, int64_t first, int64_t count) {
    tfx_tensor t = *v.get();
    t.byte_offset += static_cast<uint64_t>(first * (t.dtype.bits / 8));
    t.shape = &count;
    return View(t);  // copies the shape
}

// y = x W^T (+ b). The weight is packed by the backend and released with the layer.
class Linear {
  public:
    Linear() = default;
    Linear(const Host& host, tfx_weight* weight, View bias, bool has_bias, int64_t out_features = 0)
        : host_(&host), weight_(weight), bias_(std::move(bias)), has_bias_(has_bias), out_(out_features) {}
    Linear(Linear&& other) noexcept { *this = std::move(other); }
    Linear& operator=(Linear&& other) noexcept {
        if (this != &other) {
            reset();
            host_ = std::exchange(other.host_, nullptr);
            weight_ = std::exchange(other.weight_, nullptr);
            bias_ = other.bias_;
            has_bias_ = other.has_bias_;
            out_ = other.out_;
        }
        return *this;
    }
    Linear(const Linear&) = delete;
    Linear& operator=(const Linear&) = delete;
    ~Linear() { reset(); }

    void operator()(const View& x, View& y) const { host_->linear(x, weight_, has_bias_ ? &bias_ : nullptr, y); }
    explicit operator bool() const { return weight_ != nullptr; }
    // The backend's packed weight (for ops over several weights, such as linear_experts).
    const tfx_weight* handle() const { return weight_; }
    // The bias, or nullptr without one.
    const View* bias() const { return has_bias_ ? &bias_ : nullptr; }
    const Host* host() const { return host_; }
    // The rows of y (the weight's first dim; 0 when not given).
    int64_t out_features() const { return out_; }

  private:
    void reset() {
        if (weight_ != nullptr) host_->release(weight_);
        weight_ = nullptr;
    }

    const Host* host_ = nullptr;
    tfx_weight* weight_ = nullptr;
    View bias_;
    bool has_bias_ = false;
    int64_t out_ = 0;
};

// A LayerNorm's weight and bias.
struct LayerNorm {
    View weight, bias;
};

// How init-model fills a tensor that has no checkpoint.
enum class Init { normal, ones, zeros };

// The tensors of a model, declared once. Loading reads them through the host (shapes
// checked); describing records {"name", "shape", "init"} (and "linear": true for a linear's
// weight) for weight_specs() and returns
// empty views, so one declare() function serves both.
class WeightTable {
  public:
    enum class Mode { load, describe };
    WeightTable(const Host& host, Mode mode) : host_(host), mode_(mode) {}

    bool describing() const { return mode_ == Mode::describe; }

    // The name prefix of the checkpoint: `prefix` when `probe` is stored under it (a
    // ...ForCausalLM checkpoint stores "model.embed_tokens.weight", a bare base model
    // "embed_tokens.weight"); when describing, `prefix` iff `describe_with_prefix`.
    std::string prefix(const std::string& prefix, const std::string& probe, bool describe_with_prefix) const {
        if (describing()) return describe_with_prefix ? prefix : "";
        return host_.has_weight(prefix + probe) ? prefix : "";
    }
    // Whether an optional tensor is stored (describing: whether the canonical layout has it).
    bool has(const std::string& name, bool described = true) const {
        return describing() ? described : host_.has_weight(name);
    }

    // The tensor as stored (f32, bf16 or f16), e.g. an embedding table.
    View tensor(const std::string& name, std::vector<int64_t> shape, Init init = Init::normal) {
        if (describing()) return describe(name, std::move(shape), init);
        return host_.weight(name, shape);
    }
    // The first stored of two names of one tensor (tied embeddings: either side of the tie);
    // describing: the first.
    View tensor_or(const std::string& name, const std::string& alias, std::vector<int64_t> shape) {
        if (describing() || host_.has_weight(name)) return tensor(name, std::move(shape));
        return tensor(alias, std::move(shape));
    }
    // The tensor widened to f32 (norm weights, biases, small parameters).
    View f32(const std::string& name, std::vector<int64_t> shape, Init init = Init::ones) {
        if (describing()) return describe(name, std::move(shape), init);
        return host_.weight_f32(name, shape);
    }
    // `name`.weight [out, in] packed by the backend, and `name`.bias [out] when `bias`.
    Linear linear(const std::string& name, int64_t out, int64_t in, bool bias) {
        if (describing()) {
            describe(name + ".weight", {out, in}, Init::normal, true);
            if (bias) describe(name + ".bias", {out}, Init::zeros);
            return Linear();
        }
        View b = bias ? f32(name + ".bias", {out}, Init::zeros) : View();
        const int64_t shape[2] = {out, in};
        return Linear(host_, host_.pack_stored(name + ".weight", shape), std::move(b), bias, out);
    }
    // How a linear layer is split across tensor-parallel ranks (Host::tp_size() > 1): by output
    // features (each rank computes its rows of y) or by input features (each rank a partial y
    // over its columns of x, which the model sums with Host::all_reduce), as transformers'
    // tp_plan's "colwise" and "rowwise".
    enum class Split { outputs, inputs };
    // linear(), this rank's part of it under tensor parallelism; the whole layer without it.
    Linear linear(const std::string& name, int64_t out, int64_t in, bool bias, Split split) {
        const int64_t ranks = host_.tp_size();
        if (describing() || ranks == 1) return linear(name, out, in, bias);
        const bool by_outputs = split == Split::outputs;
        const int64_t features = by_outputs ? out : in;
        if (features % ranks != 0) {
            throw Error(TFX_ERR_UNSUPPORTED, "--tp " + std::to_string(ranks) + ": " + name + "'s " +
                                                 std::to_string(features) + (by_outputs ? " output" : " input") +
                                                 " features do not split evenly across the ranks");
        }
        const int64_t shape[2] = {by_outputs ? out / ranks : out, by_outputs ? in : in / ranks};
        // Split by outputs, each rank adds its share of the bias; by inputs, rank 0 adds all of it
        // to its partial sum, so the ranks' sum holds it once.
        const bool has_bias = bias && (by_outputs || host_.tp_rank() == 0);
        View b;
        if (has_bias) {
            const View whole = f32(name + ".bias", {out}, Init::zeros);
            b = by_outputs ? element_block(whole, host_.tp_rank() * shape[0], shape[0]) : whole;
        }
        return Linear(host_, host_.pack_stored(name + ".weight", shape), std::move(b), has_bias, shape[0]);
    }
    // Rows [first, first + rows) of the linear `name` [out, in] and of its bias: a block of a
    // layer every rank reads (a kv head replicated on the tensor-parallel ranks that share it).
    Linear linear_rows(const std::string& name, int64_t out, int64_t in, bool bias, int64_t first, int64_t rows) {
        if (describing()) return linear(name, out, in, bias);
        View b = bias ? element_block(f32(name + ".bias", {out}, Init::zeros), first, rows) : View();
        return Linear(host_, host_.pack(row_block(tensor(name + ".weight", {out, in}), first, rows)), std::move(b),
                      bias, rows);
    }
    // The tensor-parallel ranks (1 without --tp) and this process's rank among them.
    int64_t tp_size() const { return host_.tp_size(); }
    int64_t tp_rank() const { return host_.tp_rank(); }
    // A Conv1D layer's weight (GPT-2), stored [in, out], as the [out, in] view pack() takes:
    // the stored tensor transposed (strides only), or from a GPTQ/AWQ checkpoint the decoded
    // weight, [out, in] already (their QuantLinear computes x · W as Conv1D does, and AutoGPTQ
    // quantizes Conv1D's weight transposed). Described as a linear stored "in_out", so that
    // `tfx quantize` transposes it before quantizing.
    View conv1d_weight(const std::string& name, int64_t in, int64_t out) {
        if (describing()) {
            View v = describe(name, {in, out}, Init::normal, true);
            specs_.back()["layout"] = "in_out";
            return v;
        }
        if (stored_as_quant_linear(name)) return tensor(name, {out, in});
        const View stored = tensor(name, {in, out});
        const tfx_tensor* t = stored.get();
        const int64_t row_stride = t->strides != nullptr ? t->strides[0] : out;
        const int64_t col_stride = t->strides != nullptr ? t->strides[1] : 1;
        View transposed(stored.data<char>(), stored.dtype(), {out, in}, stored.device());
        transposed.with_strides({col_stride, row_stride});
        return transposed;
    }
    // A whole Conv1D layer, `name`.weight [in, out] and `name`.bias [out]: from a GPTQ/AWQ
    // checkpoint packed as stored, as linear() packs it (computed on its blocks, not decoded).
    Linear conv1d(const std::string& name, int64_t in, int64_t out) {
        if (!describing() && stored_as_quant_linear(name + ".weight")) return linear(name, out, in, true);
        const View weight = conv1d_weight(name + ".weight", in, out);
        View bias = f32(name + ".bias", {out}, Init::zeros);
        return pack(weight, std::move(bias), true);
    }
    // A linear layer over a tensor already declared (an lm_head tied to the embeddings, a
    // transposed Conv1D view).
    Linear pack(const View& weight, View bias = View(), bool has_bias = false) {
        if (describing()) return Linear();
        return Linear(host_, host_.pack(weight), std::move(bias), has_bias, weight.dim(0));
    }
    // An embedding table an LM head may be tied to: with `tied`, the first stored of `name`
    // and `head_alias` (either side of the tie may be the stored tensor).
    View embedding(const std::string& name, const std::string& head_alias, std::vector<int64_t> shape, bool tied) {
        return tied ? tensor_or(name, head_alias, std::move(shape)) : tensor(name, std::move(shape));
    }
    // The embedding table as a packed weight, read with embedding_packed, where get_weight would
    // hand out a decoded f32 copy of it (stored quantized: a GGUF block format, GPTQ, fp8) and
    // the backend reads rows of packed weights; an empty Linear otherwise (use embedding()).
    // With `tied`, the LM head computes on the same packed weight.
    Linear packed_embedding(const std::string& name, const std::string& head_alias, std::vector<int64_t> shape,
                            bool tied) {
        if (describing() || !host_.has_embedding_packed()) return Linear();
        const std::string stored = tied && !host_.has_weight(name) ? head_alias : name;
        const std::string storage = host_.weight_storage(stored);
        if (storage.empty() || storage == "f32" || storage == "bf16" || storage == "f16") return Linear();
        return Linear(host_, host_.pack_stored(stored, shape), View(), false, shape[0]);
    }
    // The LM head over `embedding`'s rows: the embedding itself when `tied`, else `name`.weight.
    Linear lm_head(const std::string& name, const View& embedding, bool tied) {
        return tied ? pack(embedding) : linear(name, embedding.dim(0), embedding.dim(1), false);
    }
    // `name`.weight (ones) and `name`.bias (zeros), [dim] each, in that order.
    LayerNorm layer_norm(const std::string& name, int64_t dim) {
        View weight = f32(name + ".weight", {dim});
        return {weight, f32(name + ".bias", {dim}, Init::zeros)};
    }

    // weight_specs(): the declared tensors as a JSON array, into the host's sink.
    void write_specs(tfx_sink sink) const {
        const std::string text = specs_.dump();
        sink.write(sink.ctx, text.data(), text.size());
    }

  private:
    // GPTQ and AWQ store a linear's weight as qweight [in / pack, out] whatever layer it came from.
    bool stored_as_quant_linear(const std::string& name) const {
        const std::string storage = host_.weight_storage(name);
        return storage == "gptq" || storage == "awq";
    }
    View describe(const std::string& name, std::vector<int64_t> shape, Init init, bool linear = false) {
        static constexpr const char* kInitNames[] = {"normal", "ones", "zeros"};
        specs_.push_back({{"name", name}, {"shape", shape}, {"init", kInitNames[static_cast<int>(init)]}});
        if (linear) specs_.back()["linear"] = true;
        return View(nullptr, kF32, std::span<const int64_t>(shape));
    }

    const Host& host_;
    Mode mode_;
    nlohmann::json specs_ = nlohmann::json::array();
};

// Linears of one input (q, k and v; gate and up): ys[i] = linears[i](x), in one backend call
// where the backend can share the work (linear_many: x read once, one dispatch), else one by one.
inline void linears_of_one_input(const View& x, std::initializer_list<std::pair<const Linear*, View*>> parts) {
    constexpr size_t kMost = 4;
    const Host* host = parts.begin()->first->host();
    if (parts.size() > kMost || !host->has_linear_many()) {
        for (const auto& [linear, y] : parts) (*linear)(x, *y);
        return;
    }
    std::array<const tfx_weight*, kMost> ws{};
    std::array<const tfx_tensor*, kMost> biases{};
    std::array<tfx_tensor*, kMost> ys{};
    int32_t count = 0;
    for (const auto& [linear, y] : parts) {
        ws[static_cast<size_t>(count)] = linear->handle();
        biases[static_cast<size_t>(count)] = linear->bias() != nullptr ? linear->bias()->get() : nullptr;
        ys[static_cast<size_t>(count)] = y->get();
        ++count;
    }
    host->linear_many(x, ws.data(), biases.data(), count, ys.data());
}

// One self-attention call over [tokens, heads, head_dim] views for layer `layer` of a forward
// pass (its cache and the batch's sequences). Optional settings keep their neutral values:
// causal, scale 1/sqrt(head_dim) unless given, no softcap, no sliding window.
struct AttentionCall {
    View q, k, v, out;
    float scale = 0.0f;  // 0: 1 / sqrt(head_dim)
    float softcap = 0.0f;
    int32_t sliding_window = 0;
    int32_t window_ahead = 0;  // ABI 2.3, non-causal: keys before p + window_ahead only
    bool causal = true;
    // Whose tokens attend to whose (ABI 2.5, encoder-decoder models): `self`, the forward's
    // batch over its own cache; `encoder`, the encoder's tokens (a->encoder_batch) over each
    // other, with no cache; `cross`, the forward's tokens over the encoder's (k and v: the
    // encoder's new tokens, written to a->cross_cache[layer], or none on later calls).
    enum class Keys { self, encoder, cross } keys = Keys::self;
    // ABI 2.6: a bias by key position - query position (T5), [2 * relative_span + 1, heads].
    View relative_bias;
    int32_t relative_span = 0;
    // ABI 2.7: DeBERTa's disentangled attention, with relative_span: keys and queries of
    // relative positions [rows, heads, head_dim] (either may be left empty) and the row of each
    // clamped distance, i32 [2 * relative_span + 1] on the device.
    View relative_k, relative_q, relative_columns;
};
inline void attend(const Host& host, const tfx_forward_args* a, int64_t layer, AttentionCall call) {
    tfx_attention_args args{};
    args.struct_size = sizeof(args);
    args.causal = call.causal ? 1 : 0;
    args.q = call.q.get();
    args.k = call.k.get();
    args.v = call.v.get();
    args.out = call.out.get();
    args.batch = a->batch;
    args.cache = a->cache != nullptr ? &a->cache[layer] : nullptr;
    if (call.keys != AttentionCall::Keys::self) {
        if (!TFX_HAS_FIELD(a, tfx_forward_args, encoder_output) || a->encoder_batch == nullptr) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: an encoder-decoder model needs encoder_batch (ABI 2.5)");
        }
        if (call.keys == AttentionCall::Keys::encoder) {
            args.batch = a->encoder_batch;
            args.cache = nullptr;
        } else {
            args.kv_batch = a->encoder_batch;
            args.cache = a->cross_cache != nullptr ? &a->cross_cache[layer] : nullptr;
            args.causal = 0;
        }
    }
    args.scale = call.scale != 0.0f ? call.scale : 1.0f / std::sqrt(static_cast<float>(call.q.dim(-1)));
    args.softcap = call.softcap;
    args.sliding_window = call.sliding_window;
    args.window_ahead = call.window_ahead;
    const auto given = [](const View& v) { return v.get()->data != nullptr ? v.get() : nullptr; };
    if (call.relative_span > 0) {
        args.relative_bias = given(call.relative_bias);
        args.relative_span = call.relative_span;
        args.relative_k = given(call.relative_k);
        args.relative_q = given(call.relative_q);
        args.relative_columns = given(call.relative_columns);
    }
    host.attend(args);
}

// ---- the steps of a forward pass ---------------------------------------------------------

// Whether a forward of an encoder-decoder model runs its encoder: encoder_batch brings the
// encoder's tokens (ABI 2.5; see tfx_forward_args).
inline bool encodes(const tfx_forward_args* a) {
    return TFX_HAS_FIELD(a, tfx_forward_args, encoder_output) && a->encoder_batch != nullptr &&
           a->encoder_batch->num_tokens > 0;
}

// The encoder's token ids, i32 [encoder tokens] on the device, on a call that encodes.
inline View encoder_input_ids(const tfx_forward_args* a) {
    if (a->encoder_input_ids == nullptr) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: encoder_batch has tokens but encoder_input_ids is NULL");
    }
    return View(*a->encoder_input_ids);
}

// The tokens of a forward (all sequences of its ragged batch, back to back); throws unless the
// batch, input_ids and output are given.
inline int64_t forward_rows(const tfx_forward_args* a) {
    if (a->batch == nullptr || a->batch->num_tokens <= 0 || a->input_ids == nullptr || a->output == nullptr) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: a batch with tokens, input_ids and output are required");
    }
    return a->batch->num_tokens;
}

// A vision model's images, f32 [sequences, channels, height, width] on the device (ABI 2.8).
inline View pixel_values(const tfx_forward_args* a) {
    if (!TFX_HAS_FIELD(a, tfx_forward_args, pixel_values) || a->pixel_values == nullptr) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: a vision model needs pixel_values (ABI 2.8)");
    }
    return View(*a->pixel_values);
}

// A speech encoder's input features, f32 [encoder sequences, bins, frames] on the device, on a
// call that encodes (ABI 2.9).
inline View input_features(const tfx_forward_args* a) {
    if (!TFX_HAS_FIELD(a, tfx_forward_args, input_features) || a->input_features == nullptr) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: this encoder needs input_features (ABI 2.9)");
    }
    return View(*a->input_features);
}

// The forward's token ids, i32 [tokens] on the device, for Host::embedding.
inline View input_ids(const tfx_forward_args* a) {
    return View(*a->input_ids);
}

// A forward's f32 scratch on the device, grown to the largest pass seen; rows() views it [rows, width].
class Scratch {
  public:
    explicit Scratch(const Host& host) : buffer_(host) {}
    View rows(int64_t rows, int64_t width) { return buffer_.view(kF32, {rows, width}); }

  private:
    DeviceBuffer buffer_;
};

// The forward's positions (i32 on the device) as ids into a learned position table of `table_rows`
// rows (GPT-2's wpe, BERT's position_embeddings); a position past it throws "<family>: position p
// is beyond <field> (table_rows)", checked on the batch's host copy.
inline View learned_positions(const tfx_forward_args* a, int64_t table_rows, const char* family, const char* field) {
    const tfx_batch& b = *a->batch;
    for (int32_t i = 0; i < b.num_tokens; ++i) {
        if (b.positions[i] < 0 || b.positions[i] >= table_rows) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, std::string(family) + ": position " + std::to_string(b.positions[i]) +
                                                      " is beyond " + field + " (" + std::to_string(table_rows) + ")");
        }
    }
    return View(*b.positions_dev);
}

// The first token of each sequence of the batch, as i32 row ids on the device (a pooler's [CLS]).
inline View first_tokens(const tfx_forward_args* a) {
    return View(*a->batch->seq_start_dev).reshape({a->batch->num_seqs});
}

// y = LayerNorm(x) with the norm's weight and bias.
inline void layer_norm(const Host& host, const View& x, const LayerNorm& norm, float eps, View& y) {
    host.layer_norm(x, norm.weight, &norm.bias, eps, y);
}

// The projections of a gated MLP (SwiGLU, GeGLU): gate and up [intermediate, hidden], down [hidden, intermediate].
struct GatedMlp {
    Linear gate, up, down;
};

// y = down(act(gate(x)) * up(x)), llama.cpp's build_ffn with a parallel gate; `gate` and `up` are
// scratch for the [rows, intermediate] activations. x and y may be the same view.
inline void ffn_gated(const Host& host, const GatedMlp& mlp, tfx_activation act, const View& x, View& y, Scratch& gate,
                      Scratch& up) {
    View g = gate.rows(x.dim(0), mlp.gate.out_features()), u = up.rows(x.dim(0), mlp.up.out_features());
    linears_of_one_input(x, {{&mlp.gate, &g}, {&mlp.up, &u}});
    host.gated_activation(act, g, u, g);
    mlp.down(g, y);
    host.all_reduce(y);  // down's input features are split across tensor-parallel ranks (gated_mlp)
}

// The projections of a plain MLP: up [intermediate, hidden] and down [hidden, intermediate].
struct Mlp {
    Linear up, down;
};

// y = down(act(up(x))), llama.cpp's build_ffn without a gate; `inner` is scratch for the
// [rows, intermediate] activations. x and y may be the same view.
inline void ffn(const Host& host, const Mlp& mlp, tfx_activation act, const View& x, View& y, Scratch& inner) {
    View u = inner.rows(x.dim(0), mlp.up.out_features());
    mlp.up(x, u);
    host.activation(act, u, u);
    mlp.down(u, y);
}

// A rotary embedding: its frequencies on the device (uploaded again only when dynamic or longrope
// scaling changes them) and the positions of the current forward, for the backend's rope op.
class Rope {
  public:
    Rope(const Host& host, RopeSettings settings) : host_(host), rotary_(std::move(settings)), inv_freq_(host) {}

    // Prepares the current forward `a`; once per forward, before any layer applies it.
    void compute(const tfx_forward_args* a) {
        const tfx_batch& b = *a->batch;
        if (rotary_.update(b.positions, b.num_tokens) || !uploaded_) {
            const std::vector<float>& f = rotary_.inv_freq();
            inv_freq = inv_freq_.view(kF32, {static_cast<int64_t>(f.size())});
            host_.upload(f.data(), inv_freq);
            uploaded_ = true;
        }
        positions = View(*b.positions_dev);
    }
    // Rotates x [tokens, heads, head_dim] in place.
    void apply(View& x) const { host_.rope(x, positions, inv_freq, rotary_.attention_factor()); }

    View positions, inv_freq;

  private:
    const Host& host_;
    RotaryEmbedding rotary_;
    DeviceBuffer inv_freq_;
    bool uploaded_ = false;
};

// The projections of self-attention: q, k, v from the hidden state, o back to it.
struct AttentionWeights {
    Linear q, k, v, o;
};

// Multi-head (grouped-query) self-attention over a forward's rows, in the steps a model calls one
// by one, each returning the object so that they chain: project (q, k, v), rope, attend, output
// (llama.cpp's build_attn with the o projection). It holds the scratch and the views of it that
// the steps share:
//   q, k, v, out                [rows, heads * head_dim] (k and v: kv_heads)
//   q_heads, k_heads, v_heads, out_heads   [rows, heads, head_dim], for rope and attention
//   q_rows, k_rows              [rows * heads, head_dim], for per-head norms
class SelfAttention {
  public:
    SelfAttention(const Host& host, int64_t heads, int64_t kv_heads, int64_t head_dim)
        : host_(&host),
          heads_(heads),
          kv_heads_(kv_heads),
          head_dim_(head_dim),
          q_(host),
          k_(host),
          v_(host),
          out_(host) {}

    // Sizes the scratch for `rows` rows (project() does it for x's rows).
    SelfAttention& resize(int64_t rows) {
        const int64_t d = head_dim_, q_out = heads_ * d, kv_out = kv_heads_ * d;
        q = q_.rows(rows, q_out), k = k_.rows(rows, kv_out), v = v_.rows(rows, kv_out), out = out_.rows(rows, q_out);
        q_heads = q.reshape({rows, heads_, d}), k_heads = k.reshape({rows, kv_heads_, d});
        v_heads = v.reshape({rows, kv_heads_, d}), out_heads = out.reshape({rows, heads_, d});
        q_rows = q.reshape({rows * heads_, d}), k_rows = k.reshape({rows * kv_heads_, d});
        return *this;
    }
    // q, k, v = the projections of x [rows, hidden].
    SelfAttention& project(const AttentionWeights& w, const View& x) {
        resize(x.dim(0));
        linears_of_one_input(x, {{&w.q, &q}, {&w.k, &k}, {&w.v, &v}});
        return *this;
    }
    // Rotates q and k by the forward's rotary tables (the first rope dims of each head).
    SelfAttention& rope(const Rope& r) {
        r.apply(q_heads);
        r.apply(k_heads);
        return *this;
    }
    // out = attention of q over k and v for layer `layer` (its cache); `call` sets scale,
    // softcap, sliding window and causality, its views are filled here.
    SelfAttention& attend(const tfx_forward_args* a, int64_t layer, AttentionCall call) {
        call.q = q_heads, call.k = k_heads, call.v = v_heads, call.out = out_heads;
        tfx::sdk::attend(*host_, a, layer, call);
        return *this;
    }
    // y = o(out), summed over tensor-parallel ranks (each holds its heads' columns of o).
    void output(const AttentionWeights& w, View& y) const {
        w.o(out, y);
        host_->all_reduce(y);
    }

    View q, k, v, out, q_heads, k_heads, v_heads, out_heads, q_rows, k_rows;

  private:
    const Host* host_;
    int64_t heads_, kv_heads_, head_dim_;
    Scratch q_, k_, v_, out_;
};

// Copies the encoder's last hidden state [encoder tokens, hidden] to encoder_output, when the
// host asked for it.
inline void write_encoder_output(const Host& host, const tfx_forward_args* a, const View& states) {
    if (a->encoder_output == nullptr) return;
    View out(*a->encoder_output);
    const int64_t rows = states.dim(0), width = states.dim(1);
    if (out.dtype() != kF32 || out.numel() != rows * width) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: encoder_output must be f32 with " + std::to_string(rows) +
                                                  " x " + std::to_string(width) + " elements");
    }
    View dst = out.reshape({rows, width});
    host.copy(states, dst);
}

// Attention of a decoder's tokens over its encoder's (ABI 2.5): q from the decoder's x; k and v
// from the encoder's states on the call that encodes (the attention call writes them to the
// cross cache), none on later calls (read from the cache).
class CrossAttention {
  public:
    CrossAttention(const Host& host, int64_t heads, int64_t head_dim)
        : host_(&host), heads_(heads), head_dim_(head_dim), q_(host), k_(host), v_(host), out_(host) {}

    // y = o(attention of q(x) over k(encoder), v(encoder)) for decoder layer `layer`; `encoder`
    // is [encoder tokens, hidden] when the call encodes, else null.
    void operator()(const tfx_forward_args* a, int64_t layer, const AttentionWeights& w, const View& x,
                    const View* encoder, float scale, View& y) {
        const int64_t rows = x.dim(0), kv_rows = encoder != nullptr ? encoder->dim(0) : 0, width = heads_ * head_dim_;
        View q = q_.rows(rows, width), out = out_.rows(rows, width);
        View k = k_.rows(kv_rows, width), v = v_.rows(kv_rows, width);
        w.q(x, q);
        if (kv_rows > 0) {
            w.k(*encoder, k);
            w.v(*encoder, v);
        }
        attend(*host_, a, layer,
               {.q = q.reshape({rows, heads_, head_dim_}),
                .k = k.reshape({kv_rows, heads_, head_dim_}),
                .v = v.reshape({kv_rows, heads_, head_dim_}),
                .out = out.reshape({rows, heads_, head_dim_}),
                .scale = scale,
                .causal = false,
                .keys = AttentionCall::Keys::cross});
        w.o(out, y);
    }

  private:
    const Host* host_;
    int64_t heads_, head_dim_;
    Scratch q_, k_, v_, out_;
};

// Writes a forward's output rows: every token, or those the host asks for (output_rows: each
// sequence's last token when generating), through `head` (an LM head) or as they are (hidden
// states of a base model). `x` holds [tokens, hidden] rows.
class OutputWriter {
  public:
    explicit OutputWriter(const Host& host) : host_(host), selected_(host) {}

    void write(const tfx_forward_args* a, const View& x, const Linear* head, int64_t width) {
        const int64_t h = x.dim(-1);
        const int64_t rows = a->output_rows != nullptr ? a->num_output_rows : a->batch->num_tokens;
        View out(*a->output);
        if (out.dtype() != kF32 || out.numel() != rows * width) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: output must be f32 with " + std::to_string(rows) + " x " +
                                                      std::to_string(width) + " elements");
        }
        View src = x.reshape({x.numel() / h, h});
        if (a->output_rows != nullptr) {
            View picked = selected_.rows(rows, h);
            host_.gather_rows(src, View(*a->output_rows), picked);
            src = picked;
        }
        View dst = out.reshape({rows, width});
        if (head != nullptr) {
            (*head)(src, dst);
        } else {
            host_.copy(src, dst);
        }
    }

  private:
    const Host& host_;
    Scratch selected_;
};

// cap * tanh(logits / cap) over the rows a forward just wrote (rows of `width`); 0 leaves them.
inline void softcap_output(const Host& host, const tfx_forward_args* a, float cap, int64_t width) {
    if (cap <= 0.0f) return;
    View out(*a->output);
    View logits = out.reshape({out.numel() / width, width});
    host.softcap(logits, cap, logits);
}

}  // namespace tfx::sdk
