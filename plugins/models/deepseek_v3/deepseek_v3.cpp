// DeepSeek-V3 (DeepseekV3ForCausalLM, DeepseekV3Model), mirroring transformers' modeling_deepseek_v3.py:
//   embed -> N x [x += mla(rms_norm(x)); x += mlp_or_moe(rms_norm(x))] -> rms_norm -> lm_head
// Multi-head latent attention (MLA): queries through a low-rank bottleneck (q_a_proj, RMSNorm,
// q_b_proj; q_proj without q_lora_rank), keys and values from a compressed latent
// (kv_a_proj_with_mqa gives kv_lora_rank latent dims and one rope key of qk_rope_head_dim shared
// by every head; the latent goes through RMSNorm and kv_b_proj to each head's nope key and value).
// The first first_k_dense_replace layers have a SwiGLU MLP, the rest a mixture of experts: sigmoid
// router scores, experts chosen group-limited on the scores plus e_score_correction_bias (the top
// topk_group groups by the sum of their two best, then the top num_experts_per_tok in them),
// weighted by their scores (renormalized with norm_topk_prob) times routed_scaling_factor, plus
// the shared experts.
//
// How it maps onto the attention ABI (one head_dim for q, k, v and the cache): a head is laid out
// [rope dims, nope dims] for q and k, since the order of a head's dims does not change q·k and the
// backend's rope turns a head's first dims (with rope_interleave the rope dims are de-interleaved
// as transformers does before rotating); values are padded with zeros to the same width and the
// padding dropped after attention. The cache therefore holds expanded keys and values, as
// transformers' eager attention does, not the compressed latent.
#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "tfx/sdk/decoder.hpp"

namespace {

using namespace tfx::sdk;

struct DeepseekV3Config : DecoderConfig {
    tfx_activation act;
    RopeScaling rope;
    int64_t q_lora_rank;  // 0: q_proj
    int64_t kv_lora_rank, qk_nope, qk_rope, v_head_dim;
    bool rope_interleave;
    int64_t routed_experts, shared_experts, moe_intermediate_size, experts_per_token, groups, top_groups;
    int64_t first_dense_layers;
    bool norm_topk_prob;
    float routed_scaling, attention_scale;

