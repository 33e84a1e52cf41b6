// A naive attention plugin built against the frozen ABI 2.0 headers (tests/abi/v2.0), with no
// SDK helpers: only the C ABI of that version. Same semantics as the host's eager attention
// (ragged batch, paged f32/bf16/f16 cache), written as plainly as possible: a later 2.x host
// must load it and get the same results.
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

int32_t fail(tfx_error* error, const char* message, long long a = 0, long long b = 0) {
    if (error != nullptr) {
        error->struct_size = sizeof(tfx_error);
        error->code = TFX_ERR_INVALID_ARGUMENT;
        std::snprintf(error->message, sizeof error->message, message, a, b);
    }
    return TFX_ERR_INVALID_ARGUMENT;
}

template <class T>
T* data_of(const tfx_tensor* t) {
    return reinterpret_cast<T*>(static_cast<char*>(t->data) + t->byte_offset);
}

bool is_f32(const tfx_tensor* t) {
    return t->dtype.code == TFX_DTYPE_FLOAT && t->dtype.bits == 32;
}

// ---- bf16 and f16, rounding to nearest even ----

uint32_t bits_of(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

float float_of(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

float from_bf16(uint16_t h) {
    return float_of(static_cast<uint32_t>(h) << 16);
}

uint16_t to_bf16(float f) {
    uint32_t u = bits_of(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

float from_f16(uint16_t h) {
    const int exponent = (h >> 10) & 0x1f;
    const int mantissa = h & 0x3ff;
    float value;
    if (exponent == 0) {
        value = std::ldexp(static_cast<float>(mantissa), -24);
    } else if (exponent == 31) {
        value = mantissa != 0 ? NAN : INFINITY;
    } else {
        value = std::ldexp(static_cast<float>(mantissa + 1024), exponent - 25);
    }
    return (h & 0x8000) != 0 ? -value : value;
}

uint16_t to_f16(float f) {
    const uint32_t u = bits_of(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t magnitude = u & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
    if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // 65520 and up: infinity
    if (magnitude < 0x33000000u) return static_cast<uint16_t>(sign);             // below 2^-25: zero
    const int exponent = static_cast<int>(magnitude >> 23) - 127;
    const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;  // 24 bits, the leading one included
    // Drop the low bits: 13 for a normal half, more for a subnormal one (units of 2^-24).
    const int shift = exponent < -14 ? -exponent - 1 : 13;
    uint32_t kept = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (kept & 1u) != 0)) ++kept;
    if (exponent < -14) return static_cast<uint16_t>(sign | kept);
    // kept holds the leading one at bit 10; a carry out of the mantissa bumps the exponent.
    return static_cast<uint16_t>(sign | ((static_cast<uint32_t>(exponent + 15) << 10) + kept - 0x400u));
}

// ---- the cache pools ----

enum Kind { kF32, kBF16, kF16 };

float load(const void* pool, Kind kind, long long i) {
    if (kind == kF32) return static_cast<const float*>(pool)[i];
    const uint16_t h = static_cast<const uint16_t*>(pool)[i];
    return kind == kBF16 ? from_bf16(h) : from_f16(h);
}

void store(void* pool, Kind kind, long long i, float x) {
    if (kind == kF32) {
        static_cast<float*>(pool)[i] = x;
    } else {
        static_cast<uint16_t*>(pool)[i] = kind == kBF16 ? to_bf16(x) : to_f16(x);
    }
}

int32_t attend(void*, const tfx_attention_args* a, tfx_error* error) {
    if (a == nullptr || !TFX_HAS_FIELD(a, tfx_attention_args, sliding_window)) {
        return fail(error, "abi-2.0-naive: attention args are missing or too small");
    }
    if (a->q == nullptr || a->k == nullptr || a->v == nullptr || a->out == nullptr || a->batch == nullptr) {
        return fail(error, "abi-2.0-naive: q, k, v, out and batch are required");
    }
    for (const tfx_tensor* t : {a->q, a->k, a->v, static_cast<const tfx_tensor*>(a->out)}) {
        if (t->ndim != 3 || !is_f32(t) || t->strides != nullptr) {
            return fail(error, "abi-2.0-naive: q, k, v and out must be compact 3-D f32 tensors");
        }
    }
    const tfx_batch* b = a->batch;
    const long long tokens = a->q->shape[0], heads = a->q->shape[1], dim = a->q->shape[2];
    const long long kv_heads = a->k->shape[1];
    if (b->num_tokens != tokens || kv_heads <= 0 || heads % kv_heads != 0) {
        return fail(error, "abi-2.0-naive: %lld tokens and %lld kv heads do not fit the batch or q", b->num_tokens,
                    kv_heads);
    }
    if (b->seq_start[0] != 0 || b->seq_start[b->num_seqs] != tokens) {
        return fail(error, "abi-2.0-naive: seq_start must run from 0 to num_tokens (%lld)", tokens);
    }
    for (int s = 0; s < b->num_seqs; ++s) {
        if (b->seq_start[s + 1] < b->seq_start[s])
            return fail(error, "abi-2.0-naive: seq_start[%lld] decreases", s + 1);
        if (a->cache == nullptr && b->context_len[s] != 0) {
            return fail(error, "abi-2.0-naive: context_len[%lld] = %lld without a cache", s, b->context_len[s]);
        }
    }

    Kind kind = kF32;
    long long block_size = 0, columns = 0, num_blocks = 0;
    const int32_t* table = nullptr;
    if (a->cache != nullptr) {
        const tfx_tensor* ck = a->cache->k;
        if (ck->ndim != 4 || ck->shape[1] != b->block_size || ck->shape[2] != kv_heads || ck->shape[3] != dim) {
            return fail(error, "abi-2.0-naive: the cache pools must be [num_blocks, %lld, %lld, head_dim]",
                        b->block_size, kv_heads);
        }
        if (is_f32(ck)) {
            kind = kF32;
        } else if (ck->dtype.code == TFX_DTYPE_BFLOAT && ck->dtype.bits == 16) {
            kind = kBF16;
        } else if (ck->dtype.code == TFX_DTYPE_FLOAT && ck->dtype.bits == 16) {
            kind = kF16;
        } else {
            return fail(error, "abi-2.0-naive: unsupported cache dtype code %lld, %lld bits", ck->dtype.code,
                        ck->dtype.bits);
        }
        block_size = b->block_size;
        columns = b->max_blocks_per_seq;
        num_blocks = ck->shape[0];
        table = data_of<const int32_t>(b->block_table);
        const int32_t* slots = data_of<const int32_t>(b->slot_mapping);
        // Check every block and slot the call uses, then write the new keys and values.
        for (int s = 0; s < b->num_seqs; ++s) {
            const long long keys = b->context_len[s] + b->seq_start[s + 1] - b->seq_start[s];
            if ((keys + block_size - 1) / block_size > columns) {
                return fail(error, "abi-2.0-naive: sequence %lld needs more than %lld blocks", s, columns);
            }
            for (long long c = 0; c * block_size < keys; ++c) {
                if (table[s * columns + c] < 0 || table[s * columns + c] >= num_blocks) {
                    return fail(error, "abi-2.0-naive: block_table entry %lld is not a block (%lld blocks)",
                                table[s * columns + c], num_blocks);
                }
            }
        }
        for (long long t = 0; t < tokens; ++t) {
            if (slots[t] < 0 || slots[t] >= num_blocks * block_size) {
                return fail(error, "abi-2.0-naive: slot_mapping[%lld] = %lld is out of range", t, slots[t]);
            }
        }
        for (long long t = 0; t < tokens; ++t) {
            for (long long i = 0; i < kv_heads * dim; ++i) {
                store(data_of<void>(a->cache->k), kind, slots[t] * kv_heads * dim + i,
                      data_of<const float>(a->k)[t * kv_heads * dim + i]);
                store(data_of<void>(a->cache->v), kind, slots[t] * kv_heads * dim + i,
                      data_of<const float>(a->v)[t * kv_heads * dim + i]);
            }
        }
    }

    // Element d of kv head kvh at position j of sequence s, in the cache or in the new k/v.
    auto element = [&](const tfx_tensor* pool, const tfx_tensor* fresh, int s, long long j, long long kvh,
                       long long d) {
        if (a->cache == nullptr) {
            return data_of<const float>(fresh)[((b->seq_start[s] + j) * kv_heads + kvh) * dim + d];
        }
        const long long slot = table[s * columns + j / block_size] * block_size + j % block_size;
        return load(data_of<const void>(pool), kind, (slot * kv_heads + kvh) * dim + d);
    };
    const tfx_tensor* pool_k = a->cache != nullptr ? a->cache->k : nullptr;
    const tfx_tensor* pool_v = a->cache != nullptr ? a->cache->v : nullptr;

    std::vector<float> p;
    for (int s = 0; s < b->num_seqs; ++s) {
        const long long keys = b->context_len[s] + b->seq_start[s + 1] - b->seq_start[s];
        p.assign(static_cast<size_t>(keys), 0.0f);
        for (long long t = b->seq_start[s]; t < b->seq_start[s + 1]; ++t) {
            const long long self = b->context_len[s] + t - b->seq_start[s];
            for (long long h = 0; h < heads; ++h) {
                const long long kvh = h / (heads / kv_heads);
                const float* q = data_of<const float>(a->q) + (t * heads + h) * dim;
                float* o = data_of<float>(a->out) + (t * heads + h) * dim;
                float max = -INFINITY, sum = 0.0f;
                for (long long j = 0; j < keys; ++j) {
                    const bool seen =
                        (!a->causal || j <= self) && (a->sliding_window <= 0 || j > self - a->sliding_window);
                    float score = -INFINITY;
                    if (seen) {
                        score = 0.0f;
                        for (long long d = 0; d < dim; ++d) score += q[d] * element(pool_k, a->k, s, j, kvh, d);
                        score *= a->scale;
                        if (a->softcap > 0.0f) score = a->softcap * std::tanh(score / a->softcap);
                    }
                    p[static_cast<size_t>(j)] = score;
                    max = std::fmax(max, score);
                }
                for (long long j = 0; j < keys; ++j) {
                    float& e = p[static_cast<size_t>(j)];
                    e = e == -INFINITY ? 0.0f : std::exp(e - max);
                    sum += e;
                }
                for (long long d = 0; d < dim; ++d) {
                    float acc = 0.0f;
                    for (long long j = 0; j < keys; ++j) {
                        if (p[static_cast<size_t>(j)] != 0.0f) {
                            acc += p[static_cast<size_t>(j)] * element(pool_v, a->v, s, j, kvh, d);
                        }
                    }
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
