#include "core/kv_cache.h"

namespace tfx {

KvCache::KvCache(int32_t layers, int32_t batch, int32_t kv_heads, int32_t head_dim, int64_t capacity)
    : capacity_(capacity) {
    const int64_t per_tensor = int64_t{batch} * kv_heads * capacity * head_dim;
    storage_.resize(static_cast<size_t>(per_tensor * 2 * layers));
    for (int32_t i = 0; i < layers; ++i) {
        float* k = storage_.data() + int64_t{i} * 2 * per_tensor;
        layers_.push_back(tfx_kv_layer{k, k + per_tensor, capacity, batch, kv_heads, head_dim, 0});
    }
}

}  // namespace tfx
