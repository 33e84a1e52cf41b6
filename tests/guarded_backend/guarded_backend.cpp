// The guarded backend, for tests only: the CPU backend behind a gate that proves model plugins
// and host code never touch device memory directly. Its memory is anonymous mappings kept
// PROT_NONE, so any direct read or write crashes; each op first checks that every tensor
// operand lies inside one of its own blocks (a host pointer fails with a clear error), then
// opens all its blocks, runs the inner CPU backend's op, and closes them again.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "cpu_backend.h"
#include "tfx/sdk/error.hpp"
#include "tfx/sdk/plugin.hpp"

namespace tfx::guarded {
namespace {

using sdk::Error;

struct Operand {
    const char* name;
    const tfx_tensor* tensor;
};

class GuardedBackend {
  public:
    explicit GuardedBackend(const tfx_host_services* host) : inner_(host) {}

    ~GuardedBackend() {
        for (const auto& [base, block] : blocks_) munmap(reinterpret_cast<void*>(base), block.mapped);
    }

    GuardedBackend(const GuardedBackend&) = delete;
    GuardedBackend& operator=(const GuardedBackend&) = delete;

    // Never chosen over a real backend.
    static int32_t score() { return 1; }

    // ---- memory and transfers ----

    void alloc(uint64_t bytes, void** data) {
        if (data == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "guarded: alloc: data is missing");
        std::lock_guard lock(mutex_);
        *data = map_block(bytes);
    }

    void release(void* data) noexcept {
        std::lock_guard lock(mutex_);
        auto it = blocks_.find(reinterpret_cast<uintptr_t>(data));
        if (it == blocks_.end()) return;
        munmap(data, it->second.mapped);
        blocks_.erase(it);
    }

    // A guarded copy of the host's bytes (open only while copying in).
    void map_host(const void* host, uint64_t bytes, void** data) {
        if (data == nullptr) throw Error(TFX_ERR_INVALID_ARGUMENT, "guarded: map_host: data is missing");
        if (host == nullptr && bytes != 0) throw Error(TFX_ERR_INVALID_ARGUMENT, "guarded: map_host: host is missing");
        std::lock_guard lock(mutex_);
        void* block = map_block(bytes);
        protect(block, blocks_.at(reinterpret_cast<uintptr_t>(block)).mapped, PROT_READ | PROT_WRITE);
        if (bytes != 0) std::memcpy(block, host, bytes);
        protect(block, blocks_.at(reinterpret_cast<uintptr_t>(block)).mapped, PROT_NONE);
        *data = block;
    }

    void upload(const void* host, tfx_tensor* dst) {
        run("upload", {{"dst", dst}}, [&](tfx_error* e) { return ops().upload(&inner_, host, dst, e); });
    }

    void download(const tfx_tensor* src, void* host) {
        run("download", {{"src", src}}, [&](tfx_error* e) { return ops().download(&inner_, src, host, e); });
    }

    // The kernel (an attention plugin's) addresses this backend's memory directly: all open.
    void run_kernel(tfx_kernel_fn kernel, void* ctx) {
        run("run_kernel", {}, [&](tfx_error* e) { return ops().run_kernel(&inner_, kernel, ctx, e); });
    }

    // ---- weights: handles live in the inner backend's ordinary memory ----

    void pack_weight(const tfx_tensor* w, const char* format, tfx_weight** out) {
        run("pack_weight", {{"w", w}}, [&](tfx_error* e) { return ops().pack_weight(&inner_, w, format, out, e); });
    }

    void release_weight(tfx_weight* w) noexcept { ops().release_weight(&inner_, w); }

    // ---- compute ----

