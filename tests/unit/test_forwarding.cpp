// The host's forwarding tables: a plugin's malformed call is refused with a message before
// the backend or attention plugin sees it.
#include <gtest/gtest.h>

#include "core/op_forwarding.h"
#include "tfx/sdk/error.hpp"

namespace {

int g_attend_calls = 0;
int32_t counting_attend(void*, const tfx_attention_args*, tfx_error*) {
    ++g_attend_calls;
    return TFX_OK;
}

}  // namespace

TEST(Forwarding, AttentionArgumentsAreValidatedBeforeThePlugin) {
    const tfx_attention_table counting{sizeof(tfx_attention_table), counting_attend};
    tfx::AttentionTarget target{&counting, nullptr};
    const tfx_attention_table* table = tfx::forwarding_attention();

    float data[2 * 3 * 4] = {};
    int64_t shape[4] = {1, 2, 3, 4};
    tfx_tensor t{data, {TFX_DEVICE_CPU, 0}, 4, {TFX_DTYPE_FLOAT, 32, 1}, shape, nullptr, 0};
    tfx_attention_args args{};
    args.struct_size = sizeof(args);
    args.q = &t;
    args.k = &t;
    args.v = &t;
    args.out = &t;
    tfx_error e = tfx::sdk::empty_error();
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_OK);
    EXPECT_EQ(g_attend_calls, 1);

    args.v = nullptr;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message, "attention needs q, k, v and out");
    args.v = &t;

    tfx_kv_layer cache{nullptr, nullptr, 4, 1, 3, 4, 0};
    args.cache = &cache;
    args.past_len = 3;  // 3 cached + 2 new > capacity 4
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.message, "the KV cache is too small for past_len + tokens");

    int64_t flat[2] = {2, 12};
    tfx_tensor rank2{data, {TFX_DEVICE_CPU, 0}, 2, {TFX_DTYPE_FLOAT, 32, 1}, flat, nullptr, 0};
    args.cache = nullptr;
    args.q = &rank2;
    EXPECT_EQ(table->attend(&target, &args, &e), TFX_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(g_attend_calls, 1) << "no malformed call reached the plugin";
}

TEST(Forwarding, AnOpTheBackendLacksIsUnsupported) {
    tfx_backend_ops small{};
    small.struct_size = offsetof(tfx_backend_ops, linear);  // an old backend: no linear and beyond
    tfx::OpsTarget target{&small, nullptr};
    tfx_error e = tfx::sdk::empty_error();
    EXPECT_EQ(tfx::forwarding_ops()->linear(&target, nullptr, nullptr, nullptr, nullptr, &e), TFX_ERR_UNSUPPORTED);
    EXPECT_STREQ(e.message, "the backend does not implement this op");
}