    // Defaults are DeepseekV3Config's.
    explicit DeepseekV3Config(const Config& c)
        : DecoderConfig(c, {.head_dim = 64, .max_position_embeddings = 4096}),
          act(activation_from(c)),
          rope(rope_scaling(c, {"default", "linear", "dynamic", "yarn"})),
          q_lora_rank(c.json().contains("q_lora_rank") ? c.get_or<int64_t>("q_lora_rank", 0) : 1536),
          kv_lora_rank(c.get_positive<int64_t>("kv_lora_rank", 512)),
          qk_nope(c.get_positive<int64_t>("qk_nope_head_dim", 128)),
          qk_rope(c.get_positive<int64_t>("qk_rope_head_dim", 64)),
          v_head_dim(c.get_positive<int64_t>("v_head_dim", 128)),
          rope_interleave(c.get_or<bool>("rope_interleave", true)),
          routed_experts(c.get_positive<int64_t>("n_routed_experts", 256)),
          shared_experts(c.get_or<int64_t>("n_shared_experts", 1)),
          moe_intermediate_size(c.get_positive<int64_t>("moe_intermediate_size", 2048)),
          experts_per_token(c.get_positive<int64_t>("num_experts_per_tok", 8)),
          groups(c.get_positive<int64_t>("n_group", 8)),
          top_groups(c.get_positive<int64_t>("topk_group", 4)),
          first_dense_layers(c.get_or<int64_t>("first_k_dense_replace", 3)),
          norm_topk_prob(c.get_or<bool>("norm_topk_prob", true)),
          routed_scaling(c.get_positive<float>("routed_scaling_factor", 2.5f)) {
        if (q_lora_rank < 0) c.fail("q_lora_rank", "must be positive or null");
        if (qk_rope % 2 != 0) c.fail("qk_rope_head_dim", "must be even for rotary embeddings");
        if (shared_experts < 0) c.fail("n_shared_experts", "must not be negative");
        if (first_dense_layers < 0) c.fail("first_k_dense_replace", "must not be negative");
        if (routed_experts % groups != 0) c.fail("n_group", "must divide n_routed_experts");
        if (top_groups > groups) c.fail("topk_group", "must not exceed n_group");
        if (experts_per_token > top_groups * (routed_experts / groups)) {
            c.fail("num_experts_per_tok", "must not exceed the experts of topk_group groups");
        }
        // The attention heads: q and k are qk_nope + qk_rope wide, v v_head_dim; the cache holds
        // heads of the wider.
        head_dim = std::max(qk_nope + qk_rope, v_head_dim);
        num_kv_heads = num_heads;
        // qk_head_dim^-0.5, times YaRN's mscale(factor, mscale_all_dim) squared when set.
        attention_scale = 1.0f / std::sqrt(static_cast<float>(qk_nope + qk_rope));
        if (rope.type != "default") {
            const double all_dims = rope.scaling.get_or<double>("mscale_all_dim", 0.0);
            const double factor = rope.scaling.get_or<double>("factor", 1.0);
            if (all_dims != 0.0 && factor > 1.0) {
                const auto mscale = static_cast<float>(0.1 * all_dims * std::log(factor) + 1.0);
                attention_scale *= mscale * mscale;
            }
        }
    }
};

struct Layer {
    View input_norm, post_attention_norm;
    Linear q_proj;      // without q_lora_rank
    Linear q_a, q_b;    // with it, around q_a_norm
    View q_a_norm;      // [q_lora_rank]
    Linear kv_a, kv_b;  // kv_a_proj_with_mqa, kv_b_proj around kv_a_norm
    View kv_a_norm;     // [kv_lora_rank]
    Linear o;
    bool sparse = false;
    GatedMlp mlp;       // dense layers
    RoutedExperts moe;  // mlp.gate and mlp.experts.{j}
    View choice_bias;   // mlp.gate.e_score_correction_bias [routed experts]
    GatedMlp shared;    // mlp.shared_experts
};

class DeepseekV3 : public DecoderModel<DeepseekV3, DeepseekV3Config, Init::ones, Layer> {
  public:
    using DecoderModel::DecoderModel;

