// The KV cache: allocated once per generation, f32 [batch, kv_heads, capacity, head_dim]
// per layer (the layout the attention ABI fixes).
#pragma once

#include <cstdint>
#include <vector>

#include "tfx/attention.h"

namespace tfx {

class KvCache {
  public:
    KvCache(int32_t layers, int32_t batch, int32_t kv_heads, int32_t head_dim, int64_t capacity);
    tfx_kv_layer* layers() { return layers_.data(); }
    int64_t capacity() const { return capacity_; }

  private:
    int64_t capacity_;
    std::vector<float> storage_;
    std::vector<tfx_kv_layer> layers_;
};

}  // namespace tfx
