#include "core/lora_runtime.h"

#include <algorithm>

#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

uint64_t bytes_of(const tfx_tensor& t) {
    uint64_t n = t.dtype.bits / 8;
    for (int i = 0; i < t.ndim; ++i) n *= static_cast<uint64_t>(t.shape[i]);
    return n;
}

const char* first_byte(const tfx_tensor& t) {
    return static_cast<const char*>(t.data) + t.byte_offset;
}

// A 2-D view [rows, cols] of `t`'s rows [first, first + rows), with t's leading dims as rows.
struct RowView {
    int64_t shape[2];
    int64_t strides[2];
    tfx_tensor tensor;
};
bool row_view(const tfx_tensor& t, int64_t first, int64_t rows, RowView& out) {
    const int64_t cols = t.shape[t.ndim - 1];
    int64_t row_stride = cols, col_stride = 1;
    if (t.strides != nullptr) {
        if (t.ndim != 2) return false;  // flattening strided leading dims is not a view
        row_stride = t.strides[0];
        col_stride = t.strides[1];
    }
    out.shape[0] = rows;
    out.shape[1] = cols;
    out.strides[0] = row_stride;
    out.strides[1] = col_stride;
    out.tensor = t;
    out.tensor.ndim = 2;
    out.tensor.shape = out.shape;
    out.tensor.strides = t.strides != nullptr ? out.strides : nullptr;
    out.tensor.byte_offset = t.byte_offset + static_cast<uint64_t>(first * row_stride) * (t.dtype.bits / 8);
    return true;
}

}  // namespace

LoraRuntime::LoraRuntime(std::vector<lora::Adapter> adapters, const tfx_backend_ops& backend, void* backend_self,
                         tfx_device device)
    : adapters_(std::move(adapters)), ops_(backend), self_(backend_self), device_(device) {
    if (adapters_.size() > kMaxAdapters) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "at most " + std::to_string(kMaxAdapters) +
                                                       " LoRA adapters per session, got " +
                                                       std::to_string(adapters_.size()));
    }
    active_ = adapters_.size() == kMaxAdapters ? ~0ull : (1ull << adapters_.size()) - 1;
}

LoraRuntime::~LoraRuntime() {
    for (auto& [packed, list] : attached_) {
        for (Attachment& a : list) {
            ops_.release_weight(self_, a.a);
            ops_.release_weight(self_, a.b);
            for (void* d : a.device_data) ops_.release(self_, d);
        }
    }
    for (Scratch& s : scratch_) {
        if (s.data != nullptr) ops_.release(self_, s.data);
    }
}

void LoraRuntime::note_weight(const std::string& name, const tfx_tensor& view) {
    for (const lora::Adapter& adapter : adapters_) {
        if (adapter.module_for(name) != nullptr) {
            noted_.push_back({name, first_byte(view), first_byte(view) + bytes_of(view)});
            return;
        }
    }
}

tfx_weight* LoraRuntime::pack_f32(const std::vector<float>& values, int64_t rows, int64_t cols,
                                  std::vector<void*>& keep) {
    tfx_error error = sdk::empty_error();
    int64_t shape[2] = {rows, cols};
    tfx_tensor t{};
    t.dtype = {TFX_DTYPE_FLOAT, 32, 1};
    t.device = device_;
    t.ndim = 2;
    t.shape = shape;
    void* data = nullptr;
    sdk::check(ops_.alloc(self_, values.size() * sizeof(float), &data, &error), error);
    keep.push_back(data);
    t.data = data;
    sdk::check(ops_.upload(self_, values.data(), &t, &error), error);
    tfx_weight* packed = nullptr;
    sdk::check(ops_.pack_weight(self_, &t, nullptr, &packed, &error), error);
    return packed;
}

