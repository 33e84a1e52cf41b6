// The cuda attention plugin: attend() over a ragged batch and the paged KV cache in CUDA device
// memory (the cuda backend's), with the eager plugin's semantics (causal and sliding-window
// masks, grouped-query heads, logit softcapping, f32 softmax). It runs inside the cuda
// backend's run_kernel (device current); its kernels are in cuda_attention_kernels.cu.
// First version: compiled, not yet run on a GPU.
#include <cuda_runtime.h>

#include <string>

#include "cuda_attention_kernels.h"
#include "tfx/attention.h"
#include "tfx/sdk/error.hpp"
#include "tfx/sdk/plugin.hpp"
#include "tfx/sdk/tensor.hpp"

namespace tfx::cuda_attention {
namespace {

using sdk::Error;

void fail(const std::string& message) {
    throw Error(TFX_ERR_INVALID_ARGUMENT, "attend: " + message);
}

// A compact 3-D f32 tensor on a CUDA device.
float* f32_3d(const tfx_tensor* t, const char* what) {
    if (t == nullptr || t->ndim != 3 || !(t->dtype == sdk::kF32) || t->strides != nullptr ||
        t->device.device_type != TFX_DEVICE_CUDA) {
        fail(std::string(what) + " must be a compact f32 [tokens, heads, head_dim] tensor in CUDA memory");
    }
    return reinterpret_cast<float*>(static_cast<char*>(t->data) + t->byte_offset);
}

const int32_t* i32_on_device(const tfx_tensor* t, const char* what) {
    if (t == nullptr || !(t->dtype == sdk::kI32) || t->device.device_type != TFX_DEVICE_CUDA) {
        fail(std::string(what) + " must be an i32 tensor in CUDA memory");
    }
    return reinterpret_cast<const int32_t*>(static_cast<const char*>(t->data) + t->byte_offset);
}

KvElem kv_elem_of(tfx_dtype d) {
    if (d == sdk::kF32) return KvElem::f32;
    if (d == sdk::kBF16) return KvElem::bf16;
    if (d == sdk::kF16) return KvElem::f16;
    fail("the KV cache dtype " + sdk::dtype_name(d) + " is not f32, bf16 or f16");
    return KvElem::f32;
}

class CudaAttention {
  public:
    explicit CudaAttention(const tfx_host_services*) {}

    void attend(const tfx_attention_args* a) {
        if (a == nullptr || a->batch == nullptr) fail("arguments or batch missing");
        const tfx_batch& b = *a->batch;
        AttendParams p{};
        p.q = f32_3d(a->q, "q");
        p.k = f32_3d(a->k, "k");
        p.v = f32_3d(a->v, "v");
        p.out = f32_3d(a->out, "out");
        // Cross-attention (ABI 2.4) is not in these kernels yet: refused, never read as self-attention.
        if (TFX_HAS_FIELD(a, tfx_attention_args, kv_batch) && a->kv_batch != nullptr) {
            throw Error(TFX_ERR_UNSUPPORTED,
                        "attention: the cuda attention plugin has no cross-attention (kv_batch) yet");
        }
        if (TFX_HAS_FIELD(a, tfx_attention_args, relative_span) && a->relative_bias != nullptr) {
            throw Error(TFX_ERR_UNSUPPORTED,
                        "attention: the cuda attention plugin has no relative position bias (T5) yet");
        }
        if (TFX_HAS_FIELD(a, tfx_attention_args, relative_columns) && a->relative_columns != nullptr) {
            throw Error(TFX_ERR_UNSUPPORTED,
                        "attention: the cuda attention plugin has no disentangled relative attention (DeBERTa) yet");
        }
        p.tokens = b.num_tokens;
        p.seqs = b.num_seqs;
        p.heads = static_cast<int32_t>(a->q->shape[1]);
        p.kv_heads = static_cast<int32_t>(a->k->shape[1]);
        p.dim = static_cast<int32_t>(a->q->shape[2]);
        if (a->q->shape[0] != p.tokens || a->k->shape[0] != p.tokens || a->out->shape[1] != p.heads ||
            a->k->shape[2] != p.dim || a->v->shape[1] != p.kv_heads) {
            fail("q, k, v and out do not fit the batch's " + std::to_string(p.tokens) + " tokens");
        }
        if (p.kv_heads <= 0 || p.heads % p.kv_heads != 0) fail("heads must be a multiple of kv_heads");
        if (p.dim <= 0 || p.dim > kMaxHeadDim) fail("head_dim must be 1 to " + std::to_string(kMaxHeadDim));
        if (p.seqs <= 0 && p.tokens > 0) fail("a batch with tokens has no sequences");
        p.seq_start = i32_on_device(b.seq_start_dev, "batch seq_start");
        p.context_len = i32_on_device(b.context_len_dev, "batch context_len");
        if (a->cache != nullptr) {
            if (a->cache->k == nullptr || a->cache->v == nullptr || b.block_table == nullptr ||
                b.slot_mapping == nullptr || b.block_size <= 0) {
                fail("a cache needs its pools, a block table and slots");
            }
            p.cache_k = static_cast<char*>(a->cache->k->data) + a->cache->k->byte_offset;
            p.cache_v = static_cast<char*>(a->cache->v->data) + a->cache->v->byte_offset;
            p.kv_elem = kv_elem_of(a->cache->k->dtype);
            p.block_size = b.block_size;
            p.table_columns = b.max_blocks_per_seq;
            p.block_table = i32_on_device(b.block_table, "block table");
            p.slot_mapping = i32_on_device(b.slot_mapping, "slot mapping");
        } else {
            for (int32_t s = 0; s < p.seqs; ++s) {
                if (b.context_len[s] != 0) fail("without a cache every context_len must be 0");
            }
        }
        p.causal = a->causal;
        p.sliding_window = a->sliding_window;
        p.window_ahead = a->causal != 0 ? 0 : a->window_ahead;
        p.scale = a->scale;
        p.softcap = a->softcap;
        cuda_attention::attend(p, nullptr);
        const cudaError_t status = cudaGetLastError();
        if (status != cudaSuccess) throw Error(TFX_ERR_INTERNAL, std::string("attend: ") + cudaGetErrorString(status));
    }
};

const tfx_attention_table kTable = {sizeof(tfx_attention_table), sdk::method<&CudaAttention::attend>};

}  // namespace
}  // namespace tfx::cuda_attention

TFX_PLUGIN_EXPORT(tfx::cuda_attention::CudaAttention, tfx::cuda_attention::kTable)
