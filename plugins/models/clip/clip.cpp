// CLIP (CLIPModel), mirroring transformers' modeling_clip.py (v4.44): two towers whose
// projected, L2-normalised outputs share one space.
//   text:   token + learned positions -> N x pre-norm layers with a causal mask -> final LN ->
//           the first EOS token (legacy eos_token_id 2: the largest id) -> text_projection
//   vision: [class_embedding; conv_patch(pixels)] + positions -> pre_layrnorm -> N x pre-norm
//           layers -> post_layernorm of the class token -> visual_projection
// A call's sequences are all images (pixel_values, ABI 2.8) or all texts (ids); each gives one
// embedding row (TFX_OUTPUT_EMBEDDING), and info.embedding_scale is exp(logit_scale), which makes
// logits_per_image of two embeddings' dot product. quick_gelu (x * sigmoid(1.702 x)) is composed
// from the backend's ops as 0.5 x (1 + tanh(0.851 x)). The patch convolution (no bias) is the
// SDK's PatchEmbedding, as in vit.
#include <cmath>
#include <string>
#include <vector>

#include "tfx/sdk/model.hpp"
#include "tfx/sdk/vision.hpp"

namespace {

using namespace tfx::sdk;

// A tower's sub-config (text_config, vision_config); absent, every field takes its default.
Config tower_config(const Config& c, const char* key) {
    return c.has(key) ? c.child(key) : Config(nlohmann::json::object(), c.file() + ": " + key);
}

// One tower's shape (text_config or vision_config, with CLIPTextConfig / CLIPVisionConfig defaults).
struct TowerConfig {
    int64_t hidden_size, intermediate_size, num_layers, num_heads;
    float layer_norm_eps;
    bool quick_gelu;
    tfx_activation act = TFX_ACT_GELU;

    TowerConfig(const Config& c, int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads) {
        hidden_size = c.get_or<int64_t>("hidden_size", hidden);
        intermediate_size = c.get_or<int64_t>("intermediate_size", intermediate);
        num_layers = c.get_or<int64_t>("num_hidden_layers", layers);
        num_heads = c.get_or<int64_t>("num_attention_heads", heads);
        layer_norm_eps = c.get_positive<float>("layer_norm_eps", 1e-5f);
        const std::string act_name = c.get_or<std::string>("hidden_act", "quick_gelu");
        quick_gelu = act_name == "quick_gelu";
        if (!quick_gelu) act = activation_from(c, "hidden_act");
        require_positive(c, {{"hidden_size", hidden_size},
                             {"intermediate_size", intermediate_size},
                             {"num_hidden_layers", num_layers},
                             {"num_attention_heads", num_heads}});
        if (hidden_size % num_heads != 0) c.fail("num_attention_heads", "must divide hidden_size");
    }
};

struct ClipConfig {
    TowerConfig text, vision;
    int64_t vocab_size, max_positions, eos_token_id, image_size, patch_size, channels, projection_dim;

    explicit ClipConfig(const Config& c)
        : text(tower_config(c, "text_config"), 512, 2048, 12, 8),
          vision(tower_config(c, "vision_config"), 768, 3072, 12, 12) {
        const Config t = tower_config(c, "text_config"), v = tower_config(c, "vision_config");
        vocab_size = t.get_or<int64_t>("vocab_size", 49408);
        max_positions = t.get_or<int64_t>("max_position_embeddings", 77);
        eos_token_id = t.get_or<int64_t>("eos_token_id", 2);
        image_size = v.get_or<int64_t>("image_size", 224);
        patch_size = v.get_or<int64_t>("patch_size", 32);
        channels = v.get_or<int64_t>("num_channels", 3);
        projection_dim = c.get_or<int64_t>("projection_dim", 512);
        require_positive(c, {{"text_config.vocab_size", vocab_size},
                             {"text_config.max_position_embeddings", max_positions},
                             {"vision_config.image_size", image_size},
                             {"vision_config.patch_size", patch_size},
                             {"vision_config.num_channels", channels},
                             {"projection_dim", projection_dim}});
        if (image_size % patch_size != 0) c.fail("vision_config.patch_size", "must divide image_size");
        if (image_size > 8192) c.fail("vision_config.image_size", "is implausibly large");
    }
    int64_t patches_per_side() const { return image_size / patch_size; }
    int64_t image_tokens() const { return patches_per_side() * patches_per_side() + 1; }  // + class token
};

struct Layer {
    AttentionWeights attention;  // self_attn.{q,k,v,out}_proj
    LayerNorm norm1, norm2;      // layer_norm1 (before attention), layer_norm2 (before the MLP)
    Mlp mlp;                     // mlp.fc1, mlp.fc2
};

// One tower's encoder layers and their scratch.
class Tower {
  public:
    Tower(const Host& host, const TowerConfig& c)
        : host_(host), config_(c), attn_(host, c.num_heads, c.num_heads, c.hidden_size / c.num_heads) {}

