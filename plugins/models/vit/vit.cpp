// ViT (ViTModel, ViTForImageClassification), mirroring transformers' modeling_vit.py (v4.44):
//   embeddings: [CLS; conv_patch(pixels)] + learned positions (one token per patch, row-major)
//   N x pre-norm layers [x += o(attn(LN_before(x))); x += down(act(up(LN_after(x))))]
//   final LayerNorm; classification: classifier(x[CLS])
// Each sequence of a forward is one image (ABI 2.8). The patch convolution (kernel = stride =
// patch_size) is the SDK's PatchEmbedding: the backend's gather_rows and linear.
#include <string>
#include <vector>

#include "tfx/sdk/model.hpp"
#include "tfx/sdk/vision.hpp"

namespace {

using namespace tfx::sdk;

enum class Head { base, image_classification };

struct ViTConfig {
    int64_t hidden_size, intermediate_size, num_layers, num_heads, image_size, patch_size, channels, num_labels;
    float layer_norm_eps;
    bool qkv_bias;
    tfx_activation act;

    explicit ViTConfig(const Config& c) {
        hidden_size = c.get<int64_t>("hidden_size");
        intermediate_size = c.get<int64_t>("intermediate_size");
        num_layers = c.get<int64_t>("num_hidden_layers");
        num_heads = c.get<int64_t>("num_attention_heads");
        image_size = c.get_or<int64_t>("image_size", 224);
        patch_size = c.get_or<int64_t>("patch_size", 16);
        channels = c.get_or<int64_t>("num_channels", 3);
        layer_norm_eps = c.get_positive<float>("layer_norm_eps", 1e-12f);
        qkv_bias = c.get_or<bool>("qkv_bias", true);
        num_labels = label_count(c);
        act = activation_from(c, "hidden_act", "gelu");
        require_positive(c, {{"hidden_size", hidden_size},
                             {"intermediate_size", intermediate_size},
                             {"num_hidden_layers", num_layers},
                             {"num_attention_heads", num_heads},
                             {"image_size", image_size},
                             {"patch_size", patch_size},
                             {"num_channels", channels}});
        if (hidden_size % num_heads != 0) c.fail("num_attention_heads", "must divide hidden_size");
        if (image_size % patch_size != 0) c.fail("patch_size", "must divide image_size");
        if (image_size > 8192) c.fail("image_size", "is implausibly large");
    }
    int64_t patches_per_side() const { return image_size / patch_size; }
    int64_t tokens() const { return patches_per_side() * patches_per_side() + 1; }  // + CLS
};

struct Layer {
    AttentionWeights attention;  // attention.attention.{query,key,value}, attention.output.dense
    LayerNorm before, after;     // layernorm_before, layernorm_after
    Mlp ffn;                     // intermediate.dense, output.dense
};

class ViT : public ModelPlugin<ViT, ViTConfig> {
  public:
    using ModelPlugin::ModelPlugin;

    void declare(WeightTable& w) {
        const auto& c = config_;
        const std::string head = host_.task_head({"base", "image_classification"});
        head_ = head == "image_classification" ? Head::image_classification : Head::base;
        const int64_t h = c.hidden_size, p = c.patch_size, patch_values = c.channels * p * p;
        const std::string pre = w.prefix("vit.", "embeddings.cls_token", head_ != Head::base);
        const std::string e = pre + "embeddings.";
        cls_token_ = w.f32(e + "cls_token", {1, 1, h}, Init::normal);
        position_embeddings_ = w.tensor(e + "position_embeddings", {1, c.tokens(), h});
        // The conv weight [hidden, channels, p, p] is a linear layer over a patch's values.
        const View conv = w.tensor(e + "patch_embeddings.projection.weight", {h, c.channels, p, p});
        patch_projection_ = w.pack(conv.reshape({h, patch_values}),
                                   w.f32(e + "patch_embeddings.projection.bias", {h}, Init::zeros), true);
        layers_.resize(static_cast<size_t>(c.num_layers));
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const std::string l = pre + "encoder.layer." + std::to_string(i) + ".";
            Layer& layer = layers_[i];
            layer.attention.q = w.linear(l + "attention.attention.query", h, h, c.qkv_bias);
            layer.attention.k = w.linear(l + "attention.attention.key", h, h, c.qkv_bias);
            layer.attention.v = w.linear(l + "attention.attention.value", h, h, c.qkv_bias);
            layer.attention.o = w.linear(l + "attention.output.dense", h, h, true);
            layer.before = w.layer_norm(l + "layernorm_before", h);
            layer.after = w.layer_norm(l + "layernorm_after", h);
            layer.ffn.up = w.linear(l + "intermediate.dense", c.intermediate_size, h, true);
            layer.ffn.down = w.linear(l + "output.dense", h, c.intermediate_size, true);
        }
        final_norm_ = w.layer_norm(pre + "layernorm", h);
        if (head_ == Head::image_classification) classifier_ = w.linear("classifier", c.num_labels, h, true);
    }

