// One forward call built from host-side data: the one place where host code (generation,
// pipelines, tfx forward, tfx bench, tests) fills tfx_forward_args. The output buffers live
// in the object, so a decode loop allocates nothing per step.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/kv_cache.h"
#include "core/model_session.h"

namespace tfx {

struct ForwardInputs {
    int32_t batch = 1;
    int64_t tokens = 0;
    std::span<const int32_t> ids;             // [batch, tokens]
    std::span<const int64_t> positions;       // [batch, tokens]; empty: past_len + 0..tokens-1
    std::span<const uint8_t> key_mask;        // [batch, past_len + tokens]; empty: all real
    std::span<const int32_t> token_type_ids;  // [batch, tokens]; empty: all segment 0
    int64_t past_len = 0;
    KvCache* cache = nullptr;  // nullptr: a cache-less pass
    bool last_token_only = false;
};

class ForwardCall {
  public:
    explicit ForwardCall(ModelSession& session) : session_(session) {}

    // Runs the model. Returns the output rows: one per sequence for a classifier or when
    // last_token_only is set, else one per token; valid until the next run.
    std::span<const float> run(const ForwardInputs& in);
    int64_t rows() const { return rows_; }
    // One output row; writable, so logits processors can work in place.
    std::span<float> row(int64_t r);
    // The pooler's output [batch, hidden] when the model has one, else empty.
    std::span<const float> pooled() const { return pooled_; }

  private:
    ModelSession& session_;
    int64_t rows_ = 0;
    std::vector<float> output_, pooled_;
    std::vector<int64_t> default_positions_;
};

}  // namespace tfx
