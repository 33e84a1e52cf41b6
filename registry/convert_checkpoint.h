// `tfx convert` and `tfx merge-lora`: a model folder written back as save_pretrained(
// safe_serialization=True) writes it: model.safetensors, or shards model-0000i-of-0000N.safetensors
// with model.safetensors.index.json; {"format": "pt"} header metadata; an LM head tied to the
// embeddings stored once; config.json (torch_dtype updated), generation and tokenizer files
// copied. Optionally in another float dtype, and with LoRA adapters merged into the weights.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/lora_adapter.h"
#include "registry/auto_model.h"

namespace tfx {

struct ConvertOptions {
    std::string dtype;                          // "f32", "bf16" or "f16"; empty: as stored
    uint64_t max_shard_bytes = 5'000'000'000;   // save_pretrained's default max_shard_size, "5GB"
    std::vector<lora::AdapterSpec> merge_lora;  // adapters merged into the weights written, in order
    LoadOptions load;                           // where the model comes from (revision, offline)
    std::function<bool()> cancelled;            // polled between tensors: true stops (nothing is left)
};

struct ConvertReport {
    std::filesystem::path source, out;
    std::vector<std::string> files;   // the weight files written
    size_t tensors = 0;               // tensors written
    uint64_t total_size = 0;          // their bytes (the index's metadata.total_size)
    std::vector<std::string> merged;  // tensors changed by merged adapters
    std::vector<std::string> tied;    // tensors not written because they repeat the embeddings they are tied to
};

// "5GB" (10^9 bytes), "2GiB" (2^30), "500MB", "100KB", "10KiB" or a plain number of bytes,
// as transformers' max_shard_size; throws naming `option` otherwise.
uint64_t parse_shard_size(const std::string& text, const std::string& option);

// Writes `id_or_path`'s checkpoint into `out` (absent or empty) atomically: on any error or
// cancellation nothing is left there. Throws sdk::Error naming the option or file at fault.
ConvertReport convert_checkpoint(const std::string& id_or_path, const std::filesystem::path& out,
                                 const ConvertOptions& options);

}  // namespace tfx
