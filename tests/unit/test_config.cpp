// config.json access: errors name the file and the field.
#include <fstream>

#include <gtest/gtest.h>

#include "core/json_file.h"
#include "error_of.h"
#include "test_data.h"
#include "tfx/sdk/decoder.hpp"

namespace {

using tfx::test::error_of;

}  // namespace

TEST(Config, TypedFieldsAndNamedErrors) {
    auto c = tfx::sdk::Config::parse(
        R"({"hidden_size": 64, "rms_norm_eps": 1e-5, "name": "x", "rope_scaling": null, "big": 99999999999})",
        "config.json");
    EXPECT_EQ(c.get<int>("hidden_size"), 64);
    EXPECT_FLOAT_EQ(c.get<float>("rms_norm_eps"), 1e-5f);
    EXPECT_EQ(c.get_or<int>("missing", 7), 7);
    EXPECT_FALSE(c.has("rope_scaling"));
    EXPECT_EQ(error_of([&] { c.get<int>("vocab_size"); }),
              "config.json: field 'vocab_size': required field is missing");
    EXPECT_EQ(error_of([&] { c.get<int>("name"); }), "config.json: field 'name': expected an integer, got \"x\"");
    EXPECT_EQ(error_of([&] { c.get<int>("rms_norm_eps"); }),
              "config.json: field 'rms_norm_eps': expected an integer, got 1e-05");
    EXPECT_NE(error_of([&] { c.get<int32_t>("big"); }).find("out of range"), std::string::npos);
}

TEST(Config, FileErrorsNameTheFile) {
    auto dir = std::filesystem::temp_directory_path() / ("tfx-config-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    EXPECT_NE(error_of([&] { tfx::load_json_file(dir / "config.json"); }).find("config.json: file not found"),
              std::string::npos);
    std::ofstream(dir / "config.json") << "{\"a\": [1, 2";
    EXPECT_NE(error_of([&] { tfx::load_json_file(dir / "config.json"); }).find("config.json: not valid JSON"),
              std::string::npos);
    std::ofstream(dir / "config.json") << "[1]";
    EXPECT_NE(error_of([&] { tfx::load_json_file(dir / "config.json"); }).find("expected a JSON object"),
              std::string::npos);
    EXPECT_FALSE(tfx::load_optional_json_file(dir / "generation_config.json"));
    std::filesystem::remove_all(dir);
}

TEST(Config, EverySharedConfigParses) {
    // Every tiny model folder holds a config.json that parses and names its model_type and
    // architectures; the number of families grows with the shared data, so none is pinned.
    TFX_TEST_DATA_OR_SKIP(root, "tiny");
    int folders = 0;
    for (const auto& entry : std::filesystem::directory_iterator(root)) {
        if (!entry.is_directory()) continue;
        ++folders;
        const auto path = entry.path() / "config.json";
        ASSERT_TRUE(std::filesystem::exists(path)) << path;
        auto c = tfx::load_json_file(path);
        EXPECT_FALSE(c.get<std::string>("model_type").empty()) << path;
        EXPECT_TRUE(c.json().contains("architectures")) << path;
    }
    EXPECT_GT(folders, 0) << "no model folders under " << root;
}

