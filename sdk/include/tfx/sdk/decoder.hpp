// What decoder-only families share in reading config.json and declaring weights, the way
// transformers' PretrainedConfig subclasses and llama.cpp's llama_model / create_tensor repeat it:
// the standard fields under their standard names (each family passes its own defaults), the rope
// scaling it accepts, per-layer sliding windows, the attention and gated-MLP projections, the
// layer slots, and DecoderModel: the embedding, final norm and LM head around the layers. Which
// of these a family uses, each layer's tensors and the forward pass stay in the family's file.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfx/sdk/config.hpp"
#include "tfx/sdk/layers.hpp"
#include "tfx/sdk/model.hpp"
#include "tfx/sdk/rotary.hpp"

namespace tfx::sdk {

// The sizes get_info() reports for a decoder.
struct DecoderDims {
    int64_t vocab_size, hidden_size, num_layers, num_kv_heads, head_dim, max_positions;
};

// get_info() of a decoder: logits over the vocabulary (causal LM) or hidden states (base model),
// and the KV cache it needs (num_layers layers of num_kv_heads x head_dim).
inline void decoder_info(tfx_model_info* info, const DecoderDims& d, bool causal_lm) {
    info->output_kind = causal_lm ? TFX_OUTPUT_LOGITS : TFX_OUTPUT_HIDDEN_STATE;
    info->vocab_size = static_cast<int32_t>(d.vocab_size);
    info->hidden_size = static_cast<int32_t>(d.hidden_size);
    info->output_size = static_cast<int32_t>(causal_lm ? d.vocab_size : d.hidden_size);
    info->num_layers = static_cast<int32_t>(d.num_layers);
    info->num_kv_heads = static_cast<int32_t>(d.num_kv_heads);
    info->head_dim = static_cast<int32_t>(d.head_dim);
    info->max_positions = d.max_positions;
}

// get_info() of an encoder-decoder model: its decoder's, and the cross-attention cache it needs
// (ABI 2.5: one layer per decoder layer, of the decoder's kv heads and head_dim).
inline void encoder_decoder_info(tfx_model_info* info, const DecoderDims& decoder, bool lm_head) {
    decoder_info(info, decoder, lm_head);
    if (TFX_HAS_FIELD(info, tfx_model_info, num_cross_layers)) {
        info->num_cross_layers = static_cast<int32_t>(decoder.num_layers);
    }
}

// The kv heads one of `ranks` tensor-parallel ranks holds: its share, or the one kv head its
// query heads read when there are fewer kv heads than ranks (attention_weights).
inline int64_t rank_kv_heads(int64_t kv_heads, int64_t ranks) {
    return kv_heads >= ranks ? kv_heads / ranks : 1;
}

// A family's defaults for the standard fields config.json may leave out (its config class's).
struct DecoderDefaults {
    int64_t head_dim = 0;  // 0: hidden_size / num_attention_heads
    int64_t max_position_embeddings = 2048;
    float rms_norm_eps = 1e-6f;
    double rope_theta = 10000.0;
    bool tie_word_embeddings = false;
    bool rotary_head_dim = true;  // the rotary embedding turns all of head_dim, so it must be even
};

// The standard fields of a decoder's config.json (vocab_size, hidden_size, intermediate_size,
// num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, max_position_embeddings,
// rms_norm_eps, rope_theta, tie_word_embeddings), checked as grouped-query attention needs them.
struct DecoderConfig : DecoderDims {
    int64_t intermediate_size, num_heads;
    float rms_norm_eps;
    double rope_theta;
    bool tie_word_embeddings;

