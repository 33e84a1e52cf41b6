// GPT-NeoX (GPTNeoXForCausalLM: Pythia, GPT-NeoX-20B, ...), mirroring transformers'
// modeling_gpt_neox.py (v4.44):
//   embed_in -> N x layer -> final_layer_norm -> embed_out
//   layer, parallel residual:   x = mlp(ln2(x)) + attn(ln1(x)) + x
//   layer, sequential residual: y = attn(ln1(x)) + x; x = mlp(ln2(y)) + y
// with LayerNorm (with bias), a fused query_key_value projection laid out per head as
// [q | k | v], rotary embeddings on the first rotary_pct of each head's dims, a plain
// (ungated) MLP and an untied output projection. All compute goes through the host's ops.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfx/sdk/host.hpp"
#include "tfx/sdk/plugin.hpp"

namespace {

using tfx::sdk::Config;
using tfx::sdk::Error;
using tfx::sdk::View;

// ---- config.json: every field that changes the math ------------------------------------
struct GPTNeoXConfig {
    int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, head_dim, rotary_ndims;
    int64_t max_positions;
    float layer_norm_eps, rope_linear_factor = 1.0f;
    double rope_theta;
    bool use_parallel_residual, attention_bias, tie_word_embeddings;
    tfx_activation act;

    explicit GPTNeoXConfig(const Config& c) {
        vocab_size = c.get<int64_t>("vocab_size");
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        max_positions = c.get_or<int64_t>("max_position_embeddings", 2048);
        layer_norm_eps = c.get_or<float>("layer_norm_eps", 1e-5f);
        // The rotary base is "rotary_emb_base" (newer configs may name it "rope_theta").
        rope_theta = c.has("rope_theta") ? c.get<double>("rope_theta") : c.get_or<double>("rotary_emb_base", 10000.0);
        const double rotary_pct = c.get_or<double>("rotary_pct", 0.25);
        use_parallel_residual = c.get_or<bool>("use_parallel_residual", true);
        attention_bias = c.get_or<bool>("attention_bias", true);
        tie_word_embeddings = c.get_or<bool>("tie_word_embeddings", false);
        const std::string hidden_act = c.get_or<std::string>("hidden_act", "gelu");
        if (hidden_act == "gelu") act = TFX_ACT_GELU;
        else if (hidden_act == "gelu_new" || hidden_act == "gelu_pytorch_tanh") act = TFX_ACT_GELU_TANH;
        else if (hidden_act == "relu") act = TFX_ACT_RELU;
        else if (hidden_act == "silu" || hidden_act == "swish") act = TFX_ACT_SILU;
        else c.fail("hidden_act", "unsupported activation '" + hidden_act + "'");
        for (auto [name, v] : {std::pair{"vocab_size", vocab_size}, {"hidden_size", hidden_size},
                               {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_layers},
                               {"num_attention_heads", num_heads}}) {
            if (v <= 0) c.fail(name, "must be positive");
        }
        if (hidden_size % num_heads != 0) c.fail("num_attention_heads", "must divide hidden_size");
        head_dim = hidden_size / num_heads;
        // rotary_ndims = int(head_size * rotary_pct): the leading dims of each head that rotate.
        if (rotary_pct < 0.0 || rotary_pct > 1.0) c.fail("rotary_pct", "must be in [0, 1]");
        rotary_ndims = static_cast<int64_t>(static_cast<double>(head_dim) * rotary_pct);
        if (rotary_ndims % 2 != 0) c.fail("rotary_pct", "gives an odd number of rotary dims (" + std::to_string(rotary_ndims) + ")");
        if (c.has("rope_scaling")) {
            const Config s = c.child("rope_scaling");
            const std::string type = s.has("rope_type") ? s.get<std::string>("rope_type") : s.get_or<std::string>("type", "default");
            if (type == "linear") {
                rope_linear_factor = s.get<float>("factor");
                if (rope_linear_factor <= 0.0f) s.fail("factor", "must be positive");
            } else if (type != "default") {
                c.fail("rope_scaling", "unsupported rope type '" + type + "' (default, linear)");
            }
        }
    }
};

// ---- rotary embeddings over rotary_ndims: inv_freq = theta^(-2i/rotary_ndims), in f32 -------
class Rotary {
public:
    // Linear scaling divides the positions by the factor (1: no scaling).
    Rotary(double theta, int64_t dim, float linear_factor) : inv_freq_(static_cast<size_t>(dim / 2)), factor_(linear_factor) {
        for (int64_t i = 0; i < dim / 2; ++i) {
            inv_freq_[i] = 1.0f / std::pow(static_cast<float>(theta), static_cast<float>(2 * i) / static_cast<float>(dim));
        }
    }

