// A model session: one model folder bound to the model, backend and attention plugins that
// the caller chose (the registry's AutoModel picks them from config.json). The session owns
// the checkpoint's weights, serves the plugins' host services (config, weights, options) and
// forwards their compute calls to the backend and attention plugins.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/device.h"
#include "core/kv_cache.h"
#include "core/lora_adapter.h"
#include "core/plugin_catalogue.h"
#include "core/weight_store.h"
#include "tfx/sdk/config.hpp"
#include "tfx/tfx.h"

namespace tfx {

struct SessionOptions {
    std::vector<std::string> plugin_paths;
    std::string device = "auto";      // "auto", a device ("cpu") or a backend plugin name
    std::string attn_implementation;  // empty: config.json's, else "eager"
    int num_threads = 0;              // 0: the backend's default (all cores)
    std::string kv_dtype = "f32";     // the KV cache's dtype: "f32", "bf16" or "f16"
    std::string weight_format;        // linear weights packed into it ("f32", "bf16", "q4_0", ...); empty: as stored
    std::string quantize;             // "int8" or "int4": quantize linear weights at load (q8_0 / q4_0)
    // As torch.set_float32_matmul_precision: "highest" keeps every matmul's inputs f32 (the
    // reference's accuracy); "medium" lets backends multiply bf16 weights by bf16-rounded
    // activations where the CPU has bf16 dot products (prefill 1.5x faster, ~1e-2 relative).
    std::string matmul_precision = "highest";
    // PEFT LoRA adapters on the base weights, in order; merged into the weights at load with
    // merge_lora, else applied beside each adapted linear at run time.
    std::vector<lora::AdapterSpec> lora;
    bool merge_lora = false;
    // Ranks of an MPI job that share each layer (--tp): each holds 1/N of the sharded weights
    // and the model sums partial results across ranks (tensor_parallel.h). 1: no sharding.
    int tensor_parallel = 1;
};

// The weight format the options ask for: weight_format, or the format --quantize names.
// Throws naming the option for an unknown method, or when both are set and disagree.
std::string requested_weight_format(const SessionOptions& options);
// Formats a backend computes on without a quantizer (it converts between them itself).
bool is_float_format(const std::string& format);

// The plugins a session runs with; the records must stay valid while the session opens.
struct PluginChoice {
    const PluginRecord* model = nullptr;
    const PluginRecord* backend = nullptr;
    const PluginRecord* attention = nullptr;
    const PluginRecord* quantizer = nullptr;  // set when weights are quantized at load
    std::string architecture;                 // as config.json names it ("LlamaForCausalLM")
    std::string head;                         // the task head the model's manifest maps it to ("causal_lm")
};

// A model folder's config.json; throws naming the folder when it is not a folder or has none.
std::filesystem::path model_config_path(const std::filesystem::path& model_dir);

class ModelSession {
  public:
    // A model folder (config.json + safetensors): binds the plugins and loads the weights.
    static std::unique_ptr<ModelSession> open(const std::filesystem::path& model_dir, const PluginChoice& plugins,
                                              const SessionOptions& options);
    // A GGUF file seen as a Hugging Face checkpoint (gguf_model.h); model_dir() is its folder.
    static std::unique_ptr<ModelSession> open_gguf(std::shared_ptr<const gguf::File> file, gguf::HfView view,
                                                   const PluginChoice& plugins, const SessionOptions& options);
    // A session on a config alone (no weights), for weight_specs(): tfx init-model.
    static std::unique_ptr<ModelSession> for_config(const std::filesystem::path& config_path,
                                                    const PluginChoice& plugins, const SessionOptions& options);
    ~ModelSession();
    ModelSession(const ModelSession&) = delete;
    ModelSession& operator=(const ModelSession&) = delete;

    const tfx_model_info& info() const { return info_; }
    const sdk::Config& config() const { return config_; }
    const std::filesystem::path& model_dir() const { return model_dir_; }
    const std::string& architecture() const { return architecture_; }
    // The task head the model's manifest maps the architecture to ("causal_lm", "question_answering").
    const std::string& task_head() const { return task_head_; }
    // "llama (model) + cpu (backend) + eager (attention)" for reports.
    std::string plugin_summary() const;