    void declare_layer(WeightTable& w, Layer& l, const std::string& p, int64_t i) {
        const auto& c = config_;
        const int64_t h = c.hidden_size, heads = c.num_heads, qk = c.qk_nope + c.qk_rope;
        const std::string a = p + "self_attn.";
        l.input_norm = w.f32(p + "input_layernorm.weight", {h});
        l.post_attention_norm = w.f32(p + "post_attention_layernorm.weight", {h});
        if (c.q_lora_rank > 0) {
            l.q_a = w.linear(a + "q_a_proj", c.q_lora_rank, h, false);
            l.q_a_norm = w.f32(a + "q_a_layernorm.weight", {c.q_lora_rank});
            l.q_b = w.linear(a + "q_b_proj", heads * qk, c.q_lora_rank, false);
        } else {
            l.q_proj = w.linear(a + "q_proj", heads * qk, h, false);
        }
        l.kv_a = w.linear(a + "kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope, h, false);
        l.kv_a_norm = w.f32(a + "kv_a_layernorm.weight", {c.kv_lora_rank});
        l.kv_b = w.linear(a + "kv_b_proj", heads * (c.qk_nope + c.v_head_dim), c.kv_lora_rank, false);
        l.o = w.linear(a + "o_proj", h, heads * c.v_head_dim, false);
        l.sparse = i >= c.first_dense_layers;
        const std::array<const char*, 3> names = {"gate_proj", "up_proj", "down_proj"};
        if (!l.sparse) {
            l.mlp = gated_mlp(w, p + "mlp.", names, h, c.intermediate_size, false);
            return;
        }
        l.moe =
            routed_experts(w, p + "mlp.gate", p + "mlp.experts.", names, c.routed_experts, h, c.moe_intermediate_size);
        l.choice_bias = w.f32(p + "mlp.gate.e_score_correction_bias", {c.routed_experts}, Init::zeros);
        if (c.shared_experts > 0) {
            l.shared =
                gated_mlp(w, p + "mlp.shared_experts.", names, h, c.moe_intermediate_size * c.shared_experts, false);
        }
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        auto [x, xn] = embed(a);
        const int64_t n = x.dim(0);
        if (!zero_uploaded_) {  // a single 0, broadcast (stride 0) into the padding of heads
            const float zero = 0.0f;
            zero_ = zero_buffer_.view(kF32, {1});
            host_.upload(&zero, zero_);
            zero_uploaded_ = true;
        }
        View sublayer = sublayer_.rows(n, c.hidden_size);
        rope_.compute(a);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const Layer& l = layers_[i];
            host_.rms_norm(x, l.input_norm, c.rms_norm_eps, 0.0f, xn);
            latent_attention(a, i, l, xn, sublayer);
            host_.add(x, sublayer, x);
            host_.rms_norm(x, l.post_attention_norm, c.rms_norm_eps, 0.0f, xn);
            if (l.sparse) {
                experts(i, l, xn, sublayer);
            } else {
                ffn_gated(host_, l.mlp, c.act, xn, sublayer, gate_, up_);
            }
            host_.add(x, sublayer, x);
        }
        host_.rms_norm(x, final_norm_, c.rms_norm_eps, 0.0f, xn);
        write_output(a, xn);
    }

  private:
    // y = o(attention) for layer `layer` of the forward, from its normed input x [n, hidden].
    void latent_attention(const tfx_forward_args* a, int64_t layer, const Layer& l, const View& x, View& y) {
        const auto& c = config_;
        const int64_t n = x.dim(0), heads = c.num_heads, width = c.head_dim;
        const int64_t nope = c.qk_nope, rope = c.qk_rope, value = c.v_head_dim, qk = nope + rope;
        const int64_t latent_dims = c.kv_lora_rank;

        View q = q_.rows(n, heads * qk);  // per head [nope, rope], as projected
        if (c.q_lora_rank > 0) {
            View q_latent = q_latent_.rows(n, c.q_lora_rank);
            l.q_a(x, q_latent);
            host_.rms_norm(q_latent, l.q_a_norm, c.rms_norm_eps, 0.0f, q_latent);
            l.q_b(q_latent, q);
        } else {
            l.q_proj(x, q);
        }
        View kv_a = kv_a_.rows(n, latent_dims + rope);  // [latent, shared rope key]
        l.kv_a(x, kv_a);
        View latent = latent_.rows(n, latent_dims);
        copy_view(kv_a.at(0, {n, latent_dims}).with_strides({latent_dims + rope, 1}), latent);
        host_.rms_norm(latent, l.kv_a_norm, c.rms_norm_eps, 0.0f, latent);
        View kv = kv_.rows(n, heads * (nope + value));  // per head [nope key, value]
        l.kv_b(latent, kv);

        // The attention heads, `width` wide: q and k [rope, nope, zeros], v [value, zeros].
        View qh = q_heads_.rows(n, heads * width), kh = k_heads_.rows(n, heads * width);
        View vh = v_heads_.rows(n, heads * width), out = out_heads_.rows(n, heads * width);
        const int64_t row = heads * width;
        auto head_slice = [&](const View& base, int64_t at, int64_t dims) {
            return base.at(at, {n, heads, dims}).with_strides({row, width, 1});
        };
        copy_view(q.at(0, {n, heads, nope}).with_strides({heads * qk, qk, 1}), head_slice(qh, rope, nope));
        copy_rope_dims(q.at(nope, {n, heads, rope}), heads * qk, qk, qh);
        copy_view(kv.at(0, {n, heads, nope}).with_strides({heads * (nope + value), nope + value, 1}),
                  head_slice(kh, rope, nope));
        copy_rope_dims(kv_a.at(latent_dims, {n, heads, rope}), latent_dims + rope, 0, kh);  // one key for all heads
        copy_view(kv.at(nope, {n, heads, value}).with_strides({heads * (nope + value), nope + value, 1}),
                  head_slice(vh, 0, value));
        if (width > qk) {
            View qk_pad = head_slice(qh, qk, width - qk), k_pad = head_slice(kh, qk, width - qk);
            copy_view(zeros(n, heads, width - qk), qk_pad);
            copy_view(zeros(n, heads, width - qk), k_pad);
        }
        if (width > value) copy_view(zeros(n, heads, width - value), head_slice(vh, value, width - value));

        View q3 = qh.reshape({n, heads, width}), k3 = kh.reshape({n, heads, width});
        rope_.apply(q3);
        rope_.apply(k3);
        attend(host_, a, layer,
               {.q = q3,
                .k = k3,
                .v = vh.reshape({n, heads, width}),
                .out = out.reshape({n, heads, width}),
                .scale = c.attention_scale});
        View values = values_.rows(n, heads * value);
        copy_view(head_slice(out, 0, value), values.reshape({n, heads, value}));
        l.o(values, y);
    }

