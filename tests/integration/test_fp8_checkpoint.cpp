// fp8 checkpoints (quantization_config.quant_method "fp8", as transformers' FineGrainedFP8 and
// the DeepSeek / Qwen FP8 releases store them): F8_E4M3 weights with one f32 scale per block
// of 128 x 128 in X.weight_scale_inv. No shared file holds one, so the test writes tinystories'
// projections that way and a float twin holding exactly the values they stand for.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/test_data.h"
#include "core/forward_call.h"
#include "core/model_session.h"
#include "core/safetensors.h"
#include "golden_logits.h"
#include "registry/auto_model.h"

namespace {

namespace fs = std::filesystem;
using tfx::safetensors::DType;

constexpr int64_t kBlock = 128;

// e4m3fn: sign, 4 exponent bits (bias 7), 3 mantissa bits; exponent 0 is subnormal (m / 8 x
// 2^-6); S.1111.111 is NaN, so the largest value is 1.75 x 2^8 = 448.
float e4m3_value(uint8_t code) {
    const float e = static_cast<float>((code >> 3) & 15), m = static_cast<float>(code & 7);
    const float magnitude = e == 0 ? (m / 8.0f) * std::pow(2.0f, -6.0f) : (1.0f + m / 8.0f) * std::pow(2.0f, e - 7.0f);
    return code & 0x80 ? -magnitude : magnitude;
}

uint8_t nearest_e4m3(float x) {
    uint8_t best = 0;
    for (int code = 0; code < 0x7F; ++code) {
        if (std::fabs(e4m3_value(static_cast<uint8_t>(code)) - std::fabs(x)) <
            std::fabs(e4m3_value(best) - std::fabs(x)))
            best = static_cast<uint8_t>(code);
    }
    return x < 0 ? static_cast<uint8_t>(best | 0x80) : best;
}

template <class T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
    std::vector<uint8_t> out(v.size() * sizeof(T));
    std::memcpy(out.data(), v.data(), out.size());
    return out;
}

// The fp8 folder and its twin, from tinystories-656k (with `drop_one_scale`, one linear lacks
// its scales).
struct Fp8Model {
    fs::path fp8, twin;
};

Fp8Model write_fp8_model(const fs::path& source, const std::string& tag, const nlohmann::json& quantization,
                         bool drop_one_scale = false) {
    const fs::path fp8 = fs::temp_directory_path() / ("tfx-fp8-" + tag),
                   twin = fs::temp_directory_path() / ("tfx-fp8-twin-" + tag);
    for (const auto& dir : {fp8, twin}) {
        fs::remove_all(dir);
        fs::create_directories(dir);
    }
    nlohmann::json config = tfx::test::read_json(source / "config.json");
    std::ofstream(twin / "config.json") << config.dump();
    config["quantization_config"] = quantization;
    std::ofstream(fp8 / "config.json") << config.dump();
    const auto checkpoint = tfx::safetensors::Checkpoint::open(source);
    std::vector<tfx::safetensors::TensorToWrite> fp8_tensors, twin_tensors;
    std::vector<std::vector<uint8_t>> storage;
    storage.reserve(1000);
    for (const std::string& name : checkpoint.names()) {
        const auto e = *checkpoint.find(name);
        const std::span<const uint8_t> stored(e.file->data(*e.info), e.info->end - e.info->begin);
        if (!name.ends_with("_proj.weight")) {
            fp8_tensors.push_back({name, e.info->dtype, e.info->shape, stored});
            twin_tensors.push_back({name, e.info->dtype, e.info->shape, stored});
            continue;
        }
        const int64_t out = e.info->shape[0], in = e.info->shape[1];
        const std::vector<float> w =
            tfx::safetensors::widened(stored.data(), e.info->dtype, static_cast<size_t>(out * in), name.c_str());
        const int64_t scale_rows = (out + kBlock - 1) / kBlock, scale_cols = (in + kBlock - 1) / kBlock;
        std::vector<float> scales(static_cast<size_t>(scale_rows * scale_cols), 0.0f);
        for (int64_t o = 0; o < out; ++o) {
            for (int64_t i = 0; i < in; ++i) {
                float& s = scales[static_cast<size_t>(o / kBlock * scale_cols + i / kBlock)];
                s = std::max(s, std::fabs(w[o * in + i]) / 448.0f);
            }
        }
        std::vector<uint8_t> codes(w.size());
        std::vector<float> values(w.size());
        for (int64_t o = 0; o < out; ++o) {
            for (int64_t i = 0; i < in; ++i) {
                const float s = scales[static_cast<size_t>(o / kBlock * scale_cols + i / kBlock)];
                codes[o * in + i] = nearest_e4m3(s > 0 ? w[o * in + i] / s : 0.0f);
                values[o * in + i] = e4m3_value(codes[o * in + i]) * s;
            }
        }
        storage.push_back(codes);
        fp8_tensors.push_back({name, DType::F8_E4M3, {out, in}, storage.back()});
        if (!(drop_one_scale && name == "model.layers.1.mlp.down_proj.weight")) {
            storage.push_back(bytes_of(scales));
            fp8_tensors.push_back({name + "_scale_inv", DType::F32, {scale_rows, scale_cols}, storage.back()});
        }
        storage.push_back(bytes_of(values));
        twin_tensors.push_back({name, DType::F32, {out, in}, storage.back()});
    }
    tfx::safetensors::write(fp8 / "model.safetensors", fp8_tensors);
    tfx::safetensors::write(twin / "model.safetensors", twin_tensors);
    return {fp8, twin};
}

