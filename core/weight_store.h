// The weights a model plugin asks for by name: views into the memory-mapped checkpoint, or
// f32 copies widened once and kept for the session (norm weights, biases).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/gguf_model.h"
#include "core/gptq_awq.h"
#include "core/lora_adapter.h"
#include "core/safetensors.h"
#include "tfx/tensor.h"

namespace tfx {

class WeightStore {
  public:
    // No checkpoint: a config-only session (weight_specs); every lookup reports absence.
    WeightStore() = default;
    explicit WeightStore(const std::filesystem::path& model_dir);
    // A GGUF file's tensors under their Hugging Face names (gguf_model.h). Block-quantized
    // tensors are handed out dequantized to f32 (through set_dequantize's function, the
    // session's quantizer), and encoded_behind() finds their bytes again so a backend that
    // computes on the format packs them as they are.
    WeightStore(std::shared_ptr<const gguf::File> file, gguf::HfView view);

    using Dequantize =
        std::function<void(const std::string& format, const uint8_t* src, int64_t rows, int64_t cols, float* dst)>;
    void set_dequantize(Dequantize dequantize) { dequantize_ = std::move(dequantize); }
    struct Encoded {
        std::string format;  // "q4_0", ...
        const uint8_t* bytes;
        int64_t rows, cols;
        uint64_t row_bytes;
    };
    // The encoded tensor whose f32 values get() handed out at `data`; nullptr for any other.
    const Encoded* encoded_behind(const void* data) const;
    // The block formats of the GGUF file's tensors ("q8_0", ...); empty for safetensors.
    std::set<std::string> stored_formats() const;

    // Every lookup (has, get, get_f32) records the name it asked for, for unused().
    bool has(const char* name) const {
        return find(name).has_value() || find_gguf(name) != nullptr || find_packed(name).has_value();
    }
    // A pre-quantized checkpoint (GPTQ / AWQ): a linear's "X.weight" comes from X.qweight,
    // X.qzeros, X.scales (and X.g_idx): leased as ggml blocks where one holds its values, and
    // decoded to f32 when values are asked for. fp8: an F8_E4M3 "X.weight" is decoded with
    // X.weight_scale_inv.
    void set_quantization(quantized_checkpoint::Method method) { quantization_ = method; }
    // A linear weight handed out once, for packing (pack_stored_weight): its shape, its values,
    // and for a GGUF block-quantized tensor its stored blocks, which a backend computing on the
    // format packs as they are. Copies it needs (rows put back in order, values decoded) live
    // only as long as the lease: values() decodes on first use, and nothing is cached.
    class Lease {
      public:
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        Lease(Lease&&) = default;
        const std::vector<int64_t>& shape() const { return shape_; }
        // Blocks a backend may compute on as they are: a GGUF tensor's, or a GPTQ / AWQ linear's
        // integers in the ggml block format that holds them exactly (quantized_checkpoint::as_blocks).
        const Encoded* encoded() const { return encoded_ ? &*encoded_ : nullptr; }
        // Stored quantized (GGUF blocks, GPTQ / AWQ, fp8), and under which name ("q6_k", "gptq").
        bool quantized() const { return encoded_.has_value() || gptq_awq_ || fp8_; }
        std::string stored_format() const;
        uint64_t stored_bytes() const { return stored_bytes_; }
        tfx_tensor values();

      private:
        friend class WeightStore;
        Lease(WeightStore& store, std::string name) : store_(&store), name_(std::move(name)) {}
        WeightStore* store_;
        std::string name_;
        std::vector<int64_t> shape_;
        const gguf::HfTensor* gguf_ = nullptr;
        bool gptq_awq_ = false;
        bool fp8_ = false;
        std::optional<Encoded> encoded_;
        uint64_t stored_bytes_ = 0;
        std::vector<uint8_t> blocks_;         // a GPTQ / AWQ linear as ggml blocks
        std::vector<uint8_t> rows_in_order_;  // a GGUF tensor whose rows the converter permuted
        std::vector<uint8_t> decoded_;        // a GGUF tensor's blocks as f32
        std::vector<float> dequantized_;      // a GPTQ / AWQ linear
    };
    // Throws sdk::Error when absent.
    Lease lease(const char* name);

    // Merges LoRA adapters into the weights handed out from now on (W += scaling · B·A), kept
    // as copies in each weight's stored dtype. Throws for a quantized or GGUF checkpoint.
    void merge_lora(std::span<const lora::Adapter> adapters);
    // Once the model is loaded: frees the merged weights it only packed (backends keep their own
    // copy of what they pack); those handed out as views (get) stay.
    void release_packed_merges();
    // The stored shape of checkpoint tensor `name` (nullopt when absent), without counting it
    // as used.
    std::optional<std::vector<int64_t>> stored_shape(const std::string& name) const;