    void declare(WeightTable& w, const std::string& prefix) {
        const auto& c = config_;
        const int64_t h = c.hidden_size;
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string p = prefix + "encoder.layers." + std::to_string(i) + ".";
            Layer& l = layers_[i];
            l.attention.q = w.linear(p + "self_attn.q_proj", h, h, true);
            l.attention.k = w.linear(p + "self_attn.k_proj", h, h, true);
            l.attention.v = w.linear(p + "self_attn.v_proj", h, h, true);
            l.attention.o = w.linear(p + "self_attn.out_proj", h, h, true);
            l.norm1 = w.layer_norm(p + "layer_norm1", h);
            l.norm2 = w.layer_norm(p + "layer_norm2", h);
            l.mlp.up = w.linear(p + "mlp.fc1", c.intermediate_size, h, true);
            l.mlp.down = w.linear(p + "mlp.fc2", h, c.intermediate_size, true);
        }
    }

    // x = layers(x), pre-norm; `causal` for the text tower.
    void run(const tfx_forward_args* a, View& x, bool causal) {
        const auto& c = config_;
        const int64_t n = x.dim(0), h = c.hidden_size;
        View y = tmp_.rows(n, h);
        for (size_t i = 0; i < layers_.size(); ++i) {
            const Layer& l = layers_[i];
            layer_norm(host_, x, l.norm1, c.layer_norm_eps, y);
            attn_.project(l.attention, y).attend(a, static_cast<int64_t>(i), {.causal = causal}).output(l.attention, y);
            host_.add(y, x, x);
            layer_norm(host_, x, l.norm2, c.layer_norm_eps, y);
            View u = inner_.rows(n, c.intermediate_size);
            l.mlp.up(y, u);
            activate(u);
            l.mlp.down(u, y);
            host_.add(y, x, x);
        }
    }

  private:
    // The tower's activation in place: quick_gelu as 0.5 x (1 + tanh(0.851 x)), else the backend's.
    void activate(View& u) {
        if (!config_.quick_gelu) {
            host_.activation(config_.act, u, u);
            return;
        }
        View t = gate_.rows(u.dim(0), u.dim(1));
        host_.scale(u, 0.851f, t);
        host_.activation(TFX_ACT_TANH, t, t);
        host_.mul(u, t, t);
        host_.add(u, t, u);
        host_.scale(u, 0.5f, u);
    }

    const Host& host_;
    const TowerConfig& config_;
    std::vector<Layer> layers_;
    SelfAttention attn_;
    Scratch tmp_{host_}, inner_{host_}, gate_{host_};
};

class Clip : public ModelPlugin<Clip, ClipConfig> {
  public:
    using ModelPlugin::ModelPlugin;

    void declare(WeightTable& w) {
        const auto& c = config_;
        host_.task_head({"embeddings"});
        const int64_t th = c.text.hidden_size, vh = c.vision.hidden_size, p = c.patch_size;
        token_embedding_ = w.tensor("text_model.embeddings.token_embedding.weight", {c.vocab_size, th});
        text_positions_ = w.tensor("text_model.embeddings.position_embedding.weight", {c.max_positions, th});
        text_.declare(w, "text_model.");
        final_norm_ = w.layer_norm("text_model.final_layer_norm", th);
        text_projection_ = w.linear("text_projection", c.projection_dim, th, false);
        class_embedding_ = w.f32("vision_model.embeddings.class_embedding", {vh}, Init::normal);
        const View conv = w.tensor("vision_model.embeddings.patch_embedding.weight", {vh, c.channels, p, p});
        patch_projection_ = w.pack(conv.reshape({vh, c.channels * p * p}));
        vision_positions_ = w.tensor("vision_model.embeddings.position_embedding.weight", {c.image_tokens(), vh});
        pre_norm_ = w.layer_norm("vision_model.pre_layrnorm", vh);
        vision_.declare(w, "vision_model.");
        post_norm_ = w.layer_norm("vision_model.post_layernorm", vh);
        visual_projection_ = w.linear("visual_projection", c.projection_dim, vh, false);
        logit_scale_ = w.f32("logit_scale", {}, Init::zeros);
    }

    void get_info(tfx_model_info* info) {
        const auto& c = config_;
        info->output_kind = TFX_OUTPUT_EMBEDDING;
        info->vocab_size = static_cast<int32_t>(c.vocab_size);
        info->hidden_size = static_cast<int32_t>(c.text.hidden_size);
        info->output_size = static_cast<int32_t>(c.projection_dim);
        info->num_layers = 0;  // two encoders: no KV cache
        info->num_kv_heads = static_cast<int32_t>(c.text.num_heads);
        info->head_dim = static_cast<int32_t>(c.text.hidden_size / c.text.num_heads);
        info->max_positions = c.max_positions;
        info->image_channels = static_cast<int32_t>(c.channels);
        info->image_height = static_cast<int32_t>(c.image_size);
        info->image_width = static_cast<int32_t>(c.image_size);
        info->image_tokens = static_cast<int32_t>(c.image_tokens());
        float scale = 0.0f;
        host_.download(logit_scale_, &scale);
        info->embedding_scale = std::exp(scale);
    }