    void linear(const tfx_tensor* x, const tfx_weight* w, const tfx_tensor* bias, tfx_tensor* y) {
        run("linear", {{"x", x}, {"bias", bias}, {"y", y}},
            [&](tfx_error* e) { return ops().linear(&inner_, x, w, bias, y, e); });
    }
    void embedding(const tfx_tensor* table, const tfx_tensor* ids, tfx_tensor* y) {
        run("embedding", {{"table", table}, {"ids", ids}, {"y", y}},
            [&](tfx_error* e) { return ops().embedding(&inner_, table, ids, y, e); });
    }
    void rms_norm(const tfx_tensor* x, const tfx_tensor* w, float eps, float offset, tfx_tensor* y) {
        run("rms_norm", {{"x", x}, {"w", w}, {"y", y}},
            [&](tfx_error* e) { return ops().rms_norm(&inner_, x, w, eps, offset, y, e); });
    }
    void layer_norm(const tfx_tensor* x, const tfx_tensor* w, const tfx_tensor* b, float eps, tfx_tensor* y) {
        run("layer_norm", {{"x", x}, {"w", w}, {"b", b}, {"y", y}},
            [&](tfx_error* e) { return ops().layer_norm(&inner_, x, w, b, eps, y, e); });
    }
    void rope(tfx_tensor* x, const tfx_tensor* positions, const tfx_tensor* inv_freq, float scaling) {
        run("rope", {{"x", x}, {"positions", positions}, {"inv_freq", inv_freq}},
            [&](tfx_error* e) { return ops().rope(&inner_, x, positions, inv_freq, scaling, e); });
    }
    void activation(int32_t act, const tfx_tensor* x, tfx_tensor* y) {
        run("activation", {{"x", x}, {"y", y}}, [&](tfx_error* e) { return ops().activation(&inner_, act, x, y, e); });
    }
    void gated_activation(int32_t act, const tfx_tensor* gate, const tfx_tensor* up, tfx_tensor* y) {
        run("gated_activation", {{"gate", gate}, {"up", up}, {"y", y}},
            [&](tfx_error* e) { return ops().gated_activation(&inner_, act, gate, up, y, e); });
    }
    void add(const tfx_tensor* a, const tfx_tensor* b, tfx_tensor* y) {
        run("add", {{"a", a}, {"b", b}, {"y", y}}, [&](tfx_error* e) { return ops().add(&inner_, a, b, y, e); });
    }
    void mul(const tfx_tensor* a, const tfx_tensor* b, tfx_tensor* y) {
        run("mul", {{"a", a}, {"b", b}, {"y", y}}, [&](tfx_error* e) { return ops().mul(&inner_, a, b, y, e); });
    }
    void scale(const tfx_tensor* x, float factor, tfx_tensor* y) {
        run("scale", {{"x", x}, {"y", y}}, [&](tfx_error* e) { return ops().scale(&inner_, x, factor, y, e); });
    }
    void softmax(const tfx_tensor* x, tfx_tensor* y) {
        run("softmax", {{"x", x}, {"y", y}}, [&](tfx_error* e) { return ops().softmax(&inner_, x, y, e); });
    }
    void softcap(const tfx_tensor* x, float cap, tfx_tensor* y) {
        run("softcap", {{"x", x}, {"y", y}}, [&](tfx_error* e) { return ops().softcap(&inner_, x, cap, y, e); });
    }
    void copy(const tfx_tensor* src, tfx_tensor* dst) {
        run("copy", {{"src", src}, {"dst", dst}}, [&](tfx_error* e) { return ops().copy(&inner_, src, dst, e); });
    }
    void gather_rows(const tfx_tensor* x, const tfx_tensor* rows, tfx_tensor* y) {
        run("gather_rows", {{"x", x}, {"rows", rows}, {"y", y}},
            [&](tfx_error* e) { return ops().gather_rows(&inner_, x, rows, y, e); });
    }
    void top_k(const tfx_tensor* x, int32_t k, int32_t normalize, tfx_tensor* ids, tfx_tensor* weights) {
        run("top_k", {{"x", x}, {"ids", ids}, {"weights", weights}},
            [&](tfx_error* e) { return ops().top_k(&inner_, x, k, normalize, ids, weights, e); });
    }
    void linear_experts(const tfx_tensor* x, const tfx_weight* const* experts, int32_t count, const tfx_tensor* ids,
                        tfx_tensor* y) {
        run("linear_experts", {{"x", x}, {"ids", ids}, {"y", y}},
            [&](tfx_error* e) { return ops().linear_experts(&inner_, x, experts, count, ids, y, e); });
    }
    void weighted_sum(const tfx_tensor* x, const tfx_tensor* weights, tfx_tensor* y) {
        run("weighted_sum", {{"x", x}, {"weights", weights}, {"y", y}},
            [&](tfx_error* e) { return ops().weighted_sum(&inner_, x, weights, y, e); });
    }
    void linear_many(const tfx_tensor* x, const tfx_weight* const* ws, const tfx_tensor* const* biases, int32_t count,
                     tfx_tensor* const* ys) {
        run("linear_many", {{"x", x}}, [&](tfx_error* e) {
            for (int32_t i = 0; i < count; ++i) {
                const tfx_tensor* output = ys != nullptr ? ys[i] : nullptr;
                for (const tfx_tensor* t : {output, biases != nullptr ? biases[i] : nullptr}) {
                    if (t != nullptr && !owns(t)) {
                        throw Error(TFX_ERR_INVALID_ARGUMENT,
                                    "guarded: linear_many: an output or bias is not "
                                    "memory of this backend");
                    }
                }
            }
            return ops().linear_many(&inner_, x, ws, biases, count, ys, e);
        });
    }
    void embedding_packed(const tfx_weight* table, const tfx_tensor* ids, tfx_tensor* y) {
        run("embedding_packed", {{"ids", ids}, {"y", y}},
            [&](tfx_error* e) { return ops().embedding_packed(&inner_, table, ids, y, e); });
    }