void LoraRuntime::attach_block(const std::string& weight, int64_t start, int64_t count, tfx_weight* packed) {
    auto& list = attached_[packed];
    if (!list.empty()) return;  // packed once, reached twice (a view of a tensor also packed by name)
    for (size_t i = 0; i < adapters_.size(); ++i) {
        const lora::Adapter& adapter = adapters_[i];
        const lora::Module* m = adapter.module_for(weight);
        if (m == nullptr) continue;
        Attachment a{static_cast<int32_t>(i)};
        a.rank = m->rank;
        a.a = pack_f32(m->a, m->rank, m->in, a.device_data);
        std::vector<float> b(static_cast<size_t>(count * m->rank));
        for (int64_t o = 0; o < count; ++o) {
            for (int64_t k = 0; k < m->rank; ++k) {
                b[static_cast<size_t>(o * m->rank + k)] =
                    m->b[static_cast<size_t>((start + o) * m->rank + k)] * adapter.scaling;
            }
        }
        a.b = pack_f32(b, count, m->rank, a.device_data);
        list.push_back(std::move(a));
        covered_[{static_cast<int32_t>(i), weight}] += count;
    }
    if (list.empty()) attached_.erase(packed);
}

void LoraRuntime::attach_named(const std::string& name, tfx_weight* packed) {
    for (const lora::Adapter& adapter : adapters_) {
        if (const lora::Module* m = adapter.module_for(name)) {
            if (m->transposed) {
                throw sdk::Error(TFX_ERR_UNSUPPORTED, "LoRA module " + m->module + ": the model packs " + name +
                                                          " as stored [in, out]; cannot apply the adapter beside it");
            }
            attach_block(name, 0, m->out, packed);
            return;
        }
    }
}

void LoraRuntime::attach_view(const tfx_tensor& view, tfx_weight* packed) {
    const char* at = first_byte(view);
    for (const Noted& noted : noted_) {
        if (at < noted.begin || at >= noted.end) continue;
        const lora::Module* m = nullptr;
        for (const lora::Adapter& adapter : adapters_) {
            if ((m = adapter.module_for(noted.name)) != nullptr) break;
        }
        const int64_t element = view.dtype.bits / 8;
        const int64_t offset = (at - noted.begin) / element;
        const int64_t rows = view.ndim == 2 ? view.shape[0] : 0, cols = view.ndim == 2 ? view.shape[1] : 0;
        // A block of output features: rows of a weight stored [out, in], or (a Conv1D stored
        // [in, out]) the transposed view of its columns.
        const bool row_block = !m->transposed && cols == m->in && offset % m->in == 0 &&
                               (view.strides == nullptr || (view.strides[0] == m->in && view.strides[1] == 1));
        const bool column_block = m->transposed && cols == m->in && view.strides != nullptr && view.strides[0] == 1 &&
                                  view.strides[1] == m->out && offset < m->out;
        if (!row_block && !column_block) {
            throw sdk::Error(TFX_ERR_UNSUPPORTED, "LoRA module " + m->module + ": the model packs " + noted.name +
                                                      " in a layout the adapter cannot follow at run time; merge it "
                                                      "instead (--merge-lora)");
        }
        attach_block(noted.name, row_block ? offset / m->in : offset, rows, packed);
        return;
    }
}

void LoraRuntime::detach(tfx_weight* packed) {
    const auto it = attached_.find(packed);
    if (it == attached_.end()) return;
    for (Attachment& a : it->second) {
        ops_.release_weight(self_, a.a);
        ops_.release_weight(self_, a.b);
        for (void* d : a.device_data) ops_.release(self_, d);
    }
    attached_.erase(it);
}

void LoraRuntime::check_attached() const {
    for (size_t i = 0; i < adapters_.size(); ++i) {
        for (const lora::Module& m : adapters_[i].modules) {
            const auto it = covered_.find({static_cast<int32_t>(i), m.weight});
            if (it == covered_.end() || it->second != m.out) {
                throw sdk::Error(TFX_ERR_UNSUPPORTED,
                                 "LoRA adapter '" + adapters_[i].name + "': module " + m.module + " adapts " +
                                     m.weight +
                                     ", which the model plugin does not run as a linear layer of its own (an "
                                     "embedding, an expert, a fused weight); merge the adapter instead (--merge-lora)");
            }
        }
    }
}

uint64_t LoraRuntime::set_of(int32_t choice) const {
    if (choice == lora::kActiveAdapters) return active_;
    if (choice == lora::kNoAdapter) return 0;
    return 1ull << choice;
}