// The standard decoder fields refuse values no model can run with, naming the field.
TEST(Config, DecoderConfigRefusesNonsensicalValues) {
    const nlohmann::json good = {{"vocab_size", 32},
                                 {"hidden_size", 64},
                                 {"intermediate_size", 128},
                                 {"num_hidden_layers", 2},
                                 {"num_attention_heads", 4},
                                 {"num_key_value_heads", 2},
                                 {"max_position_embeddings", 128}};
    auto error_with = [&](const nlohmann::json& changes, const tfx::sdk::DecoderDefaults& defaults = {}) {
        nlohmann::json j = good;
        if (!changes.is_null()) j.update(changes);
        return error_of([&] { tfx::sdk::DecoderConfig(tfx::sdk::Config(j, "config.json"), defaults); });
    };
    EXPECT_EQ(error_with({}), "");
    EXPECT_EQ(error_with({{"rms_norm_eps", -1}}), "config.json: field 'rms_norm_eps': must be positive, got -1");
    EXPECT_EQ(error_with({{"rms_norm_eps", 0.0}}), "config.json: field 'rms_norm_eps': must be positive, got 0.0");
    EXPECT_EQ(error_with({{"rope_theta", 0}}), "config.json: field 'rope_theta': must be positive, got 0");
    EXPECT_EQ(error_with({{"rope_theta", 1e300}}), "");  // large is fine; only f32 overflow is refused
    EXPECT_EQ(error_with({{"rms_norm_eps", 1e39}}),
              "config.json: field 'rms_norm_eps': must be positive, got 1e+39");  // inf as f32
    EXPECT_EQ(error_with({{"max_position_embeddings", 0}}),
              "config.json: field 'max_position_embeddings': must be positive");
    // head_dim derived from hidden_size / num_attention_heads: divisibility is the error, not evenness.
    EXPECT_EQ(error_with({{"hidden_size", 128}, {"num_attention_heads", 6}, {"num_key_value_heads", 6}}),
              "config.json: field 'num_attention_heads': must divide hidden_size (128 is not divisible by 6)");
    // An explicit head_dim (or a family default) needs no divisibility; evenness still holds.
    EXPECT_EQ(
        error_with({{"hidden_size", 128}, {"num_attention_heads", 6}, {"num_key_value_heads", 6}, {"head_dim", 16}}),
        "");
    EXPECT_EQ(error_with({{"head_dim", 15}}), "config.json: field 'head_dim': must be even for rotary embeddings");
    EXPECT_EQ(
        error_with({{"hidden_size", 128}, {"num_attention_heads", 6}, {"num_key_value_heads", 6}}, {.head_dim = 256}),
        "");
    EXPECT_EQ(error_with({{"num_key_value_heads", 3}}),
              "config.json: field 'num_key_value_heads': must divide num_attention_heads");
}

TEST(Config, RopeScalingRefusesFactorsThatTurnRotationsIntoNaN) {
    auto error_with = [](const nlohmann::json& rope_scaling) {
        const nlohmann::json j = {{"rope_scaling", rope_scaling}};
        return error_of([&] {
            tfx::sdk::rope_scaling(tfx::sdk::Config(j, "config.json"),
                                   {"default", "linear", "dynamic", "llama3", "yarn"});
        });
    };
    EXPECT_EQ(error_with({{"rope_type", "linear"}, {"factor", 2.0}}), "");
    EXPECT_EQ(error_with({{"rope_type", "linear"}, {"factor", 0}}),
              "config.json: rope_scaling: field 'factor': must be positive, got 0");
    EXPECT_EQ(error_with({{"type", "dynamic"}, {"factor", -2.0}}),
              "config.json: rope_scaling: field 'factor': must be positive, got -2.0");
    EXPECT_EQ(error_with({{"rope_type", "yarn"}}),
              "config.json: rope_scaling: field 'factor': is required for rope_type 'yarn'");
    const nlohmann::json llama3 = {{"rope_type", "llama3"},
                                   {"factor", 8.0},
                                   {"low_freq_factor", 1.0},
                                   {"high_freq_factor", 4.0},
                                   {"original_max_position_embeddings", 8192}};
    EXPECT_EQ(error_with(llama3), "");
    auto zero_low = llama3;
    zero_low["low_freq_factor"] = 0.0;
    EXPECT_EQ(error_with(zero_low), "config.json: rope_scaling: field 'low_freq_factor': must be positive, got 0.0");
    auto no_original = llama3;
    no_original.erase("original_max_position_embeddings");
    EXPECT_EQ(
        error_with(no_original),
        "config.json: rope_scaling: field 'original_max_position_embeddings': is required for rope_type 'llama3'");
}
