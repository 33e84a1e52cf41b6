// Attention in one pass over the keys with an online softmax: a running maximum and sum let
// each key be read once, the way flash attention tiles work. Same semantics as eager over the
// ABI 2 contract: a ragged batch (sequences back to back, each with its cached length), a
// paged KV cache read through block tables, causal and sliding-window masks, softcapping,
// grouped-query heads. Its manifest declares an f32 cache only ("kv_dtypes": ["f32"]), so the
// host refuses to pair it with a bf16 or f16 cache.
//
// It runs inside the backend's run_kernel, so it may read the tensors it is given; it reads
// the batch's host arrays for its loops and the device ones (block table, slots) for addresses.
#include <cmath>
#include <cstring>
#include <vector>

#include "tfx/sdk/plugin.hpp"

namespace {

template <class T = float>
T* data(const tfx_tensor* t) {
    return reinterpret_cast<T*>(static_cast<char*>(t->data) + t->byte_offset);
}

class OnlineSoftmaxAttention {
  public:
    explicit OnlineSoftmaxAttention(const tfx_host_services*) {}

    void attend(const tfx_attention_args* a) {
        const tfx_batch& b = *a->batch;
        const int64_t heads = a->q->shape[1], dim = a->q->shape[2], kv_heads = a->k->shape[1];
        const int64_t group = heads / kv_heads;
        const tfx_kv_layer* c = a->cache;
        if (c != nullptr && !(c->k->dtype.code == TFX_DTYPE_FLOAT && c->k->dtype.bits == 32)) {
            throw tfx::sdk::Error(TFX_ERR_UNSUPPORTED, "online-softmax attention reads an f32 KV cache only");
        }
        const int64_t block_size = b.block_size, row = kv_heads * dim;  // a cache row: one position
        // Write the new keys and values to their slots first (the cache is then all there is to read).
        if (c != nullptr) {
            const int32_t* slots = data<int32_t>(b.slot_mapping);
            for (int64_t t = 0; t < b.num_tokens; ++t) {
                std::memcpy(data(c->k) + slots[t] * row, data(a->k) + t * row, sizeof(float) * row);
                std::memcpy(data(c->v) + slots[t] * row, data(a->v) + t * row, sizeof(float) * row);
            }
        }
        std::vector<float> acc(static_cast<size_t>(dim));
        for (int64_t s = 0; s < b.num_seqs; ++s) {
            const int64_t first = b.seq_start[s], count = b.seq_start[s + 1] - first, context = b.context_len[s];
            const int32_t* blocks = c != nullptr ? data<int32_t>(b.block_table) + s * b.max_blocks_per_seq : nullptr;
            // Key j of sequence s: cache position j, or its j-th new token without a cache.
            auto key_row = [&](const tfx_tensor* cached, const tfx_tensor* fresh, int64_t j) {
                if (c == nullptr) return data(fresh) + (first + j) * row;
                return data(cached) + (blocks[j / block_size] * block_size + j % block_size) * row;
            };
            for (int64_t i = 0; i < count; ++i) {
                const int64_t self = context + i, keys = a->causal ? self + 1 : context + count;
                for (int64_t h = 0; h < heads; ++h) {
                    const float* q = data(a->q) + ((first + i) * heads + h) * dim;
                    const int64_t kvh = h / group;
                    float running_max = -INFINITY, running_sum = 0.0f;
                    std::fill(acc.begin(), acc.end(), 0.0f);
                    for (int64_t j = 0; j < keys; ++j) {
                        if (a->sliding_window > 0 && j <= self - a->sliding_window) continue;
                        const float* k = key_row(c != nullptr ? c->k : nullptr, a->k, j) + kvh * dim;
                        const float* v = key_row(c != nullptr ? c->v : nullptr, a->v, j) + kvh * dim;
                        float score = 0.0f;
                        for (int64_t d = 0; d < dim; ++d) score += q[d] * k[d];
                        score *= a->scale;
                        if (a->softcap > 0.0f) score = a->softcap * std::tanh(score / a->softcap);
                        const float new_max = std::fmax(running_max, score);
                        const float rescale = std::exp(running_max - new_max);  // 0 on the first key
                        const float weight = std::exp(score - new_max);
                        running_sum = running_sum * rescale + weight;
                        for (int64_t d = 0; d < dim; ++d) acc[d] = acc[d] * rescale + weight * v[d];
                        running_max = new_max;
                    }
                    float* o = data(a->out) + ((first + i) * heads + h) * dim;
                    for (int64_t d = 0; d < dim; ++d) o[d] = running_sum > 0.0f ? acc[d] / running_sum : 0.0f;
                }
            }
        }
    }
};

const tfx_attention_table kTable = {sizeof(tfx_attention_table), tfx::sdk::method<&OnlineSoftmaxAttention::attend>};

}  // namespace

TFX_PLUGIN_EXPORT(OnlineSoftmaxAttention, kTable)