    // How `name` is stored ("f32", "bf16", "q8_0", "q4_k", "gptq", "fp8", ...), valid for the
    // store's life; nullptr when absent (host services' weight_storage).
    const char* storage_of(const char* name) const;

    // A view of the stored tensor, valid for the store's life. Throws sdk::Error when absent.
    tfx_tensor get(const char* name);
    // The tensor widened to f32 (from f32, bf16 or f16).
    tfx_tensor get_f32(const char* name);
    // Once the model has packed its weights: the checkpoint's pages read while packing leave
    // this process's resident memory (views handed out stay valid; they read from the file).
    void drop_resident_pages() const;
    // The tensors held as host copies (decoded, reordered or widened), sorted.
    std::vector<std::string> copies() const;
    // The file named in error messages: model.safetensors, the index, or "(no weights)".
    const std::string& source() const { return source_; }
    void set_source(std::string source) { source_ = std::move(source); }
    // The checkpoint's tensors that no lookup asked for (sorted): weights the model does not
    // use, e.g. layers past num_hidden_layers. Empty without a checkpoint.
    std::vector<std::string> unused() const;
    // The checkpoint tensors lookups asked for: bytes as stored (what a decode step streams)
    // and elements (parameters: a forward does ~2 flops per parameter per token).
    struct Usage {
        uint64_t bytes = 0, elements = 0;
    };
    Usage usage() const;

  private:
    struct F32Copy {
        std::vector<float> data;
        std::vector<int64_t> shape;
    };
    // A host view of f32, bf16 or f16 values as an f32 copy.
    static F32Copy widened_copy(const tfx_tensor& t, const char* name);
    std::optional<safetensors::Checkpoint::Entry> find(const char* name) const;
    safetensors::Checkpoint::Entry require(const char* name) const;
    const gguf::HfTensor* find_gguf(const char* name) const;
    std::optional<quantized_checkpoint::Packed> find_packed(const char* name) const;
    tfx_tensor get_gguf(const char* name);
    // A GGUF tensor's stored bytes with rows in Hugging Face order: the mapping itself, or
    // `scratch` filled with the rows put back (llama's q and k).
    const uint8_t* gguf_rows_in_order(const gguf::HfTensor& t, std::vector<uint8_t>& scratch) const;
    // A block-quantized GGUF tensor's bytes (rows in order) decoded to f32 into `out`.
    void decode_gguf(const gguf::HfTensor& t, const uint8_t* bytes, std::vector<uint8_t>& out) const;
    // An fp8 checkpoint's F8_E4M3 weight and its X.weight_scale_inv; nullopt for any other
    // tensor. Throws when the scales are missing.
    std::optional<std::pair<safetensors::Checkpoint::Entry, safetensors::Checkpoint::Entry>> find_fp8(
        const char* name) const;
    std::vector<float> decode_fp8(const char* name) const;
    // A GPTQ / AWQ linear's `name` (X.weight) unpacked from its packed tensors.
    quantized_checkpoint::Unpacked unpack_gptq_awq(const char* name) const;

    // GGUF tensors copied out of the mapping: rows put back in order, or dequantized.
    struct Materialized {
        std::vector<uint8_t> bytes;
        tfx_dtype dtype;
        std::vector<int64_t> shape;
    };
    std::shared_ptr<const gguf::File> gguf_;
    gguf::HfView gguf_view_;
    std::map<std::string, Materialized, std::less<>> materialized_;
    std::map<std::string, Materialized, std::less<>> merged_;  // weights with LoRA adapters merged in
    std::set<std::string, std::less<>> viewed_merges_;         // merged weights get() handed out
    // The stored tensor `name` resolves to, when it holds merged adapters; else nullptr.
    const std::string* merged_name(const char* name) const;
    tfx_tensor merged_view(const char* name);
    std::map<std::string, std::vector<uint8_t>, std::less<>> reordered_encoded_;
    std::map<const void*, Encoded> encoded_;
    Dequantize dequantize_;
    std::optional<quantized_checkpoint::Method> quantization_;

    std::optional<safetensors::Checkpoint> checkpoint_;
    std::map<std::string, std::vector<int64_t>, std::less<>> shapes_;  // stable storage for views
    std::map<std::string, F32Copy, std::less<>> f32_copies_;
    mutable std::set<std::string, std::less<>> storage_names_;  // storage_of's answers
    mutable std::set<std::string, std::less<>> asked_;          // names looked up, and the tensors they resolved to
    std::string source_;
};

}  // namespace tfx