  private:
    struct Block {
        uint64_t bytes;  // as asked for
        size_t mapped;   // whole pages
    };

    static const tfx_backend_ops& ops() { return cpu::CpuBackend::ops(); }

    static void protect(void* base, size_t bytes, int prot) {
        if (mprotect(base, bytes, prot) != 0) {
            throw Error(TFX_ERR_INTERNAL, std::string("guarded: mprotect failed: ") + std::strerror(errno));
        }
    }

    // A new PROT_NONE block of whole pages (at least one), recorded. Caller holds mutex_.
    void* map_block(uint64_t bytes) {
        const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
        if (bytes > (uint64_t{1} << 48)) {
            throw Error(TFX_ERR_OUT_OF_MEMORY, "guarded: alloc: " + std::to_string(bytes) + " bytes is too large");
        }
        const size_t mapped = static_cast<size_t>(std::max<uint64_t>(page, (bytes + page - 1) / page * page));
        void* p = mmap(nullptr, mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            throw Error(TFX_ERR_OUT_OF_MEMORY,
                        "guarded: alloc: cannot map " + std::to_string(bytes) + " bytes: " + std::strerror(errno));
        }
        try {
            blocks_.emplace(reinterpret_cast<uintptr_t>(p), Block{bytes, mapped});
        } catch (...) {
            munmap(p, mapped);
            throw;
        }
        return p;
    }

    // True when the bytes the view can address lie inside one block (as asked for, not the
    // page tail). A view with no elements addresses nothing. Caller holds mutex_.
    bool owns(const tfx_tensor* t) const {
        int64_t lo = 0, hi = 0, expected = 1;  // element offsets of the lowest and highest element
        for (int i = t->ndim - 1; i >= 0; --i) {
            const int64_t size = t->shape[i];
            if (size <= 0) return true;
            const int64_t stride = t->strides != nullptr ? t->strides[i] : expected;
            const int64_t span = (size - 1) * stride;
            (span < 0 ? lo : hi) += span;
            expected *= size;
        }
        if (t->data == nullptr) return false;
        const int64_t elem =
            std::max<int64_t>(1, (int64_t{t->dtype.bits} * std::max<int64_t>(t->dtype.lanes, 1) + 7) / 8);
        const uintptr_t origin = reinterpret_cast<uintptr_t>(t->data) + t->byte_offset;
        const uintptr_t first = origin + static_cast<uintptr_t>(lo * elem);
        const uintptr_t end = origin + static_cast<uintptr_t>((hi + 1) * elem);
        auto it = blocks_.upper_bound(first);
        if (it == blocks_.begin()) return false;
        --it;
        return first >= it->first && end <= it->first + it->second.bytes && end > first;
    }

