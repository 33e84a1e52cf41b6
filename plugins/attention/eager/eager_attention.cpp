// Eager attention, the reference: scores = scale · q·kᵀ (optionally soft-capped), masked
// (causal, padding, sliding window), softmax in f32, times v. Grouped-query heads share
// their kv head. New keys/values are appended to the KV cache before reading it.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "tfx/sdk/plugin.hpp"
#include "tfx/sdk/tensor.hpp"

namespace {

using tfx::sdk::Error;

void require_f32(const tfx_tensor* t, int ndim, const char* what) {
    if (t == nullptr || t->data == nullptr || t->ndim != ndim || !(t->dtype == tfx::sdk::kF32) ||
        (t->strides != nullptr)) {
        throw Error(TFX_ERR_INVALID_ARGUMENT, std::string("attention: ") + what +
                                                  " must be a compact f32 tensor of rank " + std::to_string(ndim));
    }
}

float* f32(const tfx_tensor* t) {
    return reinterpret_cast<float*>(static_cast<char*>(t->data) + t->byte_offset);
}

class EagerAttention {
  public:
    explicit EagerAttention(const tfx_host_services*) {}

    void attend(const tfx_attention_args* a) {
        if (a == nullptr || a->struct_size < offsetof(tfx_attention_args, sliding_window) + sizeof(int32_t)) {
            throw Error(TFX_ERR_ABI, "attention: arguments struct too small");
        }
        require_f32(a->q, 4, "q");
        require_f32(a->k, 4, "k");
        require_f32(a->v, 4, "v");
        require_f32(a->out, 4, "out");
        const int64_t batch = a->q->shape[0], tokens = a->q->shape[1], heads = a->q->shape[2], dim = a->q->shape[3];
        const int64_t kv_heads = a->k->shape[2];
        for (const tfx_tensor* t : {a->k, a->v}) {
            if (t->shape[0] != batch || t->shape[1] != tokens || t->shape[2] != kv_heads || t->shape[3] != dim) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "attention: k/v shapes do not match q");
            }
        }
        for (int i = 0; i < 4; ++i) {
            if (a->out->shape[i] != a->q->shape[i])
                throw Error(TFX_ERR_INVALID_ARGUMENT, "attention: out must match q");
        }
        if (kv_heads == 0 || heads % kv_heads != 0) {
            throw Error(TFX_ERR_INVALID_ARGUMENT, "attention: heads (" + std::to_string(heads) +
                                                      ") must be a multiple of kv heads (" + std::to_string(kv_heads) +
                                                      ")");
        }
        const int64_t past = a->past_len;
        const int64_t keys = past + tokens;

        // Where keys and values live: the cache ([batch, kv_heads, capacity, dim]) or the new
        // tensors ([batch, tokens, kv_heads, dim]).
        const float* k_base;
        const float* v_base;
        int64_t key_stride, head_stride, batch_stride;
        if (a->cache != nullptr) {
            const tfx_kv_layer& c = *a->cache;
            if (c.batch != batch || c.kv_heads != kv_heads || c.head_dim != dim) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "attention: KV cache layout does not match k/v");
            }
            if (past < 0 || keys > c.capacity) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, "attention: KV cache full (" + std::to_string(keys) +
                                                          " positions, capacity " + std::to_string(c.capacity) + ")");
            }
            append(c, a->k, a->v, past);
            k_base = c.k;
            v_base = c.v;
            key_stride = dim;
            head_stride = c.capacity * dim;
            batch_stride = kv_heads * head_stride;
        } else {
            if (past != 0) throw Error(TFX_ERR_INVALID_ARGUMENT, "attention: past_len needs a KV cache");
            k_base = f32(a->k);
            v_base = f32(a->v);
            key_stride = kv_heads * dim;
            head_stride = dim;
            batch_stride = tokens * kv_heads * dim;
        }

        const float* q = f32(a->q);
        float* out = f32(a->out);
        const int64_t group = heads / kv_heads;
#pragma omp parallel
        {
            std::vector<float> scores(static_cast<size_t>(keys));
#pragma omp for collapse(3) schedule(static)
            for (int64_t b = 0; b < batch; ++b) {
                for (int64_t h = 0; h < heads; ++h) {
                    for (int64_t t = 0; t < tokens; ++t) {
                        const float* qv = q + ((b * tokens + t) * heads + h) * dim;
                        const float* kh = k_base + b * batch_stride + (h / group) * head_stride;
                        const float* vh = v_base + b * batch_stride + (h / group) * head_stride;
                        float* o = out + ((b * tokens + t) * heads + h) * dim;
                        const int64_t self_pos = past + t;
                        float max = -std::numeric_limits<float>::infinity();
                        for (int64_t j = 0; j < keys; ++j) {
                            if (!visible(a, b, keys, self_pos, j)) {
                                scores[j] = -std::numeric_limits<float>::infinity();
                                continue;
                            }
                            const float* kv = kh + j * key_stride;
                            float s = 0.0f;
                            for (int64_t d = 0; d < dim; ++d) s += qv[d] * kv[d];
                            s *= a->scale;
                            if (a->softcap > 0.0f) s = a->softcap * std::tanh(s / a->softcap);
                            scores[j] = s;
                            max = std::max(max, s);
                        }
                        std::fill(o, o + dim, 0.0f);
                        if (max == -std::numeric_limits<float>::infinity()) continue;  // a padding query
                        float sum = 0.0f;
                        for (int64_t j = 0; j < keys; ++j) {
                            scores[j] =
                                scores[j] == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(scores[j] - max);
                            sum += scores[j];
                        }
                        for (int64_t j = 0; j < keys; ++j) {
                            if (scores[j] == 0.0f) continue;
                            const float p = scores[j] / sum;
                            const float* vv = vh + j * key_stride;
                            for (int64_t d = 0; d < dim; ++d) o[d] += p * vv[d];
                        }
                    }
                }
            }
        }
    }

  private:
    static bool visible(const tfx_attention_args* a, int64_t b, int64_t keys, int64_t self_pos, int64_t j) {
        if (a->causal && j > self_pos) return false;
        if (a->sliding_window > 0 && j <= self_pos - a->sliding_window) return false;
        return a->key_mask == nullptr || a->key_mask[b * keys + j] != 0;
    }

    static void append(const tfx_kv_layer& c, const tfx_tensor* k, const tfx_tensor* v, int64_t past) {
        const int64_t batch = k->shape[0], tokens = k->shape[1], kv_heads = k->shape[2], dim = k->shape[3];
        const float* ks = f32(k);
        const float* vs = f32(v);
        for (int64_t b = 0; b < batch; ++b) {
            for (int64_t t = 0; t < tokens; ++t) {
                for (int64_t h = 0; h < kv_heads; ++h) {
                    const int64_t src = ((b * tokens + t) * kv_heads + h) * dim;
                    const int64_t dst = ((b * kv_heads + h) * c.capacity + past + t) * dim;
                    std::memcpy(c.k + dst, ks + src, static_cast<size_t>(dim) * sizeof(float));
                    std::memcpy(c.v + dst, vs + src, static_cast<size_t>(dim) * sizeof(float));
                }
            }
        }
    }
};

const tfx_attention_table kTable = {sizeof(tfx_attention_table), tfx::sdk::method<&EagerAttention::attend>};

}  // namespace

TFX_PLUGIN_EXPORT(EagerAttention, kTable)
