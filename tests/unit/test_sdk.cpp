// The C++ SDK helpers: exceptions become status codes; half-precision conversions are exact.
#include <cmath>

#include <gtest/gtest.h>

#include "tfx/sdk/half.hpp"
#include "tfx/sdk/plugin.hpp"
#include "tfx/sdk/tensor.hpp"

TEST(Sdk, GuardMapsExceptionsToStatusAndMessage) {
    tfx_error e = tfx::sdk::empty_error();
    EXPECT_EQ(tfx::sdk::guard(&e, [] {}), TFX_OK);
    EXPECT_EQ(tfx::sdk::guard(&e, [] { throw tfx::sdk::Error(TFX_ERR_NOT_FOUND, "tensor 'x' missing"); }),
              TFX_ERR_NOT_FOUND);
    EXPECT_STREQ(e.message, "tensor 'x' missing");
    EXPECT_EQ(tfx::sdk::guard(&e, [] { throw std::runtime_error("boom"); }), TFX_ERR_INTERNAL);
    EXPECT_STREQ(e.message, "boom");
    EXPECT_EQ(tfx::sdk::guard(&e, [] { throw 42; }), TFX_ERR_INTERNAL);
    EXPECT_EQ(tfx::sdk::guard(&e, [] { throw std::bad_alloc(); }), TFX_ERR_OUT_OF_MEMORY);
    EXPECT_EQ(tfx::sdk::guard(nullptr, [] { throw std::runtime_error("no error struct"); }), TFX_ERR_INTERNAL);
}

TEST(Sdk, HalfConversionsRoundTrip) {
    for (uint32_t h = 0; h < 0x10000; ++h) {
        const auto half = static_cast<uint16_t>(h);
        float f = tfx::sdk::f16_to_f32(half);
        if (std::isnan(f)) continue;
        EXPECT_EQ(tfx::sdk::f32_to_f16(f), half) << h;
        float b = tfx::sdk::bf16_to_f32(half);
        if (!std::isnan(b)) {
            EXPECT_EQ(tfx::sdk::f32_to_bf16(b), half) << h;
        }
    }
    EXPECT_EQ(tfx::sdk::f16_to_f32(0x3c00), 1.0f);
    EXPECT_EQ(tfx::sdk::f16_to_f32(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(tfx::sdk::f32_to_f16(65520.0f), 0x7c00);      // rounds to infinity
    EXPECT_EQ(tfx::sdk::f32_to_bf16(1.00390625f), 0x3f80);  // ties to even
}

TEST(Sdk, ViewCopiesKeepTheirOwnShape) {
    float data[6] = {};
    tfx::sdk::View a(data, {2, 3});
    tfx::sdk::View b = a;
    EXPECT_NE(a.get()->shape, b.get()->shape);
    EXPECT_EQ(b.dim(-1), 3);
    EXPECT_EQ(b.numel(), 6);
    b.with_strides({1, 2});
    EXPECT_EQ(a.get()->strides, nullptr);
    EXPECT_EQ(b.get()->strides[1], 2);
}