    // cos/sin [tokens, rotary_ndims / 2] for the given positions.
    void compute(const int64_t* positions, int64_t tokens, std::vector<float>& cos, std::vector<float>& sin) const {
        const int64_t half = static_cast<int64_t>(inv_freq_.size());
        cos.resize(static_cast<size_t>(tokens * half));
        sin.resize(static_cast<size_t>(tokens * half));
        for (int64_t t = 0; t < tokens; ++t) {
            float position = static_cast<float>(positions[t]);
            if (factor_ != 1.0f) position /= factor_;
            for (int64_t i = 0; i < half; ++i) {
                const float angle = position * inv_freq_[i];
                cos[t * half + i] = std::cos(angle);
                sin[t * half + i] = std::sin(angle);
            }
        }
    }

private:
    std::vector<float> inv_freq_;
    float factor_;
};

// ---- the model -----------------------------------------------------------------------------
struct Linear {
    tfx_weight* weight = nullptr;
    View bias;
    bool has_bias = false;
};

struct Layer {
    View ln1_w, ln1_b, ln2_w, ln2_b;
    Linear qkv, dense, h_to_4h, four_h_to_h;
};

class GPTNeoX {
public:
    explicit GPTNeoX(const tfx_host_services* services) : host_(services), config_(host_.config()) {}

    ~GPTNeoX() {
        for (Layer& l : layers_) {
            for (Linear* lin : {&l.qkv, &l.dense, &l.h_to_4h, &l.four_h_to_h}) release(*lin);
        }
        release(embed_out_);
    }
    GPTNeoX(const GPTNeoX&) = delete;
    GPTNeoX& operator=(const GPTNeoX&) = delete;

    void load(const char* architecture) {
        head_of(architecture);
        const auto& c = config_;
        const int64_t h = c.hidden_size;
        // Tied embeddings: either side of the tie may be the stored tensor.
        if (host_.has_weight("gpt_neox.embed_in.weight") || !c.tie_word_embeddings) {
            embed_in_ = host_.weight("gpt_neox.embed_in.weight", {c.vocab_size, h});
        } else {
            embed_in_ = host_.weight("embed_out.weight", {c.vocab_size, h});
        }
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = "gpt_neox.layers." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.ln1_w = host_.weight_f32(p + "input_layernorm.weight", {h});
            l.ln1_b = host_.weight_f32(p + "input_layernorm.bias", {h});
            l.ln2_w = host_.weight_f32(p + "post_attention_layernorm.weight", {h});
            l.ln2_b = host_.weight_f32(p + "post_attention_layernorm.bias", {h});
            l.qkv = linear(p + "attention.query_key_value", 3 * h, h, c.attention_bias);
            l.dense = linear(p + "attention.dense", h, h, c.attention_bias);
            l.h_to_4h = linear(p + "mlp.dense_h_to_4h", c.intermediate_size, h, true);
            l.four_h_to_h = linear(p + "mlp.dense_4h_to_h", h, c.intermediate_size, true);
        }
        final_ln_w_ = host_.weight_f32("gpt_neox.final_layer_norm.weight", {h});
        final_ln_b_ = host_.weight_f32("gpt_neox.final_layer_norm.bias", {h});
        embed_out_.weight =
            host_.pack(c.tie_word_embeddings ? embed_in_ : host_.weight("embed_out.weight", {c.vocab_size, h}));
        rotary_ = std::make_unique<Rotary>(c.rope_theta, c.rotary_ndims, c.rope_linear_factor);
    }

    void get_info(tfx_model_info* info) {
        info->output_kind = TFX_OUTPUT_LOGITS;
        info->vocab_size = static_cast<int32_t>(config_.vocab_size);
        info->hidden_size = static_cast<int32_t>(config_.hidden_size);
        info->output_size = static_cast<int32_t>(config_.vocab_size);
        info->num_layers = static_cast<int32_t>(config_.num_layers);
        info->num_kv_heads = static_cast<int32_t>(config_.num_heads);
        info->head_dim = static_cast<int32_t>(config_.head_dim);
        info->max_positions = config_.max_positions;
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t b = a->batch, t = a->tokens, n = b * t, h = c.hidden_size;
        const int64_t heads = c.num_heads, hd = c.head_dim, half = c.rotary_ndims / 2;
        if (b <= 0 || t <= 0 || a->input_ids == nullptr || a->positions == nullptr || a->output == nullptr) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: batch, tokens, input_ids, positions and output are required");
        }
        hidden_.resize(n * h), normed_.resize(n * h), qkv_.resize(n * 3 * h), q_.resize(n * h), k_.resize(n * h);
        v_.resize(n * h), attn_.resize(n * h), attn_out_.resize(n * h), inner_.resize(n * c.intermediate_size);