void LoraRuntime::set_rows(std::span<const int32_t> token_rows, std::span<const int32_t> output_rows) {
    token_sets_.resize(token_rows.size());
    output_sets_.resize(output_rows.size());
    for (size_t i = 0; i < token_rows.size(); ++i) token_sets_[i] = set_of(token_rows[i]);
    for (size_t i = 0; i < output_rows.size(); ++i) output_sets_[i] = set_of(output_rows[i]);
    shared_set_.reset();
    if (!token_sets_.empty() &&
        std::all_of(token_sets_.begin(), token_sets_.end(), [&](uint64_t s) { return s == token_sets_.front(); })) {
        shared_set_ = token_sets_.front();
    }
}

float* LoraRuntime::scratch(size_t index, uint64_t bytes) {
    Scratch& s = scratch_[index];
    if (s.bytes < bytes) {
        if (s.data != nullptr) ops_.release(self_, s.data);
        s = {};
        tfx_error error = sdk::empty_error();
        sdk::check(ops_.alloc(self_, bytes, &s.data, &error), error);
        s.bytes = bytes;
    }
    return static_cast<float*>(s.data);
}

int32_t LoraRuntime::apply(const tfx_tensor* x, const tfx_weight* packed, tfx_tensor* y, tfx_error* error) {
    const auto it = attached_.find(packed);
    if (it == attached_.end()) return TFX_OK;
    return sdk::guard(error, [&] {
        int64_t rows = 1;
        for (int i = 0; i + 1 < x->ndim; ++i) rows *= x->shape[i];
        // Which rows these are: the batch's tokens, or its output rows (an LM head); a row
        // count that is neither takes the one set every row shares.
        const std::vector<uint64_t>* sets = static_cast<size_t>(rows) == token_sets_.size()    ? &token_sets_
                                            : static_cast<size_t>(rows) == output_sets_.size() ? &output_sets_
                                                                                               : nullptr;
        const auto set_at = [&](int64_t r) -> uint64_t {
            if (sets != nullptr) return (*sets)[static_cast<size_t>(r)];
            if (token_sets_.empty()) return active_;
            if (shared_set_) return *shared_set_;
            throw sdk::Error(TFX_ERR_UNSUPPORTED,
                             "LoRA: a linear over " + std::to_string(rows) +
                                 " rows in a batch mixing adapters (rows are neither its tokens nor its outputs)");
        };
        for (int64_t first = 0; first < rows;) {
            const uint64_t set = set_at(first);
            int64_t end = first + 1;
            while (end < rows && set_at(end) == set) ++end;
            for (const Attachment& a : it->second) {
                if (((set >> a.adapter) & 1) == 0) continue;
                const int64_t n = end - first;
                RowView xs, ys;
                if (!row_view(*x, first, n, xs) || !row_view(*y, first, n, ys)) {
                    throw sdk::Error(TFX_ERR_UNSUPPORTED, "LoRA: a linear over strided multi-dimensional operands");
                }
                const int64_t out = ys.shape[1];
                int64_t low_shape[2] = {n, a.rank}, delta_shape[2] = {n, out};
                tfx_tensor low{}, delta{};
                low.dtype = delta.dtype = {TFX_DTYPE_FLOAT, 32, 1};
                low.device = delta.device = device_;
                low.ndim = delta.ndim = 2;
                low.shape = low_shape;
                delta.shape = delta_shape;
                low.data = scratch(0, static_cast<uint64_t>(n * a.rank) * sizeof(float));
                delta.data = scratch(1, static_cast<uint64_t>(n * out) * sizeof(float));
                tfx_error e = sdk::empty_error();
                sdk::check(ops_.linear(self_, &xs.tensor, a.a, nullptr, &low, &e), e);
                sdk::check(ops_.linear(self_, &low, a.b, nullptr, &delta, &e), e);
                sdk::check(ops_.add(self_, &ys.tensor, &delta, &ys.tensor, &e), e);
            }
            first = end;
        }
    });
}

}  // namespace tfx