const nlohmann::json kBlockwise = {
    {"quant_method", "fp8"}, {"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"weight_block_size", {128, 128}}};

// Asked for f32, the fp8 linears decode to exactly the twin's weights (f32 rounding, 1e-4); by
// default they are re-encoded to q8_0 for the int8 kernels (the shared README's 0.5).
TEST(Fp8Checkpoint, DecodesToItsTwinAndRunsReencoded) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    const Fp8Model m = write_fp8_model(model, "blockwise", kBlockwise);
    tfx::LoadOptions as_f32;
    as_f32.weight_format = "f32";
    auto exact = tfx::AutoModel::from_pretrained(m.fp8.string(), as_f32);
    auto native = tfx::AutoModel::from_pretrained(m.fp8.string(), {});
    auto twin = tfx::AutoModel::from_pretrained(m.twin.string(), {});
    EXPECT_EQ(native->weights_reencoded(), 14);
    EXPECT_EQ(exact->weights_reencoded(), 0);
    EXPECT_TRUE(native->unused_weights().empty());
    tfx::ForwardCall exact_call(*exact), native_call(*native), twin_call(*twin);
    for (const std::vector<int32_t>& ids :
         {std::vector<int32_t>{1, 80, 147, 201, 282, 57}, std::vector<int32_t>{1, 33, 480, 12, 600, 9, 77, 1022}}) {
        const auto t = twin_call.run({.ids = ids});
        const std::vector<float> want(t.begin(), t.end());
        const auto e = exact_call.run({.ids = ids});
        EXPECT_LE(tfx::test::max_abs_diff(std::vector<float>(e.begin(), e.end()), want), 1e-4f);
        const auto n = native_call.run({.ids = ids});
        const std::vector<float> got(n.begin(), n.end());
        EXPECT_LE(tfx::test::max_abs_diff(got, want), 0.5f);
        EXPECT_GT(tfx::test::max_abs_diff(got, want), 0.0f);  // the q8_0 kernels ran
    }
    fs::remove_all(m.fp8);
    fs::remove_all(m.twin);
}

TEST(Fp8Checkpoint, MissingOrMisshapenScalesAreNamed) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto refused = [](const fs::path& dir, const std::string& expected) {
        try {
            tfx::AutoModel::from_pretrained(dir.string(), {});
            ADD_FAILURE() << "loaded: " << expected;
        } catch (const std::exception& e) {
            EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
        }
    };
    const Fp8Model missing = write_fp8_model(model, "missing", kBlockwise, true);
    refused(missing.fp8,
            "'model.layers.1.mlp.down_proj.weight' is F8_E4M3 but 'model.layers.1.mlp.down_proj.weight_scale_inv' is "
            "not there");
    nlohmann::json smaller = kBlockwise;
    smaller["weight_block_size"] = {64, 64};
    const Fp8Model misshapen = write_fp8_model(model, "misshapen", smaller);
    refused(misshapen.fp8, "must be F32 or BF16 [");
    nlohmann::json bad = kBlockwise;
    bad["weight_block_size"] = {128};
    const Fp8Model bad_block = write_fp8_model(model, "bad-block", bad);
    refused(bad_block.fp8, "quantization_config.weight_block_size must be two positive integers, got [128]");
    for (const auto* m : {&missing, &misshapen, &bad_block}) {
        fs::remove_all(m->fp8);
        fs::remove_all(m->twin);
    }
}

}  // namespace
