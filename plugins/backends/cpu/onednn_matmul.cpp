#include "onednn_matmul.h"

namespace tfx::cpu {

using dnnl::memory;

OneDnnMatmul::OneDnnMatmul() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

void OneDnnMatmul::run(const float* x, const float* w, const float* bias, float* y, int64_t m, int64_t n, int64_t k) {
    const memory::desc x_md({m, k}, memory::data_type::f32, memory::format_tag::ab);
    // w is stored [n, k] row-major, i.e. the [k, n] weights operand in "ba" layout.
    const memory::desc w_md({k, n}, memory::data_type::f32, memory::format_tag::ba);
    const memory::desc b_md({1, n}, memory::data_type::f32, memory::format_tag::ab);
    const memory::desc y_md({m, n}, memory::data_type::f32, memory::format_tag::ab);

    std::lock_guard lock(mutex_);
    auto key = std::make_tuple(m, n, k, bias != nullptr);
    auto it = primitives_.find(key);
    if (it == primitives_.end()) {
        auto desc = bias != nullptr ? dnnl::matmul::desc(x_md, w_md, b_md, y_md) : dnnl::matmul::desc(x_md, w_md, y_md);
        it = primitives_.emplace(key, dnnl::matmul(dnnl::matmul::primitive_desc(desc, engine_))).first;
    }
    memory x_mem(x_md, engine_, const_cast<float*>(x));
    memory w_mem(w_md, engine_, const_cast<float*>(w));
    memory y_mem(y_md, engine_, y);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, x_mem}, {DNNL_ARG_WEIGHTS, w_mem}, {DNNL_ARG_DST, y_mem}};
    if (bias != nullptr) args.emplace(DNNL_ARG_BIAS, memory(b_md, engine_, const_cast<float*>(bias)));
    it->second.execute(stream_, args);
    stream_.wait();
}

}  // namespace tfx::cpu
