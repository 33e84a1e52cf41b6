// Attention in one pass over the keys with an online softmax: a running maximum and sum let
// each key be read once, the way flash attention tiles work. Same semantics as eager:
// causal and padding masks, sliding window, softcapping, grouped-query heads, KV cache.
#include <cmath>
#include <cstring>
#include <vector>

#include "tfx/sdk/plugin.hpp"

namespace {

float* f32(const tfx_tensor* t) {
    return reinterpret_cast<float*>(static_cast<char*>(t->data) + t->byte_offset);
}

class OnlineSoftmaxAttention {
  public:
    explicit OnlineSoftmaxAttention(const tfx_host_services*) {}

    void attend(const tfx_attention_args* a) {
        if (a->cache == nullptr)
            throw tfx::sdk::Error(TFX_ERR_UNSUPPORTED, "online-softmax attention needs a KV cache");
        const int64_t batch = a->q->shape[0], tokens = a->q->shape[1], heads = a->q->shape[2], dim = a->q->shape[3];
        const int64_t kv_heads = a->k->shape[2], keys = a->past_len + tokens;
        const tfx_kv_layer& c = *a->cache;
        if (keys > c.capacity) throw tfx::sdk::Error(TFX_ERR_INVALID_ARGUMENT, "KV cache full");
        for (int64_t b = 0; b < batch; ++b) {
            for (int64_t t = 0; t < tokens; ++t) {
                for (int64_t h = 0; h < kv_heads; ++h) {
                    const int64_t src = ((b * tokens + t) * kv_heads + h) * dim;
                    const int64_t dst = ((b * kv_heads + h) * c.capacity + a->past_len + t) * dim;
                    std::memcpy(c.k + dst, f32(a->k) + src, static_cast<size_t>(dim) * sizeof(float));
                    std::memcpy(c.v + dst, f32(a->v) + src, static_cast<size_t>(dim) * sizeof(float));
                }
            }
        }
        std::vector<float> acc(static_cast<size_t>(dim));
        for (int64_t b = 0; b < batch; ++b) {
            for (int64_t t = 0; t < tokens; ++t) {
                for (int64_t h = 0; h < heads; ++h) {
                    const float* q = f32(a->q) + ((b * tokens + t) * heads + h) * dim;
                    const int64_t kvh = h / (heads / kv_heads);
                    const float* k = c.k + (b * kv_heads + kvh) * c.capacity * dim;
                    const float* v = c.v + (b * kv_heads + kvh) * c.capacity * dim;
                    const int64_t self = a->past_len + t;
                    float running_max = -INFINITY, running_sum = 0.0f;
                    std::fill(acc.begin(), acc.end(), 0.0f);
                    for (int64_t j = 0; j < keys; ++j) {
                        if ((a->causal && j > self) || (a->sliding_window > 0 && j <= self - a->sliding_window) ||
                            (a->key_mask != nullptr && a->key_mask[b * keys + j] == 0)) {
                            continue;
                        }
                        float s = 0.0f;
                        for (int64_t d = 0; d < dim; ++d) s += q[d] * k[j * dim + d];
                        s *= a->scale;
                        if (a->softcap > 0.0f) s = a->softcap * std::tanh(s / a->softcap);
                        const float new_max = std::fmax(running_max, s);
                        const float rescale = std::exp(running_max - new_max);  // 0 on the first key
                        const float weight = std::exp(s - new_max);
                        running_sum = running_sum * rescale + weight;
                        for (int64_t d = 0; d < dim; ++d) acc[d] = acc[d] * rescale + weight * v[j * dim + d];
                        running_max = new_max;
                    }
                    float* o = f32(a->out) + ((b * tokens + t) * heads + h) * dim;
                    for (int64_t d = 0; d < dim; ++d) o[d] = running_sum > 0.0f ? acc[d] / running_sum : 0.0f;
                }
            }
        }
    }
};

const tfx_attention_table kTable = {sizeof(tfx_attention_table), tfx::sdk::method<&OnlineSoftmaxAttention::attend>};

}  // namespace

TFX_PLUGIN_EXPORT(OnlineSoftmaxAttention, kTable)