    // One forward pass; output rows are f32 [rows, info().output_size]. Host code builds
    // the arguments with ForwardCall (core/forward_call.h).
    void forward(const tfx_forward_args& args);

    // LoRA adapters applied at run time (--lora without --merge-lora), in load order.
    std::vector<std::string> lora_adapters() const;
    // The same with each adapter's folder.
    std::vector<std::pair<std::string, std::string>> lora_adapter_dirs() const;
    bool applies_lora() const;
    // Throws naming the adapters there are when `name` is not one.
    int32_t lora_adapter_index(const std::string& name) const;
    // The adapters rows choosing lora::kActiveAdapters apply (all at load), as PEFT's set_adapter.
    void set_active_lora(const std::vector<std::string>& names);
    // The next forward's choice per token row and per output row (ForwardCall sets it).
    void set_lora_rows(std::span<const int32_t> token_rows, std::span<const int32_t> output_rows);
    // What tells apart the KV of a sequence running with LoRA choice `adapter` from one with
    // another choice (a prefix cache salt): 0 without run-time adapters.
    uint64_t lora_cache_salt(int32_t adapter) const;
    // A paged KV cache for this model on the session's device, in the session's KV dtype.
    std::unique_ptr<PagedKvCache> make_cache(int32_t block_size = 16, bool prefix_caching = false) const;
    // An encoder-decoder model's cross-attention cache (info().num_cross_layers layers); null
    // for other models.
    std::unique_ptr<PagedKvCache> make_cross_cache(int32_t block_size = 16) const;
    // The backend's memory (allocations and transfers for host code).
    const Device& device() const;
    // The tensors the model would load, as the model plugin declares them.
    nlohmann::json weight_specs();
    // The checkpoint's tensors the model plugin never asked for while loading (sorted), e.g.
    // layers past num_hidden_layers; open() logs them as a warning. Empty for for_config().
    const std::vector<std::string>& unused_weights() const { return unused_weights_; }
    // The checkpoint tensors the model uses: bytes as stored (quantized at load: as encoded), and
    // parameters (0 without weights).
    WeightStore::Usage weight_usage() const;
    // Multiply-adds of the linear weights the model packed: per token (every linear but the
    // output projection, i.e. the weights with vocabulary-many rows) and per output row (the
    // output projection, run for the rows that get logits). MoE experts all count, though a
    // token runs only its top-k.
    struct MatmulWork {
        uint64_t per_token = 0, per_output_row = 0;
    };
    MatmulWork matmul_work() const;
    // Linear weights the backend packed from their stored block-quantized bytes (GGUF), not
    // from a dequantized copy.
    int64_t weights_packed_as_stored() const;
    // Linear weights stored in blocks the backend does not run (GGUF's q5_k, ...), re-encoded to
    // q8_0 at load instead of widened to f32.
    int64_t weights_reencoded() const;
    // The GGUF file the session was opened from (open_gguf), else null.
    const std::shared_ptr<const gguf::File>& gguf_file() const { return gguf_file_; }
    // The checkpoint tensors the host keeps its own copies of for the session (decoded,
    // reordered or widened: embeddings, norms), sorted. Linear weights packed through
    // pack_stored_weight are never among them.
    std::vector<std::string> weight_copies() const;

    struct Impl;

  private:
    ModelSession();
    void bind_plugins(const PluginChoice& plugins, const SessionOptions& options);
    void load_lora(const SessionOptions& options);
    std::string unused_message() const;
    std::string quantized_message() const;

    std::unique_ptr<Impl> impl_;
    sdk::Config config_;
    std::filesystem::path model_dir_;
    std::shared_ptr<const gguf::File> gguf_file_;
    std::string architecture_, task_head_;
    std::vector<std::string> unused_weights_;
    tfx_model_info info_{};
};

}  // namespace tfx
