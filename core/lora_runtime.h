// LoRA adapters applied beside the base weights at run time, as PEFT's lora.Linear computes
// them: y = W x + b + scaling · B (A x), with A and B packed by the session's backend and the
// low-rank product made of the backend's own ops (linear, linear, add), so every backend runs
// it. Adapters attach to the packed weights the model plugin asks for, whichever way it packs
// them (pack_stored_weight by name, or pack_weight of a view into a tensor it read, such as
// GPT-2's Conv1D column blocks); each row of a forward applies its own set of adapters, so one
// batch mixes adapters and the bare base.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/lora_adapter.h"
#include "tfx/backend.h"

namespace tfx {

class LoraRuntime {
  public:
    static constexpr size_t kMaxAdapters = 64;  // a row's adapters are a 64-bit set

    LoraRuntime(std::vector<lora::Adapter> adapters, const tfx_backend_ops& backend, void* backend_self,
                tfx_device device);
    ~LoraRuntime();
    LoraRuntime(const LoraRuntime&) = delete;
    LoraRuntime& operator=(const LoraRuntime&) = delete;

    const std::vector<lora::Adapter>& adapters() const { return adapters_; }
    // The adapters rows choosing kActive apply (all of them at first, as --lora stacks them).
    void set_active(uint64_t adapter_set) { active_ = adapter_set; }
    uint64_t active() const { return active_; }

    // Load. A checkpoint tensor handed to the model (get_weight), by its device view: a later
    // pack of a view into it attaches the modules adapting it.
    void note_weight(const std::string& name, const tfx_tensor& view);
    // After the backend packed `view` into `packed`: attaches what adapts those rows.
    void attach_view(const tfx_tensor& view, tfx_weight* packed);
    // After pack_stored_weight packed checkpoint tensor `name` whole.
    void attach_named(const std::string& name, tfx_weight* packed);
    // The model released a packed weight.
    void detach(tfx_weight* packed);
    // Once the model is loaded: throws naming the first module no packed weight covers.
    void check_attached() const;
    bool adapts(const tfx_weight* packed) const { return attached_.contains(packed); }

    // Forward. Each token row's and each output row's choice (lora::kActiveAdapters,
    // lora::kNoAdapter or an adapter's index).
    void set_rows(std::span<const int32_t> token_rows, std::span<const int32_t> output_rows);
    // After the backend's y = x Wᵀ (+ b): y += scaling · B (A x) on each row, for that row's
    // adapters that adapt `packed`.
    int32_t apply(const tfx_tensor* x, const tfx_weight* packed, tfx_tensor* y, tfx_error* error);

  private:
    struct Attachment {
        int32_t adapter;
        tfx_weight* a = nullptr;  // lora_A [rank, in]
        tfx_weight* b = nullptr;  // scaling · lora_B rows of this packed block [count, rank]
        int64_t rank = 0;
        std::vector<void*> device_data;  // A and B's device copies, kept while packed
    };
    struct Noted {
        std::string name;
        const char* begin;
        const char* end;
    };
    // Packs one module's block [start, start + count) of output features for `packed`.
    void attach_block(const std::string& weight, int64_t start, int64_t count, tfx_weight* packed);
    tfx_weight* pack_f32(const std::vector<float>& values, int64_t rows, int64_t cols, std::vector<void*>& keep);
    uint64_t set_of(int32_t choice) const;
    float* scratch(size_t index, uint64_t bytes);

    std::vector<lora::Adapter> adapters_;
    const tfx_backend_ops& ops_;
    void* self_;
    tfx_device device_;  // where the backend's memory is
    uint64_t active_ = 0;
    std::vector<Noted> noted_;
    std::map<const tfx_weight*, std::vector<Attachment>> attached_;
    std::map<std::pair<int32_t, std::string>, int64_t> covered_;  // output features attached per module
    std::vector<uint64_t> token_sets_, output_sets_;
    std::optional<uint64_t> shared_set_;  // the set every token row has, when they agree
    struct Scratch {
        void* data = nullptr;
        uint64_t bytes = 0;
    } scratch_[2];
};

}  // namespace tfx
