// LoRA adapters in PEFT's on-disk format (adapter_config.json + adapter_model.safetensors):
// read, validated against the base model, and applied either merged into the weights
// (W += scaling · B·A, transposed for a Conv1D stored [in, out]) or beside them at run time
// (y = W x + b + scaling · B (A x)), as PEFT's lora.Linear does.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace tfx::lora {

// What a row of a forward applies: the session's active adapters, none (the bare base), or
// adapter number i (>= 0) of the session.
inline constexpr int32_t kActiveAdapters = -2;
inline constexpr int32_t kNoAdapter = -1;

// One `--lora DIR[=NAME][:SCALE]`: SCALE multiplies the adapter's own scaling (default 1).
struct AdapterSpec {
    std::filesystem::path dir;
    std::string name;  // empty: the folder's name
    float scale = 1.0f;
};
// Parses the command-line form; throws sdk::Error naming `option` when malformed.
AdapterSpec parse_spec(const std::string& text, const std::string& option);
// The name an adapter loaded from `spec` gets: its own, else its folder's.
std::string load_name(const AdapterSpec& spec);

// One adapted module of the base model.
struct Module {
    std::string module;  // PEFT's module path: "model.layers.0.self_attn.q_proj"
    std::string weight;  // the base checkpoint's tensor it adapts: "model.layers.0.self_attn.q_proj.weight"
    int64_t rank = 0, in = 0, out = 0;
    bool transposed = false;  // the base weight is stored [in, out] (GPT-2's Conv1D)
    std::vector<float> a;     // lora_A [rank, in]
    std::vector<float> b;     // lora_B [out, rank]
};

// A tensor of a module the adapter saves whole (PEFT's modules_to_save): it replaces the base's.
struct Replacement {
    std::string weight;  // the base checkpoint's tensor
    std::vector<float> values;
};

struct Adapter {
    std::string name;
    std::filesystem::path dir;
    int64_t rank = 0;
    double alpha = 0;
    bool rslora = false;
    float scaling = 0;  // lora_alpha / r (or / sqrt(r) with use_rslora), times the spec's scale
    std::vector<Module> modules;
    std::vector<Replacement> replaced;  // merged only (they replace the base for every row)

    // The module adapting checkpoint tensor `weight`, or nullptr.
    const Module* module_for(const std::string& weight) const;
};

// How the base model stores a tensor: its shape, or nullopt when it has no such tensor.
using BaseShape = std::function<std::optional<std::vector<int64_t>>(const std::string& name)>;

// Reads the adapter and matches every module to a base tensor (`<module>.weight`, or without
// the module path's first component where the checkpoint stores the bare base model, as GPT-2
// checkpoints do). Throws sdk::Error naming the file, field or tensor for anything PEFT would
// compute differently: other peft types, DoRA, trained biases, rank or alpha patterns, a module
// the base lacks, shapes that do not fit.
// `conv1d_model`: the base's linear layers are transformers Conv1D (stored [in, out], GPT-2),
// which tells a square weight's orientation; any other's follows from its shape.
Adapter load(const AdapterSpec& spec, const BaseShape& base_shape, bool conv1d_model);
// Whether config.json's model_type is a family whose blocks are Conv1D layers.
bool conv1d_model_type(const std::string& model_type);

// w (the base weight as stored, f32) += scaling · B·A (transposed for a transposed module).
void merge_into(const Module& module, float scaling, std::span<float> w);

}  // namespace tfx::lora