    DecoderConfig(const Config& c, const DecoderDefaults& d) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        num_kv_heads = c.get_or<int64_t>("num_key_value_heads", num_heads);
        max_positions = c.get_or<int64_t>("max_position_embeddings", d.max_position_embeddings);
        require_positive(c, {{"vocab_size", vocab_size},
                             {"hidden_size", hidden_size},
                             {"intermediate_size", intermediate_size},
                             {"num_hidden_layers", num_layers},
                             {"num_attention_heads", num_heads},
                             {"num_key_value_heads", num_kv_heads},
                             {"max_position_embeddings", max_positions}});
        // head_dim: the config's, else the family's default, else hidden_size / num_attention_heads,
        // which then must divide evenly.
        const bool derived = !c.has("head_dim") && d.head_dim <= 0;
        if (derived && hidden_size % num_heads != 0) {
            c.fail("num_attention_heads", "must divide hidden_size (" + std::to_string(hidden_size) +
                                              " is not divisible by " + std::to_string(num_heads) + ")");
        }
        head_dim = c.get_or<int64_t>("head_dim", derived ? hidden_size / num_heads : d.head_dim);
        require_positive(c, {{"head_dim", head_dim}});
        rms_norm_eps = c.get_positive<float>("rms_norm_eps", d.rms_norm_eps);
        rope_theta = c.get_positive<double>("rope_theta", d.rope_theta);
        tie_word_embeddings = c.get_or<bool>("tie_word_embeddings", d.tie_word_embeddings);
        if (num_heads % num_kv_heads != 0) c.fail("num_key_value_heads", "must divide num_attention_heads");
        if (d.rotary_head_dim && head_dim % 2 != 0) c.fail("head_dim", "must be even for rotary embeddings");
    }

    int64_t q_out() const { return num_heads * head_dim; }
    int64_t kv_out() const { return num_kv_heads * head_dim; }
};

// rope_scaling as a family accepts it: its type and object (type "default" and an empty object
// when absent).
struct RopeScaling {
    std::string type = "default";
    Config scaling;
};

