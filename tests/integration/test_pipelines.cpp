// Task pipelines end to end: the tiny BERT references with a real tokenizer.json written for
// their 384-token vocabulary ("w0" .. "w383", so "w1 w17" encodes to [1, 17]).
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/test_data.h"
#include "core/forward_call.h"
#include "core/safetensors.h"
#include "registry/pipelines.h"

namespace fs = std::filesystem;

namespace {

// A copy of a tiny model folder plus a WordLevel tokenizer whose ids are the word numbers.
fs::path model_with_tokenizer(const fs::path& model, const std::string& name, const nlohmann::json& tokenizer_config) {
    fs::path dir = fs::temp_directory_path() / ("tfx-pipeline-" + name + "-" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const auto& entry : fs::directory_iterator(model)) fs::copy_file(entry.path(), dir / entry.path().filename());
    nlohmann::json vocab = nlohmann::json::object();
    for (int i = 0; i < 384; ++i) vocab["w" + std::to_string(i)] = i;
    nlohmann::json tokenizer = {{"version", "1.0"},
                                {"added_tokens", nlohmann::json::array()},
                                {"normalizer", nullptr},
                                {"pre_tokenizer", {{"type", "Whitespace"}}},
                                {"post_processor", nullptr},
                                {"decoder", nullptr},
                                {"model", {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "w0"}}}};
    std::ofstream(dir / "tokenizer.json") << tokenizer.dump();
    std::ofstream(dir / "tokenizer_config.json") << tokenizer_config.dump();
    return dir;
}

std::string words(const nlohmann::json& ids) {
    std::string s;
    for (const auto& id : ids) s += (s.empty() ? "w" : " w") + std::to_string(id.get<int>());
    return s;
}

nlohmann::json load(const fs::path& p) {
    std::ifstream in(p);
    return nlohmann::json::parse(in);
}

}  // namespace

TEST(Pipelines, FeatureExtractionMatchesReferencePooling) {
    TFX_TEST_DATA_OR_SKIP(model, "tiny/bert");
    TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tiny/bert.json");
    const auto golden = load(golden_path);
    fs::path dir = model_with_tokenizer(model, "bert", {{"tokenizer_class", "PreTrainedTokenizerFast"}});
    tfx::FeatureExtractionPipeline embed(dir, {});
    for (const auto& prompt : golden["prompts"]) {
        SCOPED_TRACE(prompt["name"].get<std::string>());
        const std::string text = words(prompt["input_ids"]);
        auto mean = embed(text, tfx::Pooling::mean, false);
        auto cls = embed(text, tfx::Pooling::cls, false);
        ASSERT_EQ(mean.size(), prompt["mean_pooled"].size());
        for (size_t i = 0; i < mean.size(); ++i) {
            EXPECT_NEAR(mean[i], prompt["mean_pooled"][i].get<float>(), 1e-4);
            EXPECT_NEAR(cls[i], prompt["cls"][i].get<float>(), 1e-4);
        }
        auto unit = embed(text, tfx::Pooling::mean, true);
        float norm = 0.0f;
        for (float v : unit) norm += v * v;
        EXPECT_NEAR(norm, 1.0f, 1e-5);
        EXPECT_NEAR(unit[0] * std::sqrt([&] {
                        float n = 0;
                        for (float v : mean) n += v * v;
                        return n;
                    }()),
                    mean[0], 1e-4);
    }
    // Every prompt in one call (a ragged batch): each text's vector as the golden pools it.
    std::vector<std::string> texts;
    for (const auto& prompt : golden["prompts"]) texts.push_back(words(prompt["input_ids"]));
    const auto batch = embed(texts, tfx::Pooling::mean, false);
    ASSERT_EQ(batch.size(), texts.size());
    for (size_t p = 0; p < texts.size(); ++p) {
        const auto& want = golden["prompts"][p]["mean_pooled"];
        ASSERT_EQ(batch[p].size(), want.size());
        for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(batch[p][i], want[i].get<float>(), 1e-4) << p;
    }
    fs::remove_all(dir);
}