    // The rope dims of each head from `src` [n, heads, rope] (token stride `token_stride`, head
    // stride `head_stride`, 0 for one key shared by all heads) into the first dims of the heads
    // of `dst`; de-interleaved with rope_interleave (dim 2i + j goes to j * rope / 2 + i), as
    // transformers' apply_rotary_pos_emb_interleave does before rotate_half.
    void copy_rope_dims(const View& src, int64_t token_stride, int64_t head_stride, const View& dst) {
        const auto& c = config_;
        const int64_t n = src.dim(0), heads = c.num_heads, rope = c.qk_rope, width = c.head_dim;
        if (!c.rope_interleave) {
            copy_view(src.at(0, {n, heads, rope}).with_strides({token_stride, head_stride, 1}),
                      dst.at(0, {n, heads, rope}).with_strides({heads * width, width, 1}));
            return;
        }
        const int64_t half = rope / 2;
        copy_view(src.at(0, {n, heads, 2, half}).with_strides({token_stride, head_stride, 1, 2}),
                  dst.at(0, {n, heads, 2, half}).with_strides({heads * width, width, half, 1}));
    }

    // host_.copy into a view made for the call (a slice of a buffer).
    void copy_view(const View& src, View dst) const { host_.copy(src, dst); }

    // A [n, heads, dims] view of zeros (one stored 0, broadcast).
    View zeros(int64_t n, int64_t heads, int64_t dims) const {
        return zero_.at(0, {n, heads, dims}).with_strides({0, 0, 0});
    }

    // y = the routed experts' weighted sum plus the shared experts, for MoE layer `layer`.
    void experts(int64_t layer, const Layer& l, const View& x, View& y) {
        const auto& c = config_;
        const int64_t n = x.dim(0), count = c.routed_experts, k = c.experts_per_token;
        View logits = routed_.probs.rows(n, count);
        l.moe.router(x, logits);
        router_logits_.resize(static_cast<size_t>(n * count));
        host_.download(logits, router_logits_.data());
        std::vector<float>& bias = choice_bias_[layer];
        if (bias.empty()) {
            bias.resize(static_cast<size_t>(count));
            host_.download(l.choice_bias, bias.data());
        }
        chosen_.resize(static_cast<size_t>(n * k));
        chosen_weights_.resize(static_cast<size_t>(n * k));
        for (int64_t t = 0; t < n; ++t)
            route(&router_logits_[t * count], bias, &chosen_[t * k], &chosen_weights_[t * k]);
        View ids = routed_.choice.view(kI32, {n, k}), weights = routed_.weights.rows(n, k);
        host_.upload(chosen_.data(), ids);
        host_.upload(chosen_weights_.data(), weights);
        expert_ffn(host_, l.moe, c.act, ids, weights, x, y, gate_, up_, routed_);
        if (c.shared_experts > 0) {
            View shared = shared_out_.rows(n, c.hidden_size);
            ffn_gated(host_, l.shared, c.act, x, shared, gate_, up_);
            host_.add(y, shared, y);
        }
    }