    void forward(const tfx_forward_args* a) {
        if (a->cache != nullptr)
            throw Error(TFX_ERR_INVALID_ARGUMENT, "clip: the towers run whole inputs (no KV cache)");
        const int64_t n = forward_rows(a), seqs = a->batch->num_seqs;
        View out(*a->output);
        if (out.dtype() != kF32 || out.numel() != seqs * config_.projection_dim) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "forward: output must be f32 with " +
                                                      std::to_string(seqs * config_.projection_dim) + " elements");
        }
        View embeddings = out.reshape({seqs, config_.projection_dim});
        const bool images = TFX_HAS_FIELD(a, tfx_forward_args, pixel_values) && a->pixel_values != nullptr;
        if (images) {
            encode_images(a, n, seqs, embeddings);
        } else {
            encode_texts(a, n, seqs, embeddings);
        }
        // L2 normalisation: rms_norm with eps 0 and a weight of 1/sqrt(dim) gives x / ||x||.
        host_.rms_norm(embeddings, unit_weight(), 0.0f, 0.0f, embeddings);
    }

  private:
    void encode_texts(const tfx_forward_args* a, int64_t n, int64_t seqs, View& embeddings) {
        const auto& c = config_;
        const int64_t h = c.text.hidden_size;
        View x = hidden_.rows(n, h), y = tmp_.rows(n, h);
        host_.embedding(token_embedding_, input_ids(a), x);
        host_.embedding(text_positions_, learned_positions(a, c.max_positions, "clip", "max_position_embeddings"), y);
        host_.add(x, y, x);
        text_.run(a, x, /*causal=*/true);
        layer_norm(host_, x, final_norm_, c.text.layer_norm_eps, x);
        View pooled = pooled_.rows(seqs, h);
        host_.gather_rows(x, eos_rows(a), pooled);
        text_projection_(pooled, embeddings);
    }

    // Each text's pooled row: its first EOS (the first largest id with legacy eos_token_id 2),
    // found on the host copy of the ids and uploaded.
    View eos_rows(const tfx_forward_args* a) {
        const tfx_batch& b = *a->batch;
        ids_.resize(static_cast<size_t>(b.num_tokens));
        host_.download(input_ids(a), ids_.data());
        rows_.clear();
        for (int32_t s = 0; s < b.num_seqs; ++s) {
            int32_t at = b.seq_start[s];
            for (int32_t t = b.seq_start[s]; t < b.seq_start[s + 1]; ++t) {
                const bool better = config_.eos_token_id == 2 ? ids_[t] > ids_[at] : ids_[t] == config_.eos_token_id;
                if (better) {
                    at = t;
                    if (config_.eos_token_id != 2) break;
                }
            }
            rows_.push_back(at);
        }
        View view = eos_rows_.view(kI32, {b.num_seqs});
        host_.upload(rows_.data(), view);
        return view;
    }

    void encode_images(const tfx_forward_args* a, int64_t n, int64_t images, View& embeddings) {
        const auto& c = config_;
        const int64_t h = c.vision.hidden_size;
        const View pixels = patches_.pixels(a, "clip");
        View x = hidden_.rows(n, h), y = tmp_.rows(n, h);
        patches_(pixels, patch_projection_, class_embedding_, x);
        host_.embedding(vision_positions_, learned_positions(a, c.image_tokens(), "clip", "the position embeddings"),
                        y);
        host_.add(x, y, x);
        layer_norm(host_, x, pre_norm_, c.vision.layer_norm_eps, x);
        vision_.run(a, x, /*causal=*/false);
        View first = pooled_.rows(images, h);
        host_.gather_rows(x, first_tokens(a), first);
        layer_norm(host_, first, post_norm_, c.vision.layer_norm_eps, first);
        visual_projection_(first, embeddings);
    }

    // A [projection_dim] weight of 1/sqrt(projection_dim) (uploaded once).
    View unit_weight() {
        const int64_t d = config_.projection_dim;
        View view = unit_.view(kF32, {d});
        if (!unit_uploaded_) {
            const std::vector<float> values(static_cast<size_t>(d), 1.0f / std::sqrt(static_cast<float>(d)));
            host_.upload(values.data(), view);
            unit_uploaded_ = true;
        }
        return view;
    }

    View token_embedding_, text_positions_, class_embedding_, vision_positions_, logit_scale_;
    LayerNorm final_norm_, pre_norm_, post_norm_;
    Linear text_projection_, visual_projection_, patch_projection_;
    Tower text_{host_, config_.text}, vision_{host_, config_.vision};
    PatchEmbedding patches_{host_, config_.channels, config_.image_size, config_.patch_size};
    Scratch hidden_{host_}, tmp_{host_}, pooled_{host_};
    DeviceBuffer eos_rows_{host_}, unit_{host_};
    std::vector<int32_t> ids_, rows_;
    bool unit_uploaded_ = false;
};

}  // namespace

TFX_PLUGIN_EXPORT(Clip, tfx::sdk::model_table<Clip>)
