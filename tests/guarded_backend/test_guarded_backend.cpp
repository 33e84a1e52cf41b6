// The guarded backend: its memory cannot be touched outside its ops, host pointers are refused
// as operands, and on its own memory it computes exactly what the cpu backend computes.
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend_harness.h"

namespace tfx::test {
namespace {

float read_directly(const void* p) {
    return *static_cast<const volatile float*>(p);
}

class GuardedBackend : public ::testing::Test {
  protected:
    void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }

    Backend b{TFX_GUARDED_BACKEND_PLUGIN};
    const tfx_backend_ops& ops = b.ops();
    void* self = b.self();
};

TEST_F(GuardedBackend, TouchingAllocatedMemoryOutsideAnOpCrashes) {
    DeviceTensor x = b.upload(std::vector<float>{1, 2, 3, 4}, {4});
    EXPECT_DEATH(read_directly(x.t.data), "");
    // Still closed after an op ran on it.
    run_op([&](tfx_error* e) { return ops.scale(self, x, 2.0f, x, e); });
    EXPECT_EQ(b.download(x), (std::vector<float>{2, 4, 6, 8}));
    EXPECT_DEATH(read_directly(x.t.data), "");
    EXPECT_DEATH(static_cast<float*>(x.t.data)[1] = 0.0f, "");
}

TEST_F(GuardedBackend, MappedHostMemoryIsAGuardedCopy) {
    const std::vector<float> host = {5, 6, 7};
    void* mapped = nullptr;
    run_op([&](tfx_error* e) { return ops.map_host(self, host.data(), 12, &mapped, e); });
    EXPECT_NE(mapped, static_cast<const void*>(host.data()));
    EXPECT_DEATH(read_directly(mapped), "");
    DeviceTensor view;
    view.shape = {3};
    view.t = {mapped, {TFX_DEVICE_EXT, 0}, 1, kF32, view.shape.data(), nullptr, 0};
    EXPECT_EQ(b.download(view), host);
    ops.release(self, mapped);
    Failure f = failure_of([&](tfx_error* e) {
        std::vector<float> back(3);
        return ops.download(self, view, back.data(), e);
    });
    EXPECT_EQ(f.message, "guarded: download: operand src is not memory of this backend");
}

TEST_F(GuardedBackend, HostPointerOperandIsRejected) {
    DeviceTensor a = b.upload(std::vector<float>{1, 2, 3, 4}, {4});
    DeviceTensor y = b.alloc(kF32, {4});
    std::vector<float> host = {1, 1, 1, 1};
    int64_t shape[] = {4};
    tfx_tensor on_host = {host.data(), {TFX_DEVICE_CPU, 0}, 1, kF32, shape, nullptr, 0};

    Failure f = failure_of([&](tfx_error* e) { return ops.add(self, a, &on_host, y, e); });
    EXPECT_EQ(f.status, TFX_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(f.message, "guarded: add: operand b is not memory of this backend");
    f = failure_of([&](tfx_error* e) { return ops.softmax(self, a, &on_host, e); });
    EXPECT_EQ(f.message, "guarded: softmax: operand y is not memory of this backend");
    f = failure_of([&](tfx_error* e) { return ops.upload(self, host.data(), &on_host, e); });
    EXPECT_EQ(f.message, "guarded: upload: operand dst is not memory of this backend");
    f = failure_of([&](tfx_error* e) {
        tfx_weight* w = nullptr;
        on_host.ndim = 2;
        int64_t square[] = {2, 2};
        on_host.shape = square;
        const int32_t status = ops.pack_weight(self, &on_host, nullptr, &w, e);
        on_host.ndim = 1;
        on_host.shape = shape;
        return status;
    });
    EXPECT_EQ(f.message, "guarded: pack_weight: operand w is not memory of this backend");
    EXPECT_EQ(host, (std::vector<float>{1, 1, 1, 1}));

    // A view running past the end of its block is refused too.
    DeviceTensor longer = b.alloc(kF32, {4});
    longer.shape[0] = 5;
    f = failure_of([&](tfx_error* e) { return ops.scale(self, longer, 1.0f, longer, e); });
    EXPECT_EQ(f.message, "guarded: scale: operand x is not memory of this backend");
    // ... and a view starting inside but at an offset that leaves it.
    DeviceTensor shifted = b.alloc(kF32, {4});
    shifted.t.byte_offset = 4;
    f = failure_of([&](tfx_error* e) { return ops.scale(self, a, 1.0f, shifted, e); });
    EXPECT_EQ(f.message, "guarded: scale: operand y is not memory of this backend");
}

int32_t read_first(void* ctx, tfx_error*) {
    auto* t = static_cast<tfx_tensor*>(ctx);
    static_cast<float*>(t->data)[1] = read_directly(t->data) * 10.0f;
    return TFX_OK;
}

TEST_F(GuardedBackend, KernelsRunInsideRunKernelMayTouchItsMemory) {
    DeviceTensor x = b.upload(std::vector<float>{3, 0}, {2});
    run_op([&](tfx_error* e) { return ops.run_kernel(self, read_first, static_cast<tfx_tensor*>(x), e); });
    EXPECT_EQ(b.download(x), (std::vector<float>{3, 30}));
    EXPECT_DEATH(read_directly(x.t.data), "");
}

TEST_F(GuardedBackend, ScoresBelowTheCpuBackend) {
    Backend cpu(TFX_CPU_BACKEND_PLUGIN);
    EXPECT_EQ(b.descriptor().score(), 1);
    EXPECT_LT(b.descriptor().score(), cpu.descriptor().score());
    EXPECT_NE(std::string(b.descriptor().manifest_json).find("\"guarded\""), std::string::npos);
}

// One small MoE decoder-like step through every compute op, on both backends.
std::vector<std::vector<float>> pipeline(Backend& b) {
    const tfx_backend_ops& ops = b.ops();
    void* self = b.self();
    const int64_t vocab = 11, tokens = 3, heads = 2, head_dim = 8, dim = heads * head_dim, experts = 4, k = 2;
    auto values = [](int64_t n, float scale, float shift) {
        std::vector<float> v(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) v[i] = std::cos(static_cast<float>(i) * 1.3f + shift) * scale;
        return v;
    };
    std::vector<std::vector<float>> out;
    auto keep = [&](const DeviceTensor& t) { out.push_back(b.download(t)); };

    DeviceTensor table = b.upload(values(vocab * dim, 1.0f, 0.0f), {vocab, dim});
    DeviceTensor ids = b.upload(std::vector<int32_t>{4, 0, 10}, {tokens});
    DeviceTensor x = b.alloc(kF32, {tokens, dim});
    run_op([&](tfx_error* e) { return ops.embedding(self, table, ids, x, e); });
    DeviceTensor norm_w = b.upload(values(dim, 0.5f, 1.0f), {dim});
    DeviceTensor norm_b = b.upload(values(dim, 0.1f, 2.0f), {dim});
    DeviceTensor xn = b.alloc(kF32, {tokens, dim});
    run_op([&](tfx_error* e) { return ops.rms_norm(self, x, norm_w, 1e-6f, 1.0f, xn, e); });
    keep(xn);
    run_op([&](tfx_error* e) { return ops.layer_norm(self, x, norm_w, norm_b, 1e-5f, xn, e); });
    keep(xn);

    DeviceTensor wq = b.upload(values(dim * dim, 0.3f, 3.0f), {dim, dim});
    tfx_weight* q_proj = b.pack(wq, "bf16");
    DeviceTensor bias = b.upload(values(dim, 0.05f, 4.0f), {dim});
    DeviceTensor q = b.alloc(kF32, {tokens, dim});
    run_op([&](tfx_error* e) { return ops.linear(self, xn, q_proj, bias, q, e); });
    DeviceTensor positions = b.upload(std::vector<int32_t>{0, 1, 7}, {tokens});
    DeviceTensor inv_freq = b.upload(std::vector<float>{1.0f, 0.1f, 0.01f, 0.001f}, {4});
    tfx_tensor by_head = q.t;  // [tokens, heads, head_dim]
    int64_t head_shape[] = {tokens, heads, head_dim};
    by_head.ndim = 3;
    by_head.shape = head_shape;
    run_op([&](tfx_error* e) { return ops.rope(self, &by_head, positions, inv_freq, 1.0f, e); });
    keep(q);

    DeviceTensor act = b.alloc(kF32, {tokens, dim});
    run_op([&](tfx_error* e) { return ops.activation(self, TFX_ACT_GELU_TANH, xn, act, e); });
    run_op([&](tfx_error* e) { return ops.gated_activation(self, TFX_ACT_SILU, act, q, act, e); });
    run_op([&](tfx_error* e) { return ops.add(self, act, bias, act, e); });
    run_op([&](tfx_error* e) { return ops.mul(self, act, xn, act, e); });
    run_op([&](tfx_error* e) { return ops.softcap(self, act, 3.0f, act, e); });
    keep(act);

    // Transposed copy: act [tokens, dim] into [dim, tokens].
    DeviceTensor transposed = b.alloc(kF32, {dim, tokens});
    tfx_tensor view = act.t;
    int64_t shape[] = {dim, tokens}, strides[] = {1, dim};
    view.shape = shape;
    view.strides = strides;
    run_op([&](tfx_error* e) { return ops.copy(self, &view, transposed, e); });
    keep(transposed);

    DeviceTensor wr = b.upload(values(experts * dim, 1.0f, 5.0f), {experts, dim});
    tfx_weight* router = b.pack(wr, nullptr);
    DeviceTensor probs = b.alloc(kF32, {tokens, experts});
    run_op([&](tfx_error* e) { return ops.linear(self, act, router, nullptr, probs, e); });
    run_op([&](tfx_error* e) { return ops.scale(self, probs, 0.5f, probs, e); });
    run_op([&](tfx_error* e) { return ops.softmax(self, probs, probs, e); });
    DeviceTensor choice = b.alloc(kI32, {tokens, k});
    DeviceTensor weights = b.alloc(kF32, {tokens, k});
    run_op([&](tfx_error* e) { return ops.top_k(self, probs, static_cast<int32_t>(k), 1, choice, weights, e); });
    keep(weights);
    std::vector<tfx_weight*> expert_w;
    for (int64_t j = 0; j < experts; ++j) {
        DeviceTensor w = b.upload(values(dim * dim, 0.2f, 6.0f + static_cast<float>(j)), {dim, dim});
        expert_w.push_back(b.pack(w, j % 2 == 0 ? "f16" : "f32"));
    }
    DeviceTensor routed = b.alloc(kF32, {tokens, k, dim});
    run_op([&](tfx_error* e) {
        return ops.linear_experts(self, act, expert_w.data(), static_cast<int32_t>(experts), choice, routed, e);
    });
    DeviceTensor moe = b.alloc(kF32, {tokens, dim});
    run_op([&](tfx_error* e) { return ops.weighted_sum(self, routed, weights, moe, e); });
    keep(moe);
    DeviceTensor last = b.alloc(kF32, {1, dim});
    DeviceTensor row = b.upload(std::vector<int32_t>{tokens - 1}, {1});
    run_op([&](tfx_error* e) { return ops.gather_rows(self, moe, row, last, e); });
    keep(last);
    return out;
}

TEST_F(GuardedBackend, ComputesExactlyWhatTheCpuBackendComputes) {
    Backend cpu(TFX_CPU_BACKEND_PLUGIN);
    const std::vector<std::vector<float>> expected = pipeline(cpu);
    const std::vector<std::vector<float>> got = pipeline(b);
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], expected[i]) << "result " << i;
}

}  // namespace
}  // namespace tfx::test
