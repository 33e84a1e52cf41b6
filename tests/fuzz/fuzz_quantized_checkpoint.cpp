// libFuzzer target: pre-quantized linears (GPTQ, AWQ, fp8) decoded from an arbitrary
// safetensors file. The first byte picks the quantization_config; the rest is the file. Every
// linear found (X.qweight with X.qzeros / X.scales / X.g_idx; F8_E4M3 X.weight with
// X.weight_scale_inv) is unpacked, regrouped into blocks and dequantized: each must succeed or
// throw sdk::Error, whatever the shapes and dtypes claim.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/gptq_awq.h"
#include "core/safetensors.h"
#include "tfx/sdk/error.hpp"

namespace {

namespace qc = tfx::quantized_checkpoint;

nlohmann::json config_for(uint8_t selector) {
    switch (selector % 6) {
        case 0:
            return {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 32}};
        case 1:
            return {{"quant_method", "gptq"}, {"bits", 8}, {"group_size", 32}, {"checkpoint_format", "gptq_v2"}};
        case 2:
            return {{"quant_method", "gptq"}, {"bits", 2}, {"group_size", -1}};
        case 3:
            return {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 32}, {"version", "gemm"}};
        case 4:
            return {{"quant_method", "fp8"}, {"weight_block_size", {16, 16}}};
        default:
            return {{"quant_method", "fp8"}};
    }
}

void decode_all(const qc::Method& method, const tfx::safetensors::File& file) {
    using tfx::safetensors::Checkpoint;
    auto entry = [&](const std::string& name) -> std::optional<Checkpoint::Entry> {
        const auto* info = file.find(name);
        if (info == nullptr) return std::nullopt;
        return Checkpoint::Entry{&file, info};
    };
    for (const auto& t : file.header().tensors) {
        try {
            if (method.kind == qc::Method::Kind::fp8) {
                if (t.dtype != tfx::safetensors::DType::F8_E4M3) continue;
                if (const auto scale = entry(t.name + "_scale_inv")) {
                    qc::dequantize_fp8(method, *entry(t.name), *scale, t.name);
                }
                continue;
            }
            if (!t.name.ends_with(".qweight")) continue;
            const std::string base = t.name.substr(0, t.name.size() - 8);
            const auto zeros = entry(base + ".qzeros"), scales = entry(base + ".scales");
            if (!zeros || !scales) continue;
            const qc::Packed packed{*entry(t.name), *zeros, *scales, entry(base + ".g_idx")};
            const qc::Unpacked unpacked = qc::unpack(method, packed, base);
            qc::dequantize(unpacked);
            qc::as_blocks(method, unpacked);
        } catch (const tfx::sdk::Error&) {
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    static const std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("tfx-fuzz-quantized-" + std::to_string(::getpid()) + ".safetensors");
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
    try {
        const auto method = qc::method_of({{"quantization_config", config_for(data[0])}}, "config.json");
        const tfx::safetensors::File file(path);
        decode_all(*method, file);
    } catch (const tfx::sdk::Error&) {
    }
    return 0;
}
