// The host's forwarding tables: a plugin's malformed call is refused with a message before
// the backend or attention plugin sees it.
#include <gtest/gtest.h>

#include <cstddef>
#include <string>

#include "core/op_forwarding.h"
#include "core/plugin_instance.h"
#include "tfx/sdk/error.hpp"

namespace {

int g_attend_calls = 0;
int g_kernel_runs = 0;
int32_t counting_attend(void*, const tfx_attention_args*, tfx_error*) {
    ++g_attend_calls;
    return TFX_OK;
}
// A backend whose only op is run_kernel: counts the kernels it runs.
int32_t counting_run_kernel(void*, tfx_kernel_fn kernel, void* ctx, tfx_error* error) {
    ++g_kernel_runs;
    return kernel(ctx, error);
}

}  // namespace

TEST(Forwarding, AttentionIsValidatedThenRunByTheBackend) {
    const tfx_attention_table counting{sizeof(tfx_attention_table), counting_attend};
    tfx_backend_ops backend{};
    backend.struct_size = sizeof(backend);
    backend.run_kernel = counting_run_kernel;
    const tfx_device device{TFX_DEVICE_EXT, 0};
    tfx::AttentionTarget target{&counting, nullptr, &backend, nullptr, device};
    const tfx_attention_table* table = tfx::forwarding_attention();

    float data[2 * 3 * 4] = {};
    int64_t shape[3] = {2, 3, 4};
    tfx_tensor t{data, device, 3, {TFX_DTYPE_FLOAT, 32, 1}, shape, nullptr, 0};
    int32_t seq_start[2] = {0, 2}, context_len[1] = {0}, positions[2] = {0, 1};
    tfx_batch batch{};
    batch.struct_size = sizeof(batch);
    batch.num_tokens = 2;
    batch.num_seqs = 1;
    batch.seq_start = seq_start;
    batch.context_len = context_len;
    batch.positions = positions;
    tfx_attention_args args{};
    args.struct_size = sizeof(args);
    args.q = &t;
    args.k = &t;
    args.v = &t;
    args.out = &t;
    args.batch = &batch;
    tfx_error e = tfx::sdk::empty_error();
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_OK) << e.message;
    EXPECT_EQ(g_attend_calls, 1);
    EXPECT_EQ(g_kernel_runs, 1) << "the kernel ran inside the backend's run_kernel";

    args.v = nullptr;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message, "attention needs q, k, v and out");
    args.v = &t;

    tfx_tensor host_memory = t;
    host_memory.device = {TFX_DEVICE_CPU, 0};
    args.out = &host_memory;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message, "a tensor is not on the session's device (host memory handed to an op?)");
    args.out = &t;

    tfx_tensor pool = t;
    tfx_kv_layer cache{&pool, &pool};
    args.cache = &cache;  // a cache, but the batch has no block table
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message, "attention with a cache needs the batch's block table and slot mapping");

    int64_t flat[2] = {2, 12};
    tfx_tensor rank2{data, device, 2, {TFX_DTYPE_FLOAT, 32, 1}, flat, nullptr, 0};
    args.cache = nullptr;
    args.q = &rank2;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    batch.num_tokens = 3;
    args.q = &t;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message, "attention: q's tokens differ from the batch's");
    EXPECT_EQ(g_attend_calls, 1) << "no malformed call reached the plugin";
}

