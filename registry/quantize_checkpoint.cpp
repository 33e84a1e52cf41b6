#include "registry/quantize_checkpoint.h"

#include <map>
#include <set>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/gptq_awq.h"
#include "core/gptq_writer.h"
#include "core/json_file.h"
#include "core/safetensors.h"
#include "registry/model_folder_writer.h"
#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

namespace fs = std::filesystem;

int bits_of(const std::string& method) {
    if (method == "int8") return 8;
    if (method == "int4") return 4;
    throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--method: expected int8 or int4, got '" + method + "'");
}

// The block a layer's tensor lives under: what comes before its first all-digit name part
// ("model.layers" of "model.layers.0.self_attn.q_proj.weight", "transformer.h" of GPT-2's
// "transformer.h.0.attn.c_attn.weight"); empty outside numbered layers.
std::string block_of(const std::string& name) {
    for (size_t start = 0; start < name.size();) {
        const size_t end = std::min(name.find('.', start), name.size());
        if (start > 0 && end < name.size() && end > start && name.find_first_not_of("0123456789", start) >= end)
            return name.substr(0, start - 1);
        start = end + 1;
    }
    return {};
}

// "model.layers.0.self_attn.q_proj.weight" -> "self_attn.q_proj" (under block "model.layers").
std::string module_in_block(const std::string& name, const std::string& block) {
    std::string rest = name.substr(block.size() + 1, name.size() - block.size() - 1 - 7);  // drop ".weight"
    return rest.substr(rest.find('.') + 1);                                                // drop the layer number
}

// The [columns, rows] transpose of a row-major [rows, columns] matrix.
std::vector<float> transposed(const std::vector<float>& values, int64_t rows, int64_t columns) {
    std::vector<float> out(values.size());
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < columns; ++c)
            out[static_cast<size_t>(c * rows + r)] = values[static_cast<size_t>(r * columns + c)];
    }
    return out;
}

}  // namespace

QuantizeCheckpointReport quantize_checkpoint(const std::string& id_or_path, const fs::path& out,
                                             const QuantizeCheckpointOptions& options) {
    QuantizeCheckpointReport report;
    report.bits = bits_of(options.method);
    if (options.group_size <= 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--group-size: expected a positive number of inputs, got " +
                                                       std::to_string(options.group_size));
    }
    if (gguf_file_of(id_or_path)) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, id_or_path +
                                                  ": a GGUF file is quantized already; tfx quantize reads model "
                                                  "folders (config.json and safetensors)");
    }
    report.source = resolve_model_location(id_or_path, options.load);
    report.out = out;
    const fs::path config_path = report.source / "config.json";
    nlohmann::ordered_json config = read_source_config(config_path);
    if (config.contains("quantization_config")) {
        const auto& q = config["quantization_config"];
        throw sdk::Error(TFX_ERR_UNSUPPORTED,
                         config_path.string() + ": the model is quantized already (quantization_config" +
                             (q.is_object() && q.contains("quant_method") ? ": " + q["quant_method"].dump() : "") +
                             ")");
    }
    // The linears' weights, and whether each is stored [in, out] (a Conv1D's) rather than [out, in].
    std::map<std::string, bool> linears;
    for (const auto& spec : AutoModel::from_config(config_path, options.load)->weight_specs()) {
        if (spec.value("linear", false))
            linears[spec.at("name").get<std::string>()] = spec.value("layout", "") == "in_out";
    }
    ModelFolderWriter folder(out, "--out");

    const auto checkpoint = safetensors::Checkpoint::open(report.source);
    std::vector<safetensors::TensorToWrite> tensors;
    std::vector<std::vector<uint8_t>> storage;
    std::set<std::string> blocks, modules;  // where the quantized linears live, for quantization_config
    for (const std::string& name : checkpoint.names()) {
        const auto entry = *checkpoint.find(name);
        const auto& info = *entry.info;
        report.bytes_in += info.end - info.begin;
        const std::span<const uint8_t> stored(entry.file->data(info), info.end - info.begin);
        std::string why_kept;
        if (!linears.contains(name) || info.shape.size() != 2) {
            tensors.push_back({name, info.dtype, info.shape, stored});
            continue;
        }
        const bool in_out = linears.at(name);
        // Quantized as a linear [out = rows, in = cols]: a Conv1D's weight transposed, as AutoGPTQ does.
        const int64_t rows = info.shape[in_out ? 1 : 0], cols = info.shape[in_out ? 0 : 1];
        if (name == "lm_head.weight") {
            why_kept = "the output projection (GPTQ leaves it unquantized)";
        } else if (const std::string unfit = gptq_writer::unfit_reason(rows, cols, report.bits, options.group_size);
                   !unfit.empty()) {
            why_kept = unfit;
        } else if (info.dtype != safetensors::DType::F32 && info.dtype != safetensors::DType::BF16 &&
                   info.dtype != safetensors::DType::F16) {
            why_kept = "stored as " + std::string(safetensors::dtype_name(info.dtype));
        }
        if (!why_kept.empty()) {
            report.kept.push_back(name + ": " + why_kept);
            tensors.push_back({name, info.dtype, info.shape, stored});
            continue;
        }
        std::vector<float> values =
            safetensors::widened(stored.data(), info.dtype, static_cast<size_t>(rows * cols), name.c_str());
        if (in_out) values = transposed(values, cols, rows);
        const std::string base = name.substr(0, name.size() - 7);  // drop ".weight"
        for (auto& t : gptq_writer::quantize_linear(values, rows, cols, report.bits, options.group_size)) {
            storage.push_back(std::move(t.bytes));
            tensors.push_back({base + "." + t.suffix, t.dtype, t.shape, storage.back()});
        }
        report.quantized.push_back(name);
        // Transformer blocks are "<block>.<layer number>.<module>.weight".
        if (const std::string block = block_of(name); !block.empty()) {
            blocks.insert(block);
            modules.insert(module_in_block(name, block));
        }
    }
    if (report.quantized.empty()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         report.source.string() + ": no linear weight could be quantized at " + options.method +
                             " in groups of " + std::to_string(options.group_size) +
                             (report.kept.empty() ? std::string(" (the model plugin declares none)")
                                                  : " (" + report.kept.front() + ")"));
    }

    std::map<std::string, std::string> metadata = checkpoint.metadata();
    metadata["format"] = "pt";
    safetensors::write(folder.scratch() / "model.safetensors", tensors, metadata);
    report.bytes_out = fs::file_size(folder.scratch() / "model.safetensors");
    nlohmann::json quantization = gptq_writer::quantization_config(report.bits, options.group_size);
    if (blocks.size() == 1) {
        quantization["block_name_to_quantize"] = *blocks.begin();
        quantization["modules_in_block_to_quantize"] = {std::vector<std::string>(modules.begin(), modules.end())};
    }
    config["quantization_config"] = quantization;
    std::ofstream(folder.scratch() / "config.json") << config.dump(2) << '\n';
    folder.copy_model_files(report.source, {"config.json"});
    folder.commit();
    return report;
}

}  // namespace tfx
