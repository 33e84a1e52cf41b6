#include "registry/convert_checkpoint.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/json_file.h"
#include "core/safetensors.h"
#include "registry/model_folder_writer.h"
#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

namespace fs = std::filesystem;
using safetensors::DType;

bool is_float(DType d) {
    return d == DType::F32 || d == DType::BF16 || d == DType::F16;
}

DType dtype_named(const std::string& name) {
    if (name == "f32") return DType::F32;
    if (name == "bf16") return DType::BF16;
    if (name == "f16") return DType::F16;
    throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--dtype: expected f32, bf16 or f16, got '" + name + "'");
}

// config.json's torch_dtype for a dtype.
const char* torch_dtype(DType d) {
    return d == DType::F32 ? "float32" : d == DType::BF16 ? "bfloat16" : "float16";
}

uint64_t element_count(const safetensors::TensorInfo& info) {
    uint64_t n = 1;
    for (int64_t d : info.shape) n *= static_cast<uint64_t>(d);
    return n;
}

// transformers does not save an LM head tied to the input embeddings (tie_word_embeddings,
// true unless config.json says otherwise): the stored "lm_head.weight" is dropped when it holds
// exactly the bytes of an embedding table stored beside it.
std::vector<std::string> tied_heads(const safetensors::Checkpoint& checkpoint, const nlohmann::ordered_json& config) {
    if (!config.value("tie_word_embeddings", true)) return {};
    const auto head = checkpoint.find("lm_head.weight");
    if (!head || head->info->name != "lm_head.weight") return {};
    const uint64_t bytes = head->info->end - head->info->begin;
    for (const std::string& name : checkpoint.names()) {
        const auto other = *checkpoint.find(name);
        if (name == "lm_head.weight" || other.info->shape != head->info->shape ||
            other.info->dtype != head->info->dtype)
            continue;
        if (std::equal(head->file->data(*head->info), head->file->data(*head->info) + bytes,
                       other.file->data(*other.info))) {
            return {"lm_head.weight"};
        }
    }
    return {};
}

struct Planned {
    std::string name;
    uint64_t bytes;  // as written
};

// huggingface_hub's split_torch_state_dict_into_shards: tensors in order; one larger than the
// limit gets a shard of its own; a shard closes when the next tensor would pass the limit.
std::vector<std::vector<Planned>> plan_shards(const std::vector<Planned>& tensors, uint64_t max_bytes) {
    std::vector<std::vector<Planned>> shards;
    std::vector<Planned> current;
    uint64_t current_bytes = 0;
    for (const Planned& t : tensors) {
        if (t.bytes > max_bytes) {
            shards.push_back({t});
            continue;
        }
        if (current_bytes + t.bytes > max_bytes && !current.empty()) {
            shards.push_back(std::move(current));
            current.clear();
            current_bytes = 0;
        }
        current.push_back(t);
        current_bytes += t.bytes;
    }
    if (!current.empty()) shards.push_back(std::move(current));
    return shards;
}

std::string shard_name(size_t index, size_t count) {
    char buffer[64];
    std::snprintf(buffer, sizeof(buffer), "model-%05zu-of-%05zu.safetensors", index + 1, count);
    return buffer;
}

}  // namespace

uint64_t parse_shard_size(const std::string& text, const std::string& option) {
    static const std::pair<const char*, uint64_t> kUnits[] = {{"GiB", 1ull << 30},
                                                              {"MiB", 1ull << 20},
                                                              {"KiB", 1ull << 10},
                                                              {"GB", 1'000'000'000},
                                                              {"MB", 1'000'000},
                                                              {"KB", 1'000},
                                                              {"B", 1}};
    std::string digits = text;
    uint64_t unit = 1;
    for (const auto& [suffix, value] : kUnits) {
        if (text.size() > std::string_view(suffix).size() && text.ends_with(suffix)) {
            digits = text.substr(0, text.size() - std::string_view(suffix).size());
            unit = value;
            break;
        }
    }
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 12) {
        throw sdk::Error(
            TFX_ERR_INVALID_ARGUMENT,
            option + ": expected a size such as 5GB, 500MB, 2GiB or a number of bytes, got '" + text + "'");
    }
    const uint64_t bytes = std::stoull(digits) * unit;
    if (bytes == 0) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, option + ": must be more than 0 bytes");
    return bytes;
}