        View ids(const_cast<int32_t*>(a->input_ids), tfx::sdk::kI32, {n});
        View x(hidden_.data(), {n, h}), xn(normed_.data(), {n, h}), attn_out(attn_out_.data(), {n, h});
        host_.embedding(embed_in_, ids, x);

        rotary_->compute(a->positions, n, cos_, sin_);
        View cos_v(cos_.data(), {n, half}), sin_v(sin_.data(), {n, half});

        // query_key_value's output is [n, heads, 3 * head_dim] with q, k, v side by side in each
        // head: strided views pick them out into compact [n, heads, head_dim] tensors.
        View qkv(qkv_.data(), {n, 3 * h});
        View q_src(qkv_.data(), {n, heads, hd}), k_src(qkv_.data() + hd, {n, heads, hd});
        View v_src(qkv_.data() + 2 * hd, {n, heads, hd});
        for (View* src : {&q_src, &k_src, &v_src}) src->with_strides({3 * h, 3 * hd, 1});
        View q_heads(q_.data(), {n, heads, hd}), k_heads(k_.data(), {n, heads, hd}), v_heads(v_.data(), {n, heads, hd});
        View o(attn_.data(), {n, h}), inner(inner_.data(), {n, c.intermediate_size});
        View q4(q_.data(), {b, t, heads, hd}), k4(k_.data(), {b, t, heads, hd});
        View v4(v_.data(), {b, t, heads, hd}), o4(attn_.data(), {b, t, heads, hd});

        for (int64_t i = 0; i < c.num_layers; ++i) {
            Layer& l = layers_[i];
            // Attention on input_layernorm(x).
            host_.layer_norm(x, l.ln1_w, &l.ln1_b, c.layer_norm_eps, xn);
            apply(l.qkv, xn, qkv);
            host_.copy(q_src, q_heads);
            host_.copy(k_src, k_heads);
            host_.copy(v_src, v_heads);
            if (half > 0) {
                host_.rope(q_heads, cos_v, sin_v);  // the first rotary_ndims dims; the rest pass
                host_.rope(k_heads, cos_v, sin_v);
            }
            tfx_attention_args args{};
            args.struct_size = sizeof(args);
            args.causal = 1;
            args.q = q4.get();
            args.k = k4.get();
            args.v = v4.get();
            args.out = o4.get();
            args.cache = a->cache != nullptr ? &a->cache[i] : nullptr;
            args.past_len = a->past_len;
            args.key_mask = a->key_mask;
            args.scale = static_cast<float>(std::pow(static_cast<double>(hd), -0.5));
            host_.attend(args);
            apply(l.dense, o, attn_out);
            if (c.use_parallel_residual) {
                // x = mlp(post_attention_layernorm(x)) + attn + x
                host_.layer_norm(x, l.ln2_w, &l.ln2_b, c.layer_norm_eps, xn);
                mlp(l, xn, inner, xn);
                host_.add(xn, attn_out, xn);
                host_.add(xn, x, x);
            } else {
                // y = attn + x; x = mlp(post_attention_layernorm(y)) + y
                host_.add(attn_out, x, x);
                host_.layer_norm(x, l.ln2_w, &l.ln2_b, c.layer_norm_eps, xn);
                mlp(l, xn, inner, xn);
                host_.add(xn, x, x);
            }
        }
        host_.layer_norm(x, final_ln_w_, &final_ln_b_, c.layer_norm_eps, xn);
        write_output(a, xn);
    }

    void weight_specs(const char* architecture, tfx_sink sink) {
        head_of(architecture);
        const auto& c = config_;
        const int64_t h = c.hidden_size;
        nlohmann::json specs = nlohmann::json::array();
        auto add = [&](const std::string& name, std::vector<int64_t> shape, const char* init) {
            specs.push_back({{"name", name}, {"shape", shape}, {"init", init}});
        };
        auto add_linear = [&](const std::string& name, int64_t out, int64_t in, bool bias) {
            add(name + ".weight", {out, in}, "normal");
            if (bias) add(name + ".bias", {out}, "zeros");
        };
        add("gpt_neox.embed_in.weight", {c.vocab_size, h}, "normal");
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = "gpt_neox.layers." + std::to_string(i) + ".";
            add(p + "input_layernorm.weight", {h}, "ones");
            add(p + "input_layernorm.bias", {h}, "zeros");
            add(p + "post_attention_layernorm.weight", {h}, "ones");
            add(p + "post_attention_layernorm.bias", {h}, "zeros");
            add_linear(p + "attention.query_key_value", 3 * h, h, c.attention_bias);
            add_linear(p + "attention.dense", h, h, c.attention_bias);
            add_linear(p + "mlp.dense_h_to_4h", c.intermediate_size, h, true);
            add_linear(p + "mlp.dense_4h_to_h", h, c.intermediate_size, true);
        }
        add("gpt_neox.final_layer_norm.weight", {h}, "ones");
        add("gpt_neox.final_layer_norm.bias", {h}, "zeros");
        if (!c.tie_word_embeddings) add("embed_out.weight", {c.vocab_size, h}, "normal");
        const std::string text = specs.dump();
        sink.write(sink.ctx, text.data(), text.size());
    }

