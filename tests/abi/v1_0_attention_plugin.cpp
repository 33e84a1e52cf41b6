// An attention plugin built against the frozen ABI 1.0 headers (tests/abi/v1.0), with no SDK
// helpers: only the C ABI of that version. A newer host must load it and get the same
// results as from its own eager attention.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "tfx/tfx.h"

extern "C" {
extern const char tfx_generated_plugin_name[];
extern const char tfx_generated_plugin_version[];
extern const char tfx_generated_plugin_manifest[];
extern const int32_t tfx_generated_plugin_kind;
}

namespace {

float* f32(const tfx_tensor* t) {
    return reinterpret_cast<float*>(static_cast<char*>(t->data) + t->byte_offset);
}

int32_t attend(void*, const tfx_attention_args* a, tfx_error* error) {
    if (a->q->ndim != 4 || a->k->ndim != 4) {
        error->code = TFX_ERR_INVALID_ARGUMENT;
        std::snprintf(error->message, sizeof error->message, "v1.0 fixture: q and k must be 4-D");
        return TFX_ERR_INVALID_ARGUMENT;
    }
    const int64_t batch = a->q->shape[0], tokens = a->q->shape[1], heads = a->q->shape[2], dim = a->q->shape[3];
    const int64_t kv_heads = a->k->shape[2], keys = a->past_len + tokens;
    const tfx_kv_layer* c = a->cache;
    for (int64_t b = 0; b < batch; ++b) {
        for (int64_t t = 0; t < tokens; ++t) {
            for (int64_t h = 0; h < kv_heads; ++h) {
                const int64_t src = ((b * tokens + t) * kv_heads + h) * dim;
                const int64_t dst = ((b * kv_heads + h) * c->capacity + a->past_len + t) * dim;
                std::memcpy(c->k + dst, f32(a->k) + src, static_cast<size_t>(dim) * sizeof(float));
                std::memcpy(c->v + dst, f32(a->v) + src, static_cast<size_t>(dim) * sizeof(float));
            }
        }
    }
    std::vector<float> p(static_cast<size_t>(keys));
    for (int64_t b = 0; b < batch; ++b) {
        for (int64_t t = 0; t < tokens; ++t) {
            for (int64_t h = 0; h < heads; ++h) {
                const float* q = f32(a->q) + ((b * tokens + t) * heads + h) * dim;
                const int64_t kvh = h / (heads / kv_heads);
                const float* kc = c->k + (b * kv_heads + kvh) * c->capacity * dim;
                const float* vc = c->v + (b * kv_heads + kvh) * c->capacity * dim;
                float* o = f32(a->out) + ((b * tokens + t) * heads + h) * dim;
                const int64_t self = a->past_len + t;
                float max = -INFINITY, sum = 0.0f;
                for (int64_t j = 0; j < keys; ++j) {
                    const bool seen = (!a->causal || j <= self) &&
                                      (a->key_mask == nullptr || a->key_mask[b * keys + j]) &&
                                      (a->sliding_window <= 0 || j > self - a->sliding_window);
                    float s = -INFINITY;
                    if (seen) {
                        s = 0.0f;
                        for (int64_t d = 0; d < dim; ++d) s += q[d] * kc[j * dim + d];
                        s *= a->scale;
                        if (a->softcap > 0.0f) s = a->softcap * std::tanh(s / a->softcap);
                    }
                    p[j] = s;
                    max = std::fmax(max, s);
                }
                for (int64_t j = 0; j < keys; ++j) sum += (p[j] = p[j] == -INFINITY ? 0.0f : std::exp(p[j] - max));
                for (int64_t d = 0; d < dim; ++d) {
                    float acc = 0.0f;
                    for (int64_t j = 0; j < keys; ++j) acc += p[j] * vc[j * dim + d];
                    o[d] = sum > 0.0f ? acc / sum : 0.0f;
                }
            }
        }
    }
    return TFX_OK;
}

const tfx_attention_table kTable = {sizeof(tfx_attention_table), &attend};

int32_t create(const tfx_host_services*, void** out, tfx_error*) {
    *out = nullptr;
    return TFX_OK;
}
void destroy(void*) {}
const void* table() {
    return &kTable;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const tfx_plugin_descriptor* tfx_plugin_entry(void) {
    static const tfx_plugin_descriptor d = {TFX_PLUGIN_MAGIC,
                                            sizeof(tfx_plugin_descriptor),
                                            TFX_ABI_MAJOR,
                                            TFX_ABI_MINOR,
                                            tfx_generated_plugin_kind,
                                            tfx_generated_plugin_name,
                                            tfx_generated_plugin_version,
                                            tfx_generated_plugin_manifest,
                                            nullptr,
                                            &create,
                                            &destroy,
                                            &table};
    return &d;
}