TEST(Pipelines, TextClassificationIsSoftmaxOverId2Label) {
    TFX_TEST_DATA_OR_SKIP(model, "tiny/bert_cls");
    TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tiny/bert_cls.json");
    const auto golden = load(golden_path);
    fs::path dir = model_with_tokenizer(model, "bert_cls", {{"tokenizer_class", "PreTrainedTokenizerFast"}});
    tfx::TextClassificationPipeline classify(dir, {});
    for (const auto& prompt : golden["prompts"]) {
        const auto logits = prompt["logits"].get<std::vector<float>>();
        const float max = *std::max_element(logits.begin(), logits.end());
        float sum = 0.0f;
        for (float l : logits) sum += std::exp(l - max);
        auto scores = classify(words(prompt["input_ids"]));
        ASSERT_EQ(scores.size(), 3u);
        EXPECT_GE(scores[0].score, scores[1].score);
        for (const auto& s : scores) {
            const int label = std::stoi(s.label.substr(6));  // "LABEL_k"
            EXPECT_NEAR(s.score, std::exp(logits[label] - max) / sum, 1e-5) << s.label;
        }
    }
    // Every prompt in one call (a ragged batch): each text's scores as one at a time.
    std::vector<std::string> texts;
    for (const auto& prompt : golden["prompts"]) texts.push_back(words(prompt["input_ids"]));
    const auto batch = classify(texts);
    ASSERT_EQ(batch.size(), texts.size());
    for (size_t p = 0; p < texts.size(); ++p) {
        const auto one = classify(texts[p]);
        ASSERT_EQ(batch[p].size(), one.size());
        for (size_t i = 0; i < one.size(); ++i) {
            EXPECT_EQ(batch[p][i].label, one[i].label) << p;
            EXPECT_NEAR(batch[p][i].score, one[i].score, 1e-5) << p;
        }
    }
    fs::remove_all(dir);
}

TEST(Pipelines, FillMaskRanksTheMaskPosition) {
    TFX_TEST_DATA_OR_SKIP(model, "tiny/bert");
    fs::path dir =
        model_with_tokenizer(model, "mlm", {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"mask_token", "w3"}});
    // The reference BertModel checkpoint has no masked-LM head: the pipeline refuses it, and
    // loading it as BertForMaskedLM names the missing head tensor.
    EXPECT_THROW(tfx::FillMaskPipeline(dir, {})("w1 w3 w5"), std::exception);
    auto config = load(dir / "config.json");
    config["architectures"] = {"BertForMaskedLM"};
    std::ofstream(dir / "config.json") << config.dump();
    try {
        tfx::FillMaskPipeline fill(dir, {});
        ADD_FAILURE() << "loaded a masked LM without its head weights";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("cls.predictions"), std::string::npos) << e.what();
    }

    // With a head (seeded random weights in the layout the plugin declares), the candidates are
    // the softmax of the logits at the mask position, best first.
    auto specs = tfx::AutoModel::from_config(dir / "config.json", {})->weight_specs();
    std::vector<std::vector<uint8_t>> storage;
    std::vector<tfx::safetensors::TensorToWrite> tensors;
    uint32_t state = 12345;
    for (const auto& spec : specs) {
        const auto shape = spec["shape"].get<std::vector<int64_t>>();
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        std::vector<float> values(static_cast<size_t>(n));
        for (float& v : values) {
            state = state * 1664525u + 1013904223u;
            v = spec["init"] == "ones"    ? 1.0f
                : spec["init"] == "zeros" ? 0.0f
                                          : (static_cast<float>(state >> 8) / 16777216.0f - 0.5f) * 0.3f;
        }
        storage.emplace_back(reinterpret_cast<const uint8_t*>(values.data()),
                             reinterpret_cast<const uint8_t*>(values.data() + n));
        tensors.push_back({spec["name"].get<std::string>(), tfx::safetensors::DType::F32, shape, storage.back()});
    }
    fs::remove(dir / "model.safetensors");
    tfx::safetensors::write(dir / "model.safetensors", tensors);
    tfx::FillMaskPipeline fill(dir, {});
    auto candidates = fill("w1 w3 w5", 4);
    ASSERT_EQ(candidates.size(), 4u);
    for (size_t i = 1; i < candidates.size(); ++i) EXPECT_GE(candidates[i - 1].score, candidates[i].score);
    EXPECT_EQ(candidates[0].token_str, "w" + std::to_string(candidates[0].token));
    EXPECT_EQ(candidates[0].sequence, "w1 " + candidates[0].token_str + " w5");

    // The same logits straight from the model: the top candidate is their argmax at position 1.
    auto& session = fill.session();
    const std::vector<int32_t> ids = {1, 3, 5};
    tfx::ForwardCall call(session);
    call.run({.ids = ids, .output = tfx::SequenceInput::Output::all});
    const auto row = call.row(1);
    EXPECT_EQ(std::max_element(row.begin(), row.end()) - row.begin(), candidates[0].token);
    EXPECT_THROW(fill("w1 w5", 4), std::exception);  // no mask token
    fs::remove_all(dir);
}