    // Checks the operands, opens every block, runs the inner op, closes every block (also on
    // failure), and turns the inner status into an exception carrying its message.
    template <class Call>
    void run(const char* op, std::initializer_list<Operand> operands, Call&& call) {
        std::lock_guard lock(mutex_);
        for (const Operand& operand : operands) {
            if (operand.tensor == nullptr) continue;  // optional operands; the inner op checks the rest
            if (!owns(operand.tensor)) {
                throw Error(TFX_ERR_INVALID_ARGUMENT, std::string("guarded: ") + op + ": operand " + operand.name +
                                                          " is not memory of this backend");
            }
        }
        Opened opened(*this);
        tfx_error error = sdk::empty_error();
        sdk::check(call(&error), error);
    }

    // All blocks readable and writable for its lifetime (nests: run_kernel's kernel may call ops).
    class Opened {
      public:
        explicit Opened(GuardedBackend& b) : b_(b) {
            if (b_.open_depth_++ == 0) set_all(PROT_READ | PROT_WRITE);
        }
        ~Opened() {
            if (--b_.open_depth_ == 0) set_all(PROT_NONE);
        }
        Opened(const Opened&) = delete;
        Opened& operator=(const Opened&) = delete;

      private:
        void set_all(int prot) noexcept {
            for (const auto& [base, block] : b_.blocks_) mprotect(reinterpret_cast<void*>(base), block.mapped, prot);
        }
        GuardedBackend& b_;
    };

    std::recursive_mutex mutex_;
    std::map<uintptr_t, Block> blocks_;  // by base address
    int open_depth_ = 0;
    cpu::CpuBackend inner_;
};

template <auto Method>
inline constexpr auto op = sdk::method<Method>;

const tfx_backend_ops kOps = {
    sizeof(tfx_backend_ops),
    op<&GuardedBackend::alloc>,
    [](void* self, void* data) { static_cast<GuardedBackend*>(self)->release(data); },
    op<&GuardedBackend::map_host>,
    op<&GuardedBackend::upload>,
    op<&GuardedBackend::download>,
    op<&GuardedBackend::run_kernel>,
    op<&GuardedBackend::pack_weight>,
    [](void* self, tfx_weight* w) { static_cast<GuardedBackend*>(self)->release_weight(w); },
    op<&GuardedBackend::linear>,
    op<&GuardedBackend::embedding>,
    op<&GuardedBackend::rms_norm>,
    op<&GuardedBackend::layer_norm>,
    op<&GuardedBackend::rope>,
    op<&GuardedBackend::activation>,
    op<&GuardedBackend::gated_activation>,
    op<&GuardedBackend::add>,
    op<&GuardedBackend::mul>,
    op<&GuardedBackend::scale>,
    op<&GuardedBackend::softmax>,
    op<&GuardedBackend::softcap>,
    op<&GuardedBackend::copy>,
    op<&GuardedBackend::gather_rows>,
    op<&GuardedBackend::top_k>,
    op<&GuardedBackend::linear_experts>,
    op<&GuardedBackend::weighted_sum>,
    op<&GuardedBackend::embedding_packed>,
    op<&GuardedBackend::linear_many>,
};

}  // namespace
}  // namespace tfx::guarded

TFX_PLUGIN_EXPORT(tfx::guarded::GuardedBackend, tfx::guarded::kOps)