private:
    static void head_of(const char* architecture) {
        const std::string arch = architecture != nullptr ? architecture : "";
        if (arch != "GPTNeoXForCausalLM") {
            throw Error(TFX_ERR_UNSUPPORTED, "gpt_neox: unsupported architecture '" + arch + "' (GPTNeoXForCausalLM)");
        }
    }

    Linear linear(const std::string& name, int64_t out, int64_t in, bool bias) {
        Linear l;
        l.weight = host_.pack(host_.weight(name + ".weight", {out, in}));
        if (bias) {
            l.bias = host_.weight_f32(name + ".bias", {out});
            l.has_bias = true;
        }
        return l;
    }

    void release(Linear& l) {
        if (l.weight != nullptr) host_.release(l.weight);
        l.weight = nullptr;
    }

    void apply(const Linear& l, const View& x, View& y) { host_.linear(x, l.weight, l.has_bias ? &l.bias : nullptr, y); }

    // dense_4h_to_h(act(dense_h_to_4h(x))).
    void mlp(const Layer& l, const View& x, View& inner, View& y) {
        apply(l.h_to_4h, x, inner);
        host_.activation(config_.act, inner, inner);
        apply(l.four_h_to_h, inner, y);
    }

    // Logits for every position, or only each sequence's last one.
    void write_output(const tfx_forward_args* a, View& normed) {
        const auto& c = config_;
        const int64_t b = a->batch, t = a->tokens, h = c.hidden_size;
        View out(*a->output);
        const int64_t rows = a->last_token_only ? b : b * t;
        const int64_t width = c.vocab_size;
        if (out.dtype() != tfx::sdk::kF32 || out.numel() != rows * width) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: output must be f32 with " + std::to_string(rows) + " x " +
                                                      std::to_string(width) + " elements");
        }
        View src = normed;
        if (a->last_token_only && t > 1) {
            last_.resize(b * h);
            for (int64_t i = 0; i < b; ++i) {
                std::copy_n(normed.data() + ((i + 1) * t - 1) * h, h, last_.data() + i * h);
            }
            src = View(last_.data(), {b, h});
        } else {
            src = View(normed.data(), {rows, h});
        }
        View dst(out.data(), {rows, width});
        host_.linear(src, embed_out_.weight, nullptr, dst);
    }

    tfx::sdk::Host host_;
    GPTNeoXConfig config_;
    View embed_in_, final_ln_w_, final_ln_b_;
    std::vector<Layer> layers_;
    Linear embed_out_;
    std::unique_ptr<Rotary> rotary_;
    std::vector<float> hidden_, normed_, qkv_, q_, k_, v_, attn_, attn_out_, inner_, cos_, sin_, last_;
};

const tfx_model_table kTable = {
    sizeof(tfx_model_table),
    tfx::sdk::method<&GPTNeoX::load>,
    tfx::sdk::method<&GPTNeoX::get_info>,
    tfx::sdk::method<&GPTNeoX::forward>,
    tfx::sdk::method<&GPTNeoX::weight_specs>,
};

}  // namespace

TFX_PLUGIN_EXPORT(GPTNeoX, kTable)