// The config's rope_scaling; fails unless its type is one of `accepted` (the rope types the
// family implements, by their transformers names), or when a number the type divides by is
// missing, not positive or not finite (transformers only warns; here it would turn every
// position's rotation into NaN or inf, silent wrong output).
inline RopeScaling rope_scaling(const Config& c, std::initializer_list<const char*> accepted) {
    RopeScaling r{rope_type_of(c), c.has("rope_scaling") ? c.child("rope_scaling") : Config()};
    std::string list;
    bool known = false;
    for (const char* type : accepted) {
        known = known || r.type == type;
        list += (list.empty() ? "" : ", ") + std::string(type);
    }
    if (!known) c.fail("rope_scaling", "unsupported rope_type '" + r.type + "' (" + list + ")");
    auto require_positive = [&](const char* key) {
        if (!r.scaling.has(key)) r.scaling.fail(key, "is required for rope_type '" + r.type + "'");
        r.scaling.get_positive<double>(key, 1.0);
    };
    if (r.type == "linear" || r.type == "dynamic" || r.type == "yarn" || r.type == "llama3") require_positive("factor");
    if (r.type == "llama3") {
        for (const char* key : {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
            require_positive(key);
        }
    }
    return r;
}

// The rotary embedding over all of head_dim with the config's rope_theta and max_position_embeddings.
inline RopeSettings rope_settings(const DecoderConfig& c, const RopeScaling& r = {}) {
    return RopeSettings{c.head_dim, c.rope_theta, r.type, r.scaling, c.max_positions};
}

// The sliding_window field: absent is the config class's default `absent`, null is none (0).
inline int32_t sliding_window_field(const Config& c, int64_t absent) {
    const int64_t window = c.json().contains("sliding_window") ? c.get_or<int64_t>("sliding_window", 0) : absent;
    if (window < 0 || window > std::numeric_limits<int32_t>::max()) c.fail("sliding_window", "out of range");
    return static_cast<int32_t>(window);
}

// transformers' layer_types, one per layer: true for "sliding_attention", false for
// "full_attention"; nullopt when the config has none.
inline std::optional<std::vector<bool>> sliding_layer_types(const Config& c, int64_t num_layers) {
    if (!c.has("layer_types")) return std::nullopt;
    const nlohmann::json& types = c.json().at("layer_types");
    if (!types.is_array() || static_cast<int64_t>(types.size()) != num_layers) {
        c.fail("layer_types", "expected one entry per hidden layer");
    }
    std::vector<bool> sliding(static_cast<size_t>(num_layers));
    for (int64_t i = 0; i < num_layers; ++i) {
        const nlohmann::json& t = types[static_cast<size_t>(i)];
        if (t != "sliding_attention" && t != "full_attention") {
            c.fail("layer_types", "unknown layer type " + t.dump() + " (sliding_attention, full_attention)");
        }
        sliding[i] = t == "sliding_attention";
    }
    return sliding;
}

// Each layer's window (0: full attention) as Qwen2's config selects them: sliding_window (absent:
// 4096, null: none) only with use_sliding_window, on the layers layer_types marks
// "sliding_attention", else on the layers from max_window_layers (default 28) on.
inline std::vector<int32_t> layer_sliding_windows(const Config& c, int64_t num_layers) {
    const int32_t window = c.get_or<bool>("use_sliding_window", false) ? sliding_window_field(c, 4096) : 0;
    const int64_t max_window_layers = c.get_or<int64_t>("max_window_layers", 28);
    const std::optional<std::vector<bool>> types = sliding_layer_types(c, num_layers);
    std::vector<int32_t> windows(static_cast<size_t>(num_layers), 0);
    for (int64_t i = 0; i < num_layers; ++i) {
        if (types ? (*types)[i] : i >= max_window_layers) windows[i] = window;
    }
    return windows;
}

// q, k, v and o of grouped-query attention, each `prefix` + its name from `names`: q [heads *
// head_dim, hidden], k and v [kv_heads * head_dim, hidden], o [hidden, heads * head_dim]; a bias
// on q, k and v with `qkv_bias`, on o with `o_bias`. Under tensor parallelism each rank holds its
// heads: q, k and v split by output features, o by input features (SelfAttention::output sums);
// with fewer kv heads than ranks, each rank keeps the kv head of its query heads.
inline AttentionWeights attention_weights(WeightTable& w, const std::string& prefix, std::array<const char*, 4> names,
                                          const DecoderConfig& c, bool qkv_bias, bool o_bias) {
    using Split = WeightTable::Split;
    AttentionWeights a;
    a.q = w.linear(prefix + names[0], c.q_out(), c.hidden_size, qkv_bias, Split::outputs);
    const int64_t ranks = w.tp_size();
    if (ranks > c.num_kv_heads && !w.describing()) {
        // Fewer kv heads than ranks: each rank keeps the one its query heads read (rank r's heads
        // all lie in group r * kv_heads / ranks), replicated on the ranks that share it.
        const int64_t first = w.tp_rank() * c.num_kv_heads / ranks * c.head_dim;
        a.k = w.linear_rows(prefix + names[1], c.kv_out(), c.hidden_size, qkv_bias, first, c.head_dim);
        a.v = w.linear_rows(prefix + names[2], c.kv_out(), c.hidden_size, qkv_bias, first, c.head_dim);
    } else {
        a.k = w.linear(prefix + names[1], c.kv_out(), c.hidden_size, qkv_bias, Split::outputs);
        a.v = w.linear(prefix + names[2], c.kv_out(), c.hidden_size, qkv_bias, Split::outputs);
    }
    a.o = w.linear(prefix + names[3], c.hidden_size, c.q_out(), o_bias, Split::inputs);
    return a;
}

// gate and up [intermediate, hidden] and down [hidden, intermediate], each `prefix` + its name
// from `names`, with biases when `bias`. Under tensor parallelism gate and up split by output
// features, down by input features (ffn_gated sums).
inline GatedMlp gated_mlp(WeightTable& w, const std::string& prefix, std::array<const char*, 3> names, int64_t hidden,
                          int64_t intermediate, bool bias) {
    using Split = WeightTable::Split;
    GatedMlp m;
    m.gate = w.linear(prefix + names[0], intermediate, hidden, bias, Split::outputs);
    m.up = w.linear(prefix + names[1], intermediate, hidden, bias, Split::outputs);
    m.down = w.linear(prefix + names[2], hidden, intermediate, bias, Split::inputs);
    return m;
}

// A sparse mixture of SwiGLU experts (Mixtral, Qwen2-MoE, Qwen3-MoE): the router and the
// experts, with the experts' packed projections by expert for the backend's linear_experts.
struct RoutedExperts {
    Linear router;  // [experts, hidden]
    std::vector<GatedMlp> experts;
    std::vector<const tfx_weight*> gate, up, down;
};

// The router `router_name` and `count` experts `experts_prefix`{j}.{names}, without biases.
inline RoutedExperts routed_experts(WeightTable& w, const std::string& router_name, const std::string& experts_prefix,
                                    std::array<const char*, 3> names, int64_t count, int64_t hidden,
                                    int64_t intermediate) {
    RoutedExperts r;
    r.router = w.linear(router_name, count, hidden, false);
    r.experts.resize(static_cast<size_t>(count));
    for (int64_t j = 0; j < count; ++j) {
        r.experts[j] = gated_mlp(w, experts_prefix + std::to_string(j) + ".", names, hidden, intermediate, false);
        r.gate.push_back(r.experts[j].gate.handle());
        r.up.push_back(r.experts[j].up.handle());
        r.down.push_back(r.experts[j].down.handle());
    }
    return r;
}

// Scratch of routed_ffn beyond ffn_gated's gate and up: router probabilities, the routing
// (expert ids and weights) and the experts' outputs.
struct RoutedScratch {
    explicit RoutedScratch(const Host& host) : probs(host), weights(host), out(host), choice(host) {}
    Scratch probs, weights, out;
    DeviceBuffer choice;
};

// y[t] = sum over s of weights[t, s] * down(act(gate(x)) * up(x)) through expert ids[t, s]
// (ids i32 and weights f32, [tokens, k] on the device): the backend runs each token through its
// experts (linear_experts) and sums them weighted (weighted_sum).
inline void expert_ffn(const Host& host, const RoutedExperts& moe, tfx_activation act, const View& ids,
                       const View& weights, const View& x, View& y, Scratch& gate_scratch, Scratch& up_scratch,
                       RoutedScratch& s) {
    const int64_t n = x.dim(0), h = x.dim(1), k = ids.dim(1), inter = moe.experts.front().gate.out_features();
    View gate = gate_scratch.rows(n * k, inter), up = up_scratch.rows(n * k, inter), down = s.out.rows(n * k, h);
    View gate3 = gate.reshape({n, k, inter}), up3 = up.reshape({n, k, inter}), down3 = down.reshape({n, k, h});
    const View x3 = x.reshape({n, 1, h});
    host.linear_experts(x3, moe.gate, ids, gate3);
    host.linear_experts(x3, moe.up, ids, up3);
    host.gated_activation(act, gate, up, gate);
    host.linear_experts(gate3, moe.down, ids, down3);
    host.weighted_sum(down3, weights, y);
    // Under tensor parallelism each rank holds its share of every expert's intermediate features
    // (gated_mlp), so y is a partial sum, and the weighted sum is linear in it.
    host.all_reduce(y);
}

// expert_ffn over the k experts of largest router softmax (f32), their weights renormalized to
// sum to one when `normalize`; the backend routes (top_k).
inline void routed_ffn(const Host& host, const RoutedExperts& moe, tfx_activation act, int64_t k, bool normalize,
                       const View& x, View& y, Scratch& gate_scratch, Scratch& up_scratch, RoutedScratch& s) {
    const int64_t n = x.dim(0);
    View probs = s.probs.rows(n, static_cast<int64_t>(moe.experts.size()));
    moe.router(x, probs);
    host.softmax(probs, probs);
    View ids = s.choice.view(kI32, {n, k}), weights = s.weights.rows(n, k);
    host.top_k(probs, static_cast<int32_t>(k), normalize, ids, weights);
    expert_ffn(host, moe, act, ids, weights, x, y, gate_scratch, up_scratch, s);
}

// The tensors of one decoder layer, as llama.cpp's llama_layer: every slot the llama lineage uses;
// a family fills those its layers have.
struct DecoderLayer {
    View input_norm, post_attention_norm;              // before attention; before the MLP (Gemma 2: after attention)
    View pre_feedforward_norm, post_feedforward_norm;  // Gemma 2 and 3: around the MLP
    View q_norm, k_norm;                               // per-head norms of queries and keys
    AttentionWeights attn;
    GatedMlp mlp;
};

// A decoder-only LM of transformers' llama lineage ({Family}ForCausalLM, {Family}Model), the part
// around its layers: the task head the host chose (causal_lm: logits through lm_head; base: the
// final hidden states), the token embedding model.embed_tokens (lm_head may be tied to it), the
// layers model.layers.{i}, the final norm model.norm (weights initialized to `kNormInit`) and
// lm_head; a base model's checkpoint has no "model." prefix. Model adds
//   // Layer i's tensors; p is its prefix, "model.layers.{i}.".
//   void declare_layer(WeightTable& w, Layer& l, const std::string& p, int64_t i);
//   // embed(), the layers, the final norm, write_output().
//   void forward(const tfx_forward_args* a);
// and gets load(), weight_specs(), get_info() and the scratch of attention and MLP. Both task heads
// come with it; the plugin's manifest says which the host may ask for.
template <class Model, class ModelConfig, Init kNormInit = Init::ones, class Layer = DecoderLayer>
class DecoderModel : public ModelPlugin<Model, ModelConfig> {
  public:
    using ModelPlugin<Model, ModelConfig>::ModelPlugin;

    void declare(WeightTable& w) {
        const DecoderConfig& c = this->config_;
        causal_lm_ = this->host_.task_head({"causal_lm", "base"}) == "causal_lm";
        const int64_t ranks = this->host_.tp_size();
        const bool kv_split = c.num_kv_heads % ranks == 0 || ranks % c.num_kv_heads == 0;
        if (!w.describing() && (c.num_heads % ranks != 0 || !kv_split)) {
            throw Error(TFX_ERR_UNSUPPORTED, "--tp " + std::to_string(ranks) + ": num_attention_heads (" +
                                                 std::to_string(c.num_heads) +
                                                 ") must divide evenly across the ranks, and num_key_value_heads (" +
                                                 std::to_string(c.num_kv_heads) +
                                                 ") must divide across them or be a divisor of their number");
        }
        const std::string pre = w.prefix("model.", "norm.weight", causal_lm_);
        const std::vector<int64_t> table_shape = {c.vocab_size, c.hidden_size};
        packed_embed_ =
            w.packed_embedding(pre + "embed_tokens.weight", "lm_head.weight", table_shape, c.tie_word_embeddings);
        if (!packed_embed_) {
            embed_ = w.embedding(pre + "embed_tokens.weight", "lm_head.weight", table_shape, c.tie_word_embeddings);
        }
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            static_cast<Model*>(this)->declare_layer(w, layers_[i], pre + "layers." + std::to_string(i) + ".", i);
        }
        final_norm_ = w.f32(pre + "norm.weight", {c.hidden_size}, kNormInit);
        // Tied to a packed table, the head is that table.
        if (causal_lm_ && !(packed_embed_ && c.tie_word_embeddings)) {
            lm_head_ = packed_embed_ ? w.linear("lm_head", c.vocab_size, c.hidden_size, false)
                                     : w.lm_head("lm_head", embed_, c.tie_word_embeddings);
        }
    }

    // Under tensor parallelism the cache holds this rank's kv heads.
    void get_info(tfx_model_info* info) {
        DecoderDims dims = this->config_;
        dims.num_kv_heads = rank_kv_heads(this->config_.num_kv_heads, this->host_.tp_size());
        decoder_info(info, dims, causal_lm_);
    }

  protected:
    // The forward's first step: x = the token embeddings [rows, hidden], and xn, a second buffer of
    // that shape for norm and sublayer outputs. Throws on missing arguments.
    std::pair<View, View> embed(const tfx_forward_args* a) {
        const int64_t n = forward_rows(a), h = this->config_.hidden_size;
        View x = hidden_.rows(n, h), xn = normed_.rows(n, h);
        if (packed_embed_) {
            this->host_.embedding_packed(packed_embed_.handle(), input_ids(a), x);
        } else {
            this->host_.embedding(embed_, input_ids(a), x);
        }
        return {x, xn};
    }
    // The last: the final hidden states through lm_head (causal_lm) or as they are (base).
    void write_output(const tfx_forward_args* a, const View& x) {
        const DecoderConfig& c = this->config_;
        const Linear& head = packed_embed_ && c.tie_word_embeddings ? packed_embed_ : lm_head_;
        output_.write(a, x, causal_lm_ ? &head : nullptr, causal_lm_ ? c.vocab_size : c.hidden_size);
    }

    bool causal_lm_ = true;
    View embed_, final_norm_;
    Linear packed_embed_;  // the table as a packed weight, when it is stored quantized (packed_embedding)
    std::vector<Layer> layers_;
    Linear lm_head_;
    // This rank's heads (all of them without tensor parallelism).
    SelfAttention attn_{this->host_, this->config_.num_heads / this->host_.tp_size(),
                        rank_kv_heads(this->config_.num_kv_heads, this->host_.tp_size()), this->config_.head_dim};
    OutputWriter output_{this->host_};
    Scratch hidden_{this->host_}, normed_{this->host_};
    Scratch gate_{this->host_}, up_{this->host_};  // for ffn_gated
};

}  // namespace tfx::sdk