    void get_info(tfx_model_info* info) {
        const auto& c = config_;
        info->output_kind = head_ == Head::image_classification ? TFX_OUTPUT_CLASS_LOGITS : TFX_OUTPUT_HIDDEN_STATE;
        info->vocab_size = 0;  // no token ids: the tokens are the image's patches
        info->hidden_size = static_cast<int32_t>(c.hidden_size);
        info->output_size = static_cast<int32_t>(head_ == Head::image_classification ? c.num_labels : c.hidden_size);
        info->num_layers = 0;  // an encoder: no KV cache
        info->num_kv_heads = static_cast<int32_t>(c.num_heads);
        info->head_dim = static_cast<int32_t>(c.hidden_size / c.num_heads);
        info->max_positions = c.tokens();
        info->image_channels = static_cast<int32_t>(c.channels);
        info->image_height = static_cast<int32_t>(c.image_size);
        info->image_width = static_cast<int32_t>(c.image_size);
        info->image_tokens = static_cast<int32_t>(c.tokens());
    }

    void forward(const tfx_forward_args* a) {
        const auto& c = config_;
        const int64_t n = forward_rows(a), h = c.hidden_size, images = a->batch->num_seqs, tokens = c.tokens();
        if (a->cache != nullptr)
            throw Error(TFX_ERR_INVALID_ARGUMENT, "vit: an encoder runs whole images (no KV cache)");
        const View pixels = patches_.pixels(a, "vit");
        View x = hidden_.rows(n, h), y = tmp_.rows(n, h);
        patches_(pixels, patch_projection_, cls_token_, x);
        host_.embedding(position_embeddings_.reshape({tokens, h}),
                        learned_positions(a, tokens, "vit", "the position embeddings"), y);
        host_.add(x, y, x);
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const Layer& l = layers_[i];
            layer_norm(host_, x, l.before, c.layer_norm_eps, y);
            attn_.project(l.attention, y).attend(a, i, {.causal = false}).output(l.attention, y);
            host_.add(y, x, x);
            layer_norm(host_, x, l.after, c.layer_norm_eps, y);
            ffn(host_, l.ffn, c.act, y, y, ffn_);
            host_.add(y, x, x);
        }
        layer_norm(host_, x, final_norm_, c.layer_norm_eps, x);
        if (head_ == Head::image_classification) {
            View out(*a->output);
            if (out.dtype() != kF32 || out.numel() != images * c.num_labels) {
                throw Error(TFX_ERR_INVALID_ARGUMENT,
                            "forward: output must be f32 with " + std::to_string(images * c.num_labels) + " elements");
            }
            View logits = out.reshape({images, c.num_labels}), first = cls_.rows(images, h);
            host_.gather_rows(x, first_tokens(a), first);
            classifier_(first, logits);
            return;
        }
        output_.write(a, x, nullptr, h);
    }

  private:
    Head head_ = Head::base;
    View cls_token_, position_embeddings_;
    Linear patch_projection_, classifier_;
    std::vector<Layer> layers_;
    LayerNorm final_norm_;
    SelfAttention attn_{host_, config_.num_heads, config_.num_heads, config_.hidden_size / config_.num_heads};
    OutputWriter output_{host_};
    PatchEmbedding patches_{host_, config_.channels, config_.image_size, config_.patch_size};
    Scratch hidden_{host_}, tmp_{host_}, ffn_{host_}, cls_{host_};
};

}  // namespace

TFX_PLUGIN_EXPORT(ViT, tfx::sdk::model_table<ViT>)