    // One token's experts from its router logits, as DeepseekV3TopkRouter chooses them.
    void route(const float* logits, const std::vector<float>& bias, int32_t* ids, float* weights) {
        const auto& c = config_;
        const int64_t count = c.routed_experts, per_group = count / c.groups;
        scores_.resize(static_cast<size_t>(count));
        choice_.resize(static_cast<size_t>(count));
        for (int64_t e = 0; e < count; ++e) {
            scores_[e] = 1.0f / (1.0f + std::exp(-logits[e]));
            choice_[e] = scores_[e] + bias[e];
        }
        // A group's score: the sum of its two best choice scores (its best, in groups of one).
        group_scores_.assign(static_cast<size_t>(c.groups), 0.0f);
        for (int64_t g = 0; g < c.groups; ++g) {
            const float* first = &choice_[g * per_group];
            std::vector<float> best(first, first + per_group);
            const auto take = static_cast<int64_t>(std::min<int64_t>(2, per_group));
            std::partial_sort(best.begin(), best.begin() + take, best.end(), std::greater<>());
            for (int64_t j = 0; j < take; ++j) group_scores_[g] += best[j];
        }
        const std::vector<int64_t> kept = top_indices(group_scores_, c.top_groups);
        // Experts outside the kept groups compete with a choice score of 0 (masked_fill), as in
        // transformers.
        for (int64_t g = 0; g < c.groups; ++g) {
            if (std::find(kept.begin(), kept.end(), g) != kept.end()) continue;
            std::fill(choice_.begin() + g * per_group, choice_.begin() + (g + 1) * per_group, 0.0f);
        }
        const std::vector<int64_t> chosen = top_indices(choice_, c.experts_per_token);
        float sum = 0.0f;
        for (size_t s = 0; s < chosen.size(); ++s) {
            ids[s] = static_cast<int32_t>(chosen[s]);
            weights[s] = scores_[chosen[s]];
            sum += weights[s];
        }
        for (size_t s = 0; s < chosen.size(); ++s) {
            if (c.norm_topk_prob) weights[s] /= sum + 1e-20f;
            weights[s] *= c.routed_scaling;
        }
    }

    // The indices of the k largest values, largest first (ties: the lower index first).
    static std::vector<int64_t> top_indices(const std::vector<float>& values, int64_t k) {
        std::vector<int64_t> order(values.size());
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t i, int64_t j) {
            return values[i] > values[j] || (values[i] == values[j] && i < j);
        });
        order.resize(static_cast<size_t>(k));
        return order;
    }

    Rope rope_{host_, RopeSettings{config_.qk_rope, config_.rope_theta, config_.rope.type, config_.rope.scaling,
                                   config_.max_positions}};
    Scratch sublayer_{host_}, q_{host_}, q_latent_{host_}, kv_a_{host_}, latent_{host_}, kv_{host_};
    Scratch q_heads_{host_}, k_heads_{host_}, v_heads_{host_}, out_heads_{host_}, values_{host_}, shared_out_{host_};
    RoutedScratch routed_{host_};
    DeviceBuffer zero_buffer_{host_};
    View zero_;
    bool zero_uploaded_ = false;
    // Routing on the host: the router's logits, each MoE layer's choice bias, the choice.
    std::vector<float> router_logits_, scores_, choice_, group_scores_, chosen_weights_;
    std::vector<std::vector<float>> choice_bias_ = std::vector<std::vector<float>>(config_.num_layers);
    std::vector<int32_t> chosen_;
};

}  // namespace

TFX_PLUGIN_EXPORT(DeepseekV3, tfx::sdk::model_table<DeepseekV3>)
