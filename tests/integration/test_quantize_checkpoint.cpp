// `tfx quantize` (quantize_checkpoint): GPTQ checkpoints written from a float model, read back
// by tfx's own GPTQ reader (the one the shared AutoGPTQ / AutoAWQ checkpoints pin) and run on
// the block kernels.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/test_data.h"
#include "blockwise_plugin.h"
#include "core/forward_call.h"
#include "core/gptq_awq.h"
#include "core/model_session.h"
#include "core/safetensors.h"
#include "golden_logits.h"
#include "registry/quantize_checkpoint.h"

namespace {

namespace fs = std::filesystem;
using tfx::test::read_json;

fs::path fresh_dir(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / name;
    fs::remove_all(dir);
    return dir;
}

tfx::QuantizeCheckpointReport quantize(const fs::path& model, const fs::path& out, const std::string& method,
                                       int64_t group_size) {
    tfx::QuantizeCheckpointOptions options;
    options.method = method;
    options.group_size = group_size;
    return tfx::quantize_checkpoint(model.string(), out, options);
}

// In groups of 32, the GPTQ integers regroup into exactly the blocks llama.cpp's quantizer makes
// (BlockwiseQuantizer.EncodesAsLlamaCppDoes pins ours to its files): q4_0 for int4, q8_0 for
// int8. The folder loads as any GPTQ checkpoint, its 14 projections packed from those blocks.
TEST(QuantizeCheckpoint, GroupsOf32HoldLlamaCppsBlocks) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    const auto source = tfx::safetensors::Checkpoint::open(model);
    for (const auto& [method, format] : {std::pair{"int4", "q4_0"}, std::pair{"int8", "q8_0"}}) {
        const fs::path out = fresh_dir(std::string("tfx-quantized-") + method);
        const auto report = quantize(model, out, method, 32);
        EXPECT_EQ(report.quantized.size(), 14u) << method;
        const nlohmann::json config = read_json(out / "config.json");
        const auto gptq = tfx::quantized_checkpoint::method_of(config, "config.json");
        ASSERT_TRUE(gptq.has_value());
        EXPECT_EQ(gptq->bits, std::string(method) == "int4" ? 4 : 8);
        EXPECT_EQ(config.at("quantization_config").at("block_name_to_quantize"), "model.layers");
        EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
        const auto written = tfx::safetensors::Checkpoint::open(out);
        for (const std::string& name : report.quantized) {
            const std::string base = name.substr(0, name.size() - 7);
            const tfx::quantized_checkpoint::Packed packed{
                *written.find(base + ".qweight"), *written.find(base + ".qzeros"), *written.find(base + ".scales"),
                written.find(base + ".g_idx")};
            const auto blocks =
                tfx::quantized_checkpoint::as_blocks(*gptq, tfx::quantized_checkpoint::unpack(*gptq, packed, base));
            ASSERT_TRUE(blocks.has_value()) << name;
            EXPECT_EQ(blocks->format, format);
            const auto entry = *source.find(name);
            std::vector<int64_t> shape = entry.info->shape;
            tfx_tensor src{};
            src.data = const_cast<uint8_t*>(entry.file->data(*entry.info));
            src.device = tfx::sdk::kHostDevice;
            src.ndim = 2;
            src.dtype = tfx::safetensors::to_abi(entry.info->dtype);
            src.shape = shape.data();
            EXPECT_EQ(blocks->bytes, tfx::test::quantize(format, src)) << method << " " << name;
        }
        auto session = tfx::AutoModel::from_pretrained(out.string(), {});
        EXPECT_EQ(session->weights_packed_as_stored(), 14) << method;
        EXPECT_TRUE(session->unused_weights().empty());
        fs::remove_all(out);
    }
}

// A quantized checkpoint's float output projection (here tied to the f32 embeddings) is packed
// q8_0 at load, as --quantize int4 packs it: the f32 table would be most of a small model's
// bytes a token.
TEST(QuantizeCheckpoint, TheTiedOutputProjectionRunsAtQ8_0) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    const fs::path out = fresh_dir("tfx-quantized-head");
    quantize(model, out, "int4", 32);
    auto session = tfx::AutoModel::from_pretrained(out.string(), {});
    const tfx_model_info& info = session->info();
    const uint64_t f32_head = static_cast<uint64_t>(info.vocab_size) * 128 * 4;  // hidden_size 128
    const uint64_t q8_0_head = f32_head / 4 / 32 * 34;
    // Every tensor of the folder is used, each at its stored size but the head's.
    uint64_t stored = 0;
    const auto written = tfx::safetensors::Checkpoint::open(out);
    for (const std::string& name : written.names())
        stored += written.find(name)->info->end - written.find(name)->info->begin;
    EXPECT_EQ(session->weight_usage().bytes, stored - f32_head + q8_0_head);
    fs::remove_all(out);
}