ConvertReport convert_checkpoint(const std::string& id_or_path, const fs::path& out, const ConvertOptions& options) {
    ConvertReport report;
    const std::optional<DType> target =
        options.dtype.empty() ? std::nullopt : std::optional(dtype_named(options.dtype));
    if (options.max_shard_bytes == 0) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--max-shard-size: must be positive");
    if (gguf_file_of(id_or_path)) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED,
                         id_or_path + ": a GGUF file; tfx convert reads model folders (config.json and safetensors)");
    }
    report.source = resolve_model_location(id_or_path, options.load);
    report.out = out;
    const fs::path config_path = report.source / "config.json";
    nlohmann::ordered_json config = read_source_config(config_path);
    if (config.contains("quantization_config")) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, config_path.string() +
                                                  ": the model is quantized (quantization_config); tfx convert "
                                                  "writes f32, bf16 and f16 checkpoints");
    }
    const auto checkpoint = safetensors::Checkpoint::open(report.source);

    // Adapters to merge, by the tensor each module changes.
    std::vector<lora::Adapter> adapters;
    std::map<std::string, std::vector<std::pair<const lora::Adapter*, const lora::Module*>>> merges;
    for (const lora::AdapterSpec& spec : options.merge_lora) {
        adapters.push_back(lora::load(
            spec,
            [&](const std::string& name) -> std::optional<std::vector<int64_t>> {
                const auto entry = checkpoint.find(name);
                if (!entry) return std::nullopt;
                return entry->info->shape;
            },
            lora::conv1d_model_type(config.value("model_type", ""))));
    }
    std::map<std::string, const std::vector<float>*> replacements;  // modules_to_save: the last adapter's
    for (const lora::Adapter& a : adapters) {
        for (const lora::Replacement& r : a.replaced) {
            replacements[r.weight] = &r.values;
            merges.erase(r.weight);  // an earlier adapter's delta is replaced too
        }
        for (const lora::Module& m : a.modules) {
            const DType stored = checkpoint.find(m.weight)->info->dtype;
            if (!is_float(stored)) {
                throw sdk::Error(TFX_ERR_UNSUPPORTED, report.source.string() + ": tensor " + m.weight +
                                                          " is stored as " +
                                                          std::string(safetensors::dtype_name(stored)) +
                                                          "; LoRA merges into f32, bf16 or f16 weights");
            }
            merges[m.weight].emplace_back(&a, &m);
        }
    }

    report.tied = tied_heads(checkpoint, config);
    std::vector<Planned> planned;
    for (const std::string& name : checkpoint.names()) {
        if (std::find(report.tied.begin(), report.tied.end(), name) != report.tied.end()) continue;
        const auto& info = *checkpoint.find(name)->info;
        const bool converted = target && is_float(info.dtype);
        const uint64_t bytes =
            converted ? element_count(info) * safetensors::dtype_size(*target) : info.end - info.begin;
        planned.push_back({name, bytes});
        report.total_size += bytes;
    }

    ModelFolderWriter folder(out, "--out");
    const std::vector<std::vector<Planned>> shards = plan_shards(planned, options.max_shard_bytes);
    std::map<std::string, std::string> weight_map;  // sorted, as transformers writes the index
    for (size_t s = 0; s < shards.size(); ++s) {
        const std::string file_name = shards.size() == 1 ? "model.safetensors" : shard_name(s, shards.size());
        std::vector<safetensors::TensorToWrite> tensors;
        std::vector<std::vector<uint8_t>> storage;  // this shard's converted tensors
        storage.reserve(shards[s].size());
        for (const Planned& p : shards[s]) {
            if (options.cancelled && options.cancelled()) {
                throw sdk::Error(TFX_ERR_INTERNAL, "conversion interrupted; nothing was written to " + out.string());
            }
            const auto entry = *checkpoint.find(p.name);
            const auto& info = *entry.info;
            const std::span<const uint8_t> stored(entry.file->data(info), info.end - info.begin);
            const auto merge = merges.find(p.name);
            const auto replacement = replacements.find(p.name);
            const bool changed = merge != merges.end() || replacement != replacements.end();
            const DType dtype = target && is_float(info.dtype) ? *target : info.dtype;
            if (!changed && dtype == info.dtype) {
                tensors.push_back({p.name, info.dtype, info.shape, stored});
            } else {
                std::vector<float> values =
                    replacement != replacements.end()
                        ? *replacement->second
                        : safetensors::widened(stored.data(), info.dtype, element_count(info), p.name.c_str());
                if (merge != merges.end()) {
                    for (const auto& [adapter, module] : merge->second)
                        lora::merge_into(*module, adapter->scaling, values);
                }
                if (changed) report.merged.push_back(p.name);
                storage.push_back(safetensors::narrowed(values, dtype));
                tensors.push_back({p.name, dtype, info.shape, storage.back()});
            }
            weight_map[p.name] = file_name;
        }
        safetensors::write(folder.scratch() / file_name, tensors, {{"format", "pt"}});
        report.files.push_back(file_name);
        report.tensors += tensors.size();
    }
    if (shards.size() > 1) {
        const nlohmann::ordered_json index = {{"metadata", {{"total_size", report.total_size}}},
                                              {"weight_map", weight_map}};
        std::ofstream(folder.scratch() / "model.safetensors.index.json") << index.dump(2) << '\n';
    }
    if (target) {
        config["torch_dtype"] = torch_dtype(*target);
        std::ofstream(folder.scratch() / "config.json") << config.dump(2) << '\n';
        folder.copy_model_files(report.source, {"config.json"});
    } else {
        folder.copy_model_files(report.source, {});
    }
    folder.commit();
    return report;
}

}  // namespace tfx
