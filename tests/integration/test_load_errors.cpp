// Loading what is not quite a model: nonsensical config values, a checkpoint with more tensors
// than the config asks for, a missing tensor, a tokenizer.json that is JSON but no tokenizer.
// Each message names the field or the file, once.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/error_of.h"
#include "../unit/test_data.h"
#include "core/json_file.h"
#include "core/log.h"
#include "core/model_session.h"
#include "registry/auto_model.h"
#include "registry/auto_tokenizer.h"

namespace fs = std::filesystem;

namespace {

using tfx::test::error_of;

fs::path scratch(const std::string& name) {
    fs::path dir = fs::temp_directory_path() / (name + "-" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

size_t count(const std::string& text, const std::string& part) {
    size_t n = 0;
    for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
    return n;
}

// The error of loading the config of shared model `model` with `changes` applied (config only:
// the plugins read the config before any weight).
std::string config_error(const fs::path& model, const nlohmann::json& changes) {
    const fs::path dir = scratch("tfx-load-config");
    nlohmann::json config = nlohmann::json::parse(tfx::read_text_file(model / "config.json"));
    if (!changes.is_null()) config.update(changes);
    std::ofstream(dir / "config.json") << config.dump();
    std::string e = error_of([&] { tfx::AutoModel::from_config(dir / "config.json", {}); });
    fs::remove_all(dir);
    return e;
}

}  // namespace

TEST(LoadErrors, NonsensicalConfigValuesNameTheField) {
    TFX_TEST_DATA_OR_SKIP(llama, "tiny/llama");
    EXPECT_EQ(config_error(llama, {}), "");
    struct Case {
        nlohmann::json changes;
        std::string expected;
    };
    const Case llama_cases[] = {
        {{{"rms_norm_eps", -1}}, "field 'rms_norm_eps': must be positive, got -1"},
        {{{"rope_theta", 0}}, "field 'rope_theta': must be positive, got 0"},
        {{{"max_position_embeddings", 0}}, "field 'max_position_embeddings': must be positive"},
        {{{"hidden_size", 128}, {"num_attention_heads", 6}, {"num_key_value_heads", 6}},
         "field 'num_attention_heads': must divide hidden_size (128 is not divisible by 6)"},
    };
    for (const Case& c : llama_cases) {
        const std::string e = config_error(llama, c.changes);
        EXPECT_NE(e.find(c.expected), std::string::npos) << c.changes.dump() << ": " << e;
        EXPECT_NE(e.find("config.json"), std::string::npos) << e;
    }
}

TEST(LoadErrors, NonDecoderFamiliesCheckTheirOwnFields) {
    TFX_TEST_DATA_OR_SKIP(gpt2, "tiny/gpt2");
    TFX_TEST_DATA_OR_SKIP(gpt_neox, "tiny/gpt_neox");
    TFX_TEST_DATA_OR_SKIP(bert, "tiny/bert");
    TFX_TEST_DATA_OR_SKIP(gemma3, "tiny/gemma3");
    struct Case {
        fs::path model;
        nlohmann::json changes;
        std::string expected;
    };
    const Case cases[] = {
        {gpt2, {{"layer_norm_epsilon", -1e-5}}, "field 'layer_norm_epsilon': must be positive, got -1e-05"},
        {gpt2, {{"n_positions", 0}}, "field 'n_positions': must be positive"},
        {gpt_neox, {{"layer_norm_eps", 0}}, "field 'layer_norm_eps': must be positive, got 0"},
        {gpt_neox, {{"max_position_embeddings", 0}}, "field 'max_position_embeddings': must be positive"},
        {gpt_neox, {{"rotary_emb_base", 0}}, "field 'rotary_emb_base': must be positive, got 0"},
        {bert, {{"layer_norm_eps", -1}}, "field 'layer_norm_eps': must be positive, got -1"},
        {bert, {{"max_position_embeddings", 0}}, "field 'max_position_embeddings': must be positive"},
        {bert, {{"type_vocab_size", 0}}, "field 'type_vocab_size': must be positive"},
        {gemma3, {{"rope_local_base_freq", 0}}, "field 'rope_local_base_freq': must be positive, got 0"},
    };
    for (const Case& c : cases) {
        EXPECT_EQ(config_error(c.model, {}), "") << c.model;
        const std::string e = config_error(c.model, c.changes);
        EXPECT_NE(e.find(c.expected), std::string::npos) << c.model << " " << c.changes.dump() << ": " << e;
    }
}

// As transformers' "Some weights of the model checkpoint were not used": a checkpoint with
// more layers than num_hidden_layers loads, and the unread tensors are listed in a warning.
TEST(LoadErrors, UnusedCheckpointTensorsAreListedInAWarning) {
    TFX_TEST_DATA_OR_SKIP(tiny, "tiny/llama");
    const fs::path dir = scratch("tfx-unused-weights");
    fs::copy_file(tiny / "model.safetensors", dir / "model.safetensors");
    nlohmann::json config = nlohmann::json::parse(tfx::read_text_file(tiny / "config.json"));
    const int64_t layers = config["num_hidden_layers"].get<int64_t>();
    ASSERT_GE(layers, 2);
    config["num_hidden_layers"] = 1;
    std::ofstream(dir / "config.json") << config.dump();

    const tfx::log::Level old = tfx::log::threshold();
    tfx::log::set_threshold(tfx::log::Level::warn);
    ::testing::internal::CaptureStderr();
    std::unique_ptr<tfx::ModelSession> session;
    const std::string e = error_of([&] { session = tfx::AutoModel::from_pretrained(dir.string(), {}); });
    const std::string log = ::testing::internal::GetCapturedStderr();
    tfx::log::set_threshold(old);
    ASSERT_EQ(e, "");

    // Every tensor of layers 1.. and nothing else: 9 per llama layer.
    const auto& unused = session->unused_weights();
    EXPECT_EQ(unused.size(), static_cast<size_t>(9 * (layers - 1)));
    for (const auto& name : unused) EXPECT_FALSE(name.starts_with("model.layers.0.")) << name;
    EXPECT_NE(std::find(unused.begin(), unused.end(), "model.layers.1.input_layernorm.weight"), unused.end());
    EXPECT_NE(log.find("[tfx warn]"), std::string::npos) << log;
    EXPECT_NE(log.find((dir / "model.safetensors").string() + ": " + std::to_string(unused.size()) +
                       " tensors were not used by LlamaForCausalLM"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("model.layers.1.input_layernorm.weight"), std::string::npos) << log;
    EXPECT_NE(log.find(", and " + std::to_string(unused.size() - 10) + " more"), std::string::npos) << log;

    // The full config reads every tensor: nothing unused, no warning.
    config["num_hidden_layers"] = layers;
    std::ofstream(dir / "config.json", std::ios::trunc) << config.dump();
    ::testing::internal::CaptureStderr();
    session = tfx::AutoModel::from_pretrained(dir.string(), {});
    const std::string quiet = ::testing::internal::GetCapturedStderr();
    EXPECT_TRUE(session->unused_weights().empty());
    EXPECT_EQ(quiet.find("not used"), std::string::npos) << quiet;
    fs::remove_all(dir);
}

TEST(LoadErrors, AMissingTensorNamesTheCheckpointOnce) {
    TFX_TEST_DATA_OR_SKIP(tiny, "tiny/llama");
    const fs::path dir = scratch("tfx-missing-tensor");
    fs::copy_file(tiny / "model.safetensors", dir / "model.safetensors");
    nlohmann::json config = nlohmann::json::parse(tfx::read_text_file(tiny / "config.json"));
    const int64_t layers = config["num_hidden_layers"].get<int64_t>();
    config["num_hidden_layers"] = layers + 1;
    std::ofstream(dir / "config.json") << config.dump();
    const std::string e = error_of([&] { tfx::AutoModel::from_pretrained(dir.string(), {}); });
    EXPECT_EQ(e, (dir / "model.safetensors").string() + ": tensor 'model.layers." + std::to_string(layers) +
                     ".input_layernorm.weight' not found");
    EXPECT_EQ(count(e, "model.safetensors"), 1u) << e;
    fs::remove_all(dir);
}

TEST(LoadErrors, ATokenizerJsonThatIsNoObjectIsNotCalledInvalidJson) {
    const fs::path dir = scratch("tfx-array-tokenizer");
    std::ofstream(dir / "tokenizer.json") << "[]";
    std::string e = error_of([&] { tfx::Tokenizer::open(dir, {}); });
    EXPECT_NE(e.find((dir / "tokenizer.json").string() + ": expected a JSON object"), std::string::npos) << e;
    EXPECT_EQ(e.find("not valid JSON"), std::string::npos) << e;
    std::ofstream(dir / "tokenizer.json", std::ios::trunc) << "{\"model\": ";
    e = error_of([&] { tfx::Tokenizer::open(dir, {}); });
    EXPECT_NE(e.find("tokenizer.json: not valid JSON"), std::string::npos) << e;
    fs::remove_all(dir);
}
