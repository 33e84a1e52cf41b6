#include "onednn_matmul.h"

namespace tfx::cpu {

using dnnl::memory;

OneDnnMatmul::OneDnnMatmul() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

namespace {

// y = x · wᵀ (+ bias) with x and w of `type` and y (and bias) f32, through the cached primitive.
void execute(dnnl::engine& engine, dnnl::stream& stream, std::mutex& mutex,
             std::map<std::tuple<int64_t, int64_t, int64_t, bool, bool>, dnnl::matmul>& primitives,
             memory::data_type type, const void* x, const void* w, const float* bias, float* y, int64_t m, int64_t n,
             int64_t k) {
    const memory::desc x_md({m, k}, type, memory::format_tag::ab);
    // w is stored [n, k] row-major, i.e. the [k, n] weights operand in "ba" layout.
    const memory::desc w_md({k, n}, type, memory::format_tag::ba);
    const memory::desc b_md({1, n}, memory::data_type::f32, memory::format_tag::ab);
    const memory::desc y_md({m, n}, memory::data_type::f32, memory::format_tag::ab);

    std::lock_guard lock(mutex);
    auto key = std::make_tuple(m, n, k, bias != nullptr, type == memory::data_type::bf16);
    auto it = primitives.find(key);
    if (it == primitives.end()) {
        auto desc = bias != nullptr ? dnnl::matmul::desc(x_md, w_md, b_md, y_md) : dnnl::matmul::desc(x_md, w_md, y_md);
        it = primitives.emplace(key, dnnl::matmul(dnnl::matmul::primitive_desc(desc, engine))).first;
    }
    memory x_mem(x_md, engine, const_cast<void*>(x));
    memory w_mem(w_md, engine, const_cast<void*>(w));
    memory y_mem(y_md, engine, y);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, x_mem}, {DNNL_ARG_WEIGHTS, w_mem}, {DNNL_ARG_DST, y_mem}};
    if (bias != nullptr) args.emplace(DNNL_ARG_BIAS, memory(b_md, engine, const_cast<float*>(bias)));
    it->second.execute(stream, args);
    stream.wait();
}

}  // namespace

void OneDnnMatmul::run(const float* x, const float* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k) {
    execute(engine_, stream_, mutex_, primitives_, memory::data_type::f32, x, w, bias, y, m, n, k);
}

void OneDnnMatmul::run_bf16(const uint16_t* x, const uint16_t* w, const float* bias, float* y, int64_t m, int64_t n,
                            int64_t k) {
    execute(engine_, stream_, mutex_, primitives_, memory::data_type::bf16, x, w, bias, y, m, n, k);
}

}  // namespace tfx::cpu