// Larger groups (fewer scales) run from blocks too; the logits stay near the f32 model's, as
// --quantize int4 does (tinystories: 0.9-3.4 at 4 bits, llama.cpp's Q4_0 alike; bound 5).
TEST(QuantizeCheckpoint, LargerGroupsRunAndStayNearTheFloatModel) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tinystories-656k.json");
    const fs::path out = fresh_dir("tfx-quantized-g128");
    quantize(model, out, "int4", 128);
    auto session = tfx::AutoModel::from_pretrained(out.string(), {});
    EXPECT_EQ(session->weights_packed_as_stored(), 14);
    tfx::ForwardCall call(*session);
    const nlohmann::json golden = read_json(golden_path);
    int compared = 0;
    for (const auto& prompt : golden.at("prompts")) {
        const auto got = call.run({.ids = prompt.at("input_ids").get<std::vector<int32_t>>()});
        EXPECT_LE(tfx::test::max_abs_diff(got, tfx::test::logits_of(prompt.at("last_logits"))), 5.0f)
            << prompt.at("name");
        ++compared;
    }
    EXPECT_GE(compared, 5);
    fs::remove_all(out);
}

// GPT-2's Conv1D layers store their weights [in, out]; they are quantized transposed, as
// AutoGPTQ does, under block "transformer.h". The folder loads back: c_proj and c_fc computed
// on their blocks, c_attn (q, k, v are row blocks of it) decoded, and the logits stay near
// transformers' f32 ones as --quantize at load keeps them (tiny gpt2, whose weights are large:
// int8 0.05-0.13, the same as --quantize int8; int4 0.7-0.95; bounds 0.25 and 2). A weight
// quantized untransposed would be another matrix, its logits off by whole units.
TEST(QuantizeCheckpoint, Gpt2sConv1DLayersAreQuantizedTransposed) {
    TFX_TEST_DATA_OR_SKIP(model, "tiny/gpt2");
    TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tiny/gpt2.json");
    const nlohmann::json golden = read_json(golden_path);
    for (const auto& [method, bound] : {std::pair{"int8", 0.25f}, std::pair{"int4", 2.0f}}) {
        const fs::path out = fresh_dir(std::string("tfx-quantized-gpt2-") + method);
        const auto report = quantize(model, out, method, 32);
        EXPECT_EQ(report.quantized.size(), 12u) << method;  // 3 layers x c_attn, c_proj, c_fc, mlp.c_proj
        const nlohmann::json config = read_json(out / "config.json");
        EXPECT_EQ(config.at("quantization_config").at("block_name_to_quantize"), "transformer.h");
        const auto written = tfx::safetensors::Checkpoint::open(out);
        // qweight is [in / values per word, out]: c_fc is 64 in, 256 out.
        const auto c_fc = written.find("transformer.h.0.mlp.c_fc.qweight");
        ASSERT_TRUE(c_fc.has_value());
        EXPECT_EQ(c_fc->info->shape, (std::vector<int64_t>{64 / (32 / (std::string(method) == "int8" ? 8 : 4)), 256}));
        auto session = tfx::AutoModel::from_pretrained(out.string(), {});
        EXPECT_EQ(session->weights_packed_as_stored(), 9) << method;
        EXPECT_TRUE(session->unused_weights().empty());
        tfx::ForwardCall call(*session);
        for (const auto& prompt : golden.at("prompts")) {
            const auto got = call.run({.ids = prompt.at("input_ids").get<std::vector<int32_t>>()});
            const float diff = tfx::test::max_abs_diff(got, tfx::test::logits_of(prompt.at("last_logits")));
            EXPECT_LE(diff, bound) << method << " " << prompt.at("name");
        }
        fs::remove_all(out);
    }
}

// Wrong requests name what is wrong and leave nothing behind.
TEST(QuantizeCheckpoint, BadRequestsAreRefusedAndLeaveNothing) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    TFX_TEST_DATA_OR_SKIP(gptq, "quant/models/tinystories-656k-gptq-4bit-g128");
    TFX_TEST_DATA_OR_SKIP(gguf, "quant/gguf/tinystories-656k-q8_0.gguf");
    const fs::path out = fresh_dir("tfx-quantized-refused");
    auto refused = [&](const fs::path& from, const std::string& method, int64_t group, const std::string& expected) {
        try {
            quantize(from, out, method, group);
            ADD_FAILURE() << "accepted: " << expected;
        } catch (const std::exception& e) {
            EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
        }
        EXPECT_FALSE(fs::exists(out)) << expected;
        for (const auto& entry : fs::directory_iterator(fs::temp_directory_path())) {
            EXPECT_EQ(entry.path().filename().string().find(".tfx-quantized-refused.tmp"), std::string::npos);
        }
    };
    refused(model, "int3", 32, "--method: expected int8 or int4, got 'int3'");
    refused(model, "int4", 0, "--group-size: expected a positive number of inputs, got 0");
    refused(model, "int4", 100, "no linear weight could be quantized at int4 in groups of 100");
    refused(gptq, "int4", 32, "the model is quantized already (quantization_config: \"gptq\")");
    refused(gguf, "int4", 32, "a GGUF file is quantized already");
    fs::create_directories(out);
    std::ofstream(out / "keep.txt") << "mine";
    try {
        quantize(model, out, "int4", 32);
        ADD_FAILURE() << "wrote into a folder holding files";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("already exists and is not an empty folder"), std::string::npos)
            << e.what();
    }
    EXPECT_TRUE(fs::exists(out / "keep.txt"));
    fs::remove_all(out);
}

}  // namespace