// Cross-attention (ABI 2.4): kv_batch must describe k and v and match the batch's sequences,
// takes no mask, and never reaches an attention plugin older than 2.4 (which would read the
// call as self-attention); args from model plugins built before 2.4 end before the field.
TEST(Forwarding, CrossAttentionIsCheckedAndRefusedToOlderPlugins) {
    const tfx_attention_table counting{sizeof(tfx_attention_table), counting_attend};
    tfx_backend_ops backend{};
    backend.struct_size = sizeof(backend);
    backend.run_kernel = counting_run_kernel;
    const tfx_device device{TFX_DEVICE_EXT, 0};
    tfx_plugin_descriptor descriptor{};
    descriptor.abi_major = TFX_ABI_MAJOR;
    descriptor.abi_minor = TFX_ABI_MINOR;
    tfx::PluginInstance instance;  // no self: nothing to destroy
    instance.plugin.descriptor = &descriptor;
    instance.name = "cross-capable";
    tfx::AttentionTarget target{&counting, nullptr, &backend, nullptr, device, &instance};
    const tfx_attention_table* table = tfx::forwarding_attention();

    float data[5 * 3 * 4] = {};
    int64_t q_shape[3] = {2, 3, 4}, kv_shape[3] = {5, 3, 4};
    tfx_tensor q{data, device, 3, {TFX_DTYPE_FLOAT, 32, 1}, q_shape, nullptr, 0};
    tfx_tensor kv{data, device, 3, {TFX_DTYPE_FLOAT, 32, 1}, kv_shape, nullptr, 0};
    int32_t seq_start[2] = {0, 2}, context_len[1] = {0}, kv_seq_start[2] = {0, 5};
    tfx_batch batch{}, keys{};
    batch.struct_size = keys.struct_size = sizeof(tfx_batch);
    batch.num_tokens = 2;
    keys.num_tokens = 5;
    batch.num_seqs = keys.num_seqs = 1;
    batch.seq_start = seq_start;
    keys.seq_start = kv_seq_start;
    batch.context_len = keys.context_len = context_len;
    tfx_attention_args args{};
    args.struct_size = sizeof(args);
    args.q = &q;
    args.k = &kv;
    args.v = &kv;
    args.out = &q;
    args.batch = &batch;
    args.kv_batch = &keys;
    tfx_error e = tfx::sdk::empty_error();
    const int calls = g_attend_calls;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_OK) << e.message;
    EXPECT_EQ(g_attend_calls, calls + 1);

    args.causal = 1;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message, "attention: cross-attention (kv_batch) takes no causal mask or window");
    args.causal = 0;
    keys.num_tokens = 4;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message, "attention: k's and v's tokens differ from kv_batch's");
    keys.num_tokens = 5;
    keys.num_seqs = 2;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message, "attention: kv_batch's sequences differ from the batch's");
    keys.num_seqs = 1;
    EXPECT_EQ(g_attend_calls, calls + 1) << "no malformed call reached the plugin";

    descriptor.abi_minor = 3;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(e.message).find("cross-capable speaks ABI 2.3, which has no cross-attention (2.4)"),
              std::string::npos)
        << e.message;
    // A 2.3 model plugin's args (no kv_batch field): self-attention, for any plugin.
    args.struct_size = offsetof(tfx_attention_args, kv_batch);
    args.k = args.v = &q;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_OK) << e.message;
    EXPECT_EQ(g_attend_calls, calls + 2);

    // ABI 2.6's relative position bias: self-attention only, a [2 * span + 1, heads] table, and
    // refused to a 2.5 plugin (which would attend without it).
    descriptor.abi_minor = TFX_ABI_MINOR;
    args.struct_size = sizeof(args);
    args.kv_batch = nullptr;
    int64_t bias_shape[2] = {5, 3};
    tfx_tensor bias{data, device, 2, {TFX_DTYPE_FLOAT, 32, 1}, bias_shape, nullptr, 0};
    args.relative_bias = &bias;
    args.relative_span = 2;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_OK) << e.message;
    EXPECT_EQ(g_attend_calls, calls + 3);
    args.relative_span = 3;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message, "attention: relative_bias must be contiguous f32 [2 * relative_span + 1, heads]");
    args.relative_span = 2;
    args.kv_batch = &keys;
    args.k = args.v = &kv;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message, "attention: relative_bias is for self-attention (kv_batch must be NULL)");
    args.kv_batch = nullptr;
    args.k = args.v = &q;
    descriptor.abi_minor = 5;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(e.message).find("cross-capable speaks ABI 2.5, which has no relative position bias (2.6)"),
              std::string::npos)
        << e.message;
    EXPECT_EQ(g_attend_calls, calls + 3);

    // ABI 2.7's relative keys and queries (DeBERTa): they come with their columns, [rows, heads,
    // head_dim] each, cache-less self-attention only, and are refused to a 2.6 plugin.
    descriptor.abi_minor = TFX_ABI_MINOR;
    args.relative_bias = nullptr;
    int64_t relative_shape[3] = {2, 3, 4}, columns_shape[1] = {5};
    int32_t columns_data[5] = {};
    tfx_tensor relative{data, device, 3, {TFX_DTYPE_FLOAT, 32, 1}, relative_shape, nullptr, 0};
    tfx_tensor columns{columns_data, device, 1, {TFX_DTYPE_INT, 32, 1}, columns_shape, nullptr, 0};
    args.relative_k = &relative;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(
        e.message,
        "attention: relative_k and relative_q come with relative_columns, and relative_columns with one of them");
    args.relative_columns = &columns;
    args.relative_q = &relative;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_OK) << e.message;
    EXPECT_EQ(g_attend_calls, calls + 4);
    relative_shape[1] = 2;  // not the query heads
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message,
                 "attention: relative_k and relative_q must be contiguous f32 [rows, heads, head_dim], the same rows");
    relative_shape[1] = 3;
    args.relative_span = 3;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message, "attention: relative_columns must be contiguous i32 [2 * relative_span + 1]");
    args.relative_span = 2;
    descriptor.abi_minor = 6;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(e.message).find("cross-capable speaks ABI 2.6, which has no disentangled relative attention"),
              std::string::npos)
        << e.message;
    EXPECT_EQ(g_attend_calls, calls + 4);
}

TEST(Forwarding, OperandsMustBeOnTheSessionsDevice) {
    tfx_backend_ops backend{};
    backend.struct_size = sizeof(backend);
    backend.softmax = [](void*, const tfx_tensor*, tfx_tensor*, tfx_error*) -> int32_t { return TFX_OK; };
    tfx::OpsTarget target{&backend, nullptr, {TFX_DEVICE_EXT, 0}};
    float data[4] = {};
    int64_t shape[1] = {4};
    tfx_tensor on_device{data, {TFX_DEVICE_EXT, 0}, 1, {TFX_DTYPE_FLOAT, 32, 1}, shape, nullptr, 0};
    tfx_tensor on_host = on_device;
    on_host.device = {TFX_DEVICE_CPU, 0};
    tfx_error e = tfx::sdk::empty_error();
    EXPECT_EQ(tfx::forwarding_ops()->softmax(&target, &on_device, &on_device, &e), TFX_OK);
    EXPECT_EQ(tfx::forwarding_ops()->softmax(&target, &on_device, &on_host, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message, "a tensor is not on the session's device (host memory handed to an op?)");
}

TEST(Forwarding, AnOpTheBackendLacksIsUnsupported) {
    tfx_backend_ops small{};
    small.struct_size = offsetof(tfx_backend_ops, linear);  // an old backend: no linear and beyond
    tfx::OpsTarget target{&small, nullptr};
    tfx_error e = tfx::sdk::empty_error();
    EXPECT_EQ(tfx::forwarding_ops()->linear(&target, nullptr, nullptr, nullptr, nullptr, &e), TFX_ERR_UNSUPPORTED);
    EXPECT_STREQ(e.message, "the backend does not implement this op");
}
