// PEFT LoRA adapters (shared/lora): applied at run time beside the base weights and merged at
// load, against transformers + PEFT's goldens (last logits within 1e-4, argmax per position and
// greedy tokens equal); PEFT's adapter switch; one batch mixing adapters and the bare base; and
// adapters that do not fit refused by name. Also tfx convert's cancellation (nothing left).
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/error_of.h"
#include "../unit/test_data.h"
#include "backend_options.h"
#include "core/forward_call.h"
#include "core/generation.h"
#include "core/safetensors.h"
#include "golden_logits.h"
#include "registry/auto_model.h"
#include "registry/convert_checkpoint.h"

namespace {

namespace fs = std::filesystem;

constexpr float kTolerance = 1e-4f;

const char* base_of(const std::string& model) {
    if (model == "qwen2") return "tiny/qwen2";
    if (model == "gpt2") return "tiny/gpt2";
    return "models/tinystories-656k";
}

std::unique_ptr<tfx::ModelSession> open(const fs::path& root, const std::string& model,
                                        const std::vector<std::string>& adapters, bool merge,
                                        const std::string& backend = "cpu") {
    tfx::LoadOptions options = tfx::test::backend_options(backend);
    for (const std::string& a : adapters) options.lora.push_back({root / "lora" / model / "adapters" / a, a, 1.0f});
    options.merge_lora = merge;
    return tfx::AutoModel::from_pretrained((root / base_of(model)).string(), options);
}

int32_t argmax(std::span<const float> row) {
    return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

// Every prompt of `golden` through `session`: logits, argmax per position, greedy tokens.
void expect_matches(tfx::ModelSession& session, const nlohmann::json& golden, const std::string& what,
                    int32_t adapter = tfx::lora::kActiveAdapters) {
    for (const auto& prompt : golden.at("prompts")) {
        const auto ids = prompt.at("input_ids").get<std::vector<int32_t>>();
        tfx::ForwardCall call(session);
        call.run({.ids = ids, .adapter = adapter, .output = tfx::SequenceInput::Output::all});
        std::vector<int32_t> argmaxes;
        for (int64_t r = 0; r < call.rows(); ++r) argmaxes.push_back(argmax(call.row(r)));
        const auto last = call.row(call.rows() - 1);
        const auto expected = tfx::test::logits_of(prompt.at("last_logits"));
        EXPECT_LT(tfx::test::max_abs_diff(last, expected), kTolerance) << what << " " << prompt.at("name");
        EXPECT_EQ(argmaxes, prompt.at("argmax_per_position").get<std::vector<int32_t>>())
            << what << " " << prompt.at("name");

        tfx::Generator generator(session);
        tfx::GenerationConfig greedy;
        greedy.ignore_eos = true;
        tfx::GenerationRequestOptions request;
        request.adapter = adapter;
        generator.add(ids, greedy, prompt.at("greedy").at("max_new_tokens").get<int64_t>(), request);
        std::vector<int32_t> tokens;
        while (!generator.idle()) {
            for (const auto& e : generator.step()) tokens.push_back(e.token);
        }
        EXPECT_EQ(tokens, prompt.at("greedy").at("new_tokens").get<std::vector<int32_t>>())
            << what << " " << prompt.at("name");
    }
}

class LoraGolden : public ::testing::TestWithParam<std::tuple<const char*, const char*, bool>> {};

TEST_P(LoraGolden, MatchesPeft) {
    const auto [model, adapter, merge] = GetParam();
    TFX_TEST_DATA_OR_SKIP(root, "lora");
    const fs::path shared = root.parent_path();
    auto session = open(shared, model, {adapter}, merge);
    EXPECT_EQ(session->lora_adapters().size(), merge ? 0u : 1u);
    const auto golden = tfx::test::read_json(root / model / "golden" / (std::string(adapter) + "-runtime.json"));
    expect_matches(*session, golden, std::string(model) + "/" + adapter + (merge ? " merged" : " runtime"));
}

INSTANTIATE_TEST_SUITE_P(SharedAdapters, LoraGolden,
                         ::testing::Combine(::testing::Values("tinystories-656k", "qwen2", "gpt2"),
                                            ::testing::Values("a1", "a2"), ::testing::Bool()),
                         [](const auto& p) {
                             std::string name = std::string(std::get<0>(p.param)) + "_" + std::get<1>(p.param) +
                                                (std::get<2>(p.param) ? "_merged" : "_runtime");
                             std::replace(name.begin(), name.end(), '-', '_');
                             return name;
                         });

// PEFT's switch: both adapters loaded, a2 active, then a1, then none (the bare base); on every
// backend, since the low-rank product is made of the backend's own ops.
class LoraSwitch : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(LoraSwitch, MatchesPeftSetAdapter) {
    const std::string model = std::get<0>(GetParam());
    const std::string backend = std::get<1>(GetParam());
    if (const std::string missing = tfx::test::backend_missing(backend); !missing.empty()) GTEST_SKIP() << missing;
    TFX_TEST_DATA_OR_SKIP(root, "lora");
    auto session = open(root.parent_path(), model, {"a1", "a2"}, false, backend);
    ASSERT_NE(session->plugin_summary().find(backend + " (backend)"), std::string::npos) << session->plugin_summary();
    const auto golden = [&](const char* name) { return tfx::test::read_json(root / model / "golden" / name); };
    session->set_active_lora({"a2"});
    expect_matches(*session, golden("switch-1-a2.json"), model + " set_adapter(a2)");
    session->set_active_lora({"a1"});
    expect_matches(*session, golden("switch-2-a1.json"), model + " set_adapter(a1)");
    session->set_active_lora({});
    expect_matches(*session, golden("switch-3-disabled.json"), model + " disable_adapter()");
    // The same choices per request, with the session's active set left empty.
    expect_matches(*session, golden("switch-1-a2.json"), model + " request a2", session->lora_adapter_index("a2"));
    expect_matches(*session, golden("base.json"), model + " request none", tfx::lora::kNoAdapter);
}

INSTANTIATE_TEST_SUITE_P(SharedAdapters, LoraSwitch,
                         ::testing::Combine(::testing::Values("tinystories-656k", "qwen2", "gpt2"),
                                            ::testing::Values("cpu", "guarded", "torch", "cuda")),
                         [](const auto& p) {
                             std::string name = std::string(std::get<0>(p.param)) + "_" + std::get<1>(p.param);
                             std::replace(name.begin(), name.end(), '-', '_');
                             return name;
                         });

// Three adapters and the bare base in one batch, on one shared prompt with prefix caching:
// each row gets the tokens it gets alone (and PEFT's, where a golden exists).
TEST(LoraBatch, MixedAdaptersGiveEachRowItsOwnTokens) {
    TFX_TEST_DATA_OR_SKIP(root, "lora");
    const fs::path adapters = root / "tinystories-656k" / "adapters";
    tfx::LoadOptions options;
    options.lora = {{adapters / "a1", "a1", 1.0f}, {adapters / "a2", "a2", 1.0f}, {adapters / "a1", "a1-half", 0.5f}};
    auto session = tfx::AutoModel::from_pretrained((root.parent_path() / base_of("tinystories")).string(), options);
    const auto base = tfx::test::read_json(root / "tinystories-656k" / "golden" / "base.json");
    const auto prompt = base.at("prompts").at(0).at("input_ids").get<std::vector<int32_t>>();
    constexpr int64_t kTokens = 24;
    tfx::GenerationConfig greedy;
    greedy.ignore_eos = true;
    const std::vector<int32_t> choices{0, 1, 2, tfx::lora::kNoAdapter};

    const auto run = [&](const std::vector<int32_t>& which) {
        tfx::Generator generator(*session, {.block_size = 4, .prefix_caching = true});
        // The bare base's run of the prompt first: its published blocks must not serve the
        // adapters' rows (their keys and values differ).
        tfx::GenerationRequestOptions bare;
        bare.adapter = tfx::lora::kNoAdapter;
        generator.add(prompt, greedy, 1, bare);
        while (!generator.idle()) generator.step();
        std::map<tfx::Generator::RequestId, size_t> row_of;
        for (size_t i = 0; i < which.size(); ++i) {
            tfx::GenerationRequestOptions request;
            request.adapter = which[i];
            row_of[generator.add(prompt, greedy, kTokens, request)] = i;
        }
        std::vector<std::vector<int32_t>> rows(which.size());
        while (!generator.idle()) {
            for (const auto& e : generator.step()) rows[row_of.at(e.request)].push_back(e.token);
        }
        return rows;
    };
    const auto together = run(choices);
    for (size_t i = 0; i < choices.size(); ++i) {
        EXPECT_EQ(together[i], run({choices[i]})[0]) << "row " << i;
        for (size_t j = 0; j < i; ++j) EXPECT_NE(together[i], together[j]) << "rows " << j << " and " << i;
    }
    const auto golden_tokens = [&](const char* file) {
        auto t = tfx::test::read_json(root / "tinystories-656k" / "golden" / file)
                     .at("prompts")
                     .at(0)
                     .at("greedy")
                     .at("new_tokens")
                     .get<std::vector<int32_t>>();
        t.resize(kTokens);
        return t;
    };
    EXPECT_EQ(together[0], golden_tokens("a1-runtime.json"));
    EXPECT_EQ(together[1], golden_tokens("a2-runtime.json"));
    EXPECT_EQ(together[3], golden_tokens("base.json"));
}

TEST(LoraErrors, AdaptersThatDoNotFitAreRefusedByName) {
    TFX_TEST_DATA_OR_SKIP(root, "lora");
    const fs::path shared = root.parent_path();
    // An adapter for another base.
    tfx::LoadOptions other;
    other.lora = {{root / "tinystories-656k" / "adapters" / "a1", "", 1.0f}};
    std::string message =
        tfx::test::error_of([&] { tfx::AutoModel::from_pretrained((shared / "tiny/qwen2").string(), other); });
    EXPECT_NE(message.find("lora_A.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("another base model"), std::string::npos) << message;
    // Two adapters of one name.
    tfx::LoadOptions twice;
    twice.lora = {{root / "qwen2" / "adapters" / "a1", "", 1.0f}, {root / "qwen2" / "adapters" / "a1", "", 1.0f}};
    message = tfx::test::error_of([&] { tfx::AutoModel::from_pretrained((shared / "tiny/qwen2").string(), twice); });
    EXPECT_NE(message.find("two adapters are named 'a1'"), std::string::npos) << message;
    // A setting tfx does not compute (DoRA) is refused, never ignored.
    const fs::path dora = fs::temp_directory_path() / "tfx-test-lora-dora";
    fs::remove_all(dora);
    fs::create_directories(dora);
    fs::copy_file(root / "qwen2" / "adapters" / "a1" / "adapter_model.safetensors", dora / "adapter_model.safetensors");
    auto config = tfx::test::read_json(root / "qwen2" / "adapters" / "a1" / "adapter_config.json");
    config["use_dora"] = true;
    std::ofstream(dora / "adapter_config.json") << config.dump();
    tfx::LoadOptions with_dora;
    with_dora.lora = {{dora, "", 1.0f}};
    message =
        tfx::test::error_of([&] { tfx::AutoModel::from_pretrained((shared / "tiny/qwen2").string(), with_dora); });
    EXPECT_NE(message.find("use_dora"), std::string::npos) << message;
    fs::remove_all(dora);
    // An unknown adapter name.
    auto session = open(shared, "qwen2", {"a1"}, false);
    message = tfx::test::error_of([&] { session->set_active_lora({"a3"}); });
    EXPECT_NE(message.find("no LoRA adapter named 'a3'"), std::string::npos) << message;
}

// PEFT decides a layer's orientation by its kind (GPT-2's Conv1D or a Linear), whatever
// fan_in_fan_out says: gpt2's a2 (square c_proj weights only) with the flag cleared still
// matches PEFT.
TEST(LoraOrientation, Conv1DWeightsAreTransposedWhateverTheConfigSays) {
    TFX_TEST_DATA_OR_SKIP(root, "lora");
    const fs::path dir = fs::temp_directory_path() / "tfx-test-lora-fan-in-fan-out";
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path a2 = root / "gpt2" / "adapters" / "a2";
    fs::copy_file(a2 / "adapter_model.safetensors", dir / "adapter_model.safetensors");
    auto config = tfx::test::read_json(a2 / "adapter_config.json");
    config["fan_in_fan_out"] = false;
    std::ofstream(dir / "adapter_config.json") << config.dump();
    for (const bool merge : {false, true}) {
        tfx::LoadOptions options;
        options.lora = {{dir, "a2", 1.0f}};
        options.merge_lora = merge;
        auto session = tfx::AutoModel::from_pretrained((root.parent_path() / "tiny/gpt2").string(), options);
        expect_matches(*session, tfx::test::read_json(root / "gpt2" / "golden" / "a2-runtime.json"),
                       merge ? "merged" : "runtime");
    }
    fs::remove_all(dir);
}

// An adapter on the LM head of a model whose head is tied to its embeddings: merged, it changes
// the one stored tensor, so the embeddings too (as merging into PEFT's shared parameter does),
// at load as in tfx merge-lora's folder; at run time it is refused (the model reads the head
// through the embedding table, not as a linear of its own).
TEST(LoraTiedHead, MergesIntoTheSharedTensor) {
    TFX_TEST_DATA_OR_SKIP(base, "models/tinystories-656k");
    const fs::path dir = fs::temp_directory_path() / "tfx-test-lora-tied-head";
    fs::remove_all(dir);
    fs::create_directories(dir);
    const int64_t rank = 4, vocab = 2048, hidden = 128;
    std::vector<float> a(static_cast<size_t>(rank * hidden)), b(static_cast<size_t>(vocab * rank));
    for (size_t i = 0; i < a.size(); ++i) a[i] = 0.05f * static_cast<float>(static_cast<int>(i % 7) - 3);
    for (size_t i = 0; i < b.size(); ++i) b[i] = 0.04f * static_cast<float>(static_cast<int>(i % 5) - 2);
    const auto bytes = [](const std::vector<float>& v) {
        return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float));
    };
    tfx::safetensors::write(
        dir / "adapter_model.safetensors",
        {{"base_model.model.lm_head.lora_A.weight", tfx::safetensors::DType::F32, {rank, hidden}, bytes(a)},
         {"base_model.model.lm_head.lora_B.weight", tfx::safetensors::DType::F32, {vocab, rank}, bytes(b)}},
        {{"format", "pt"}});
    std::ofstream(dir / "adapter_config.json")
        << R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["lm_head"], "bias": "none"})";

    tfx::ConvertOptions convert;
    convert.merge_lora = {{dir, "", 1.0f}};
    tfx::convert_checkpoint(base.string(), dir / "merged", convert);
    tfx::LoadOptions at_load;
    at_load.lora = {{dir, "", 1.0f}};
    at_load.merge_lora = true;
    auto merged = tfx::AutoModel::from_pretrained(base.string(), at_load);
    auto folder = tfx::AutoModel::from_pretrained((dir / "merged").string(), {});
    auto bare = tfx::AutoModel::from_pretrained(base.string(), {});
    const std::vector<int32_t> ids{1, 80, 147, 201, 282, 57};
    tfx::ForwardCall m(*merged), f(*folder), o(*bare);
    const auto lm = m.run({.ids = ids});
    const auto lf = f.run({.ids = ids});
    const auto lo = o.run({.ids = ids});
    EXPECT_EQ(std::vector<float>(lm.begin(), lm.end()), std::vector<float>(lf.begin(), lf.end()));
    EXPECT_GT(tfx::test::max_abs_diff(lm, lo), 1e-2f) << "the merge changed nothing";

    tfx::LoadOptions runtime;
    runtime.lora = {{dir, "", 1.0f}};
    const std::string message = tfx::test::error_of([&] { tfx::AutoModel::from_pretrained(base.string(), runtime); });
    EXPECT_NE(message.find("lm_head"), std::string::npos) << message;
    EXPECT_NE(message.find("--merge-lora"), std::string::npos) << message;
    fs::remove_all(dir);
}

// Adapters at run time on a quantized base (QLoRA-style serving): a GPTQ 8-bit tinystories runs
// a1 beside its int8 weights and lands within the quantized models' bound (0.5, the shared
// README's) of a1 on the checkpoint's dequantized twin; merging into it is refused.
TEST(LoraQuantizedBase, RunsBesideGptqWeights) {
    TFX_TEST_DATA_OR_SKIP(gptq, "quant/models/tinystories-656k-gptq-8bit-g128");
    TFX_TEST_DATA_OR_SKIP(adapters, "lora/tinystories-656k/adapters");
    const fs::path twin = gptq.string() + "-deq";
    const auto last_logits = [&](const fs::path& model, bool with_adapter) {
        tfx::LoadOptions options;
        if (with_adapter) options.lora = {{adapters / "a1", "a1", 1.0f}};
        auto session = tfx::AutoModel::from_pretrained(model.string(), options);
        tfx::ForwardCall call(*session);
        const auto row = call.run({.ids = std::vector<int32_t>{1, 80, 147, 201, 282, 57}});
        return std::vector<float>(row.begin(), row.end());
    };
    const auto quantized = last_logits(gptq, true);
    EXPECT_LT(tfx::test::max_abs_diff(quantized, last_logits(twin, true)), 0.5f);
    EXPECT_GT(tfx::test::max_abs_diff(quantized, last_logits(gptq, false)), 0.1f) << "the adapter changed nothing";
    tfx::LoadOptions merge;
    merge.lora = {{adapters / "a1", "a1", 1.0f}};
    merge.merge_lora = true;
    const std::string message = tfx::test::error_of([&] { tfx::AutoModel::from_pretrained(gptq.string(), merge); });
    EXPECT_NE(message.find("unquantized"), std::string::npos) << message;
}

// PEFT's modules_to_save: a module the adapter saves whole replaces the base's when merged (and
// is refused at run time, where it would apply to every row); its LoRA modules merge as usual.
TEST(LoraModulesToSave, ReplaceTheBaseModuleWhenMerged) {
    TFX_TEST_DATA_OR_SKIP(root, "lora");
    const fs::path shared = root.parent_path();
    const fs::path dir = fs::temp_directory_path() / "tfx-test-lora-modules-to-save";
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path a1 = root / "qwen2" / "adapters" / "a1";
    // a1 with the final norm saved whole (values that differ from the base's ones).
    const tfx::safetensors::File source(a1 / "adapter_model.safetensors");
    std::vector<tfx::safetensors::TensorToWrite> tensors;
    for (const auto& t : source.header().tensors) {
        tensors.push_back({t.name, t.dtype, t.shape, {source.data(t), t.end - t.begin}});
    }
    std::vector<float> norm(64);
    for (size_t i = 0; i < norm.size(); ++i) norm[i] = 0.5f + 0.01f * static_cast<float>(i);
    tensors.push_back({"base_model.model.model.norm.weight",
                       tfx::safetensors::DType::F32,
                       {64},
                       {reinterpret_cast<const uint8_t*>(norm.data()), norm.size() * sizeof(float)}});
    tfx::safetensors::write(dir / "adapter_model.safetensors", tensors, {{"format", "pt"}});
    auto config = tfx::test::read_json(a1 / "adapter_config.json");
    config["modules_to_save"] = {"norm"};
    std::ofstream(dir / "adapter_config.json") << config.dump();

    tfx::ConvertOptions options;
    options.merge_lora = {{dir, "", 1.0f}};
    tfx::convert_checkpoint((shared / "tiny/qwen2").string(), dir / "merged", options);
    options.merge_lora = {{a1, "", 1.0f}};
    tfx::convert_checkpoint((shared / "tiny/qwen2").string(), dir / "merged-a1", options);
    const auto with = tfx::safetensors::Checkpoint::open(dir / "merged");
    const auto without = tfx::safetensors::Checkpoint::open(dir / "merged-a1");
    for (const std::string& name : with.names()) {
        const auto w = *with.find(name);
        const auto o = *without.find(name);
        const std::span<const uint8_t> written(w.file->data(*w.info), w.info->end - w.info->begin);
        if (name == "model.norm.weight") {
            EXPECT_TRUE(std::equal(written.begin(), written.end(), reinterpret_cast<const uint8_t*>(norm.data())))
                << "the saved module did not replace the base's";
        } else {
            EXPECT_TRUE(std::equal(written.begin(), written.end(), o.file->data(*o.info))) << name;
        }
    }
    // Merged at load: the same model as the converted folder.
    tfx::LoadOptions merged;
    merged.lora = {{dir, "", 1.0f}};
    merged.merge_lora = true;
    auto at_load = tfx::AutoModel::from_pretrained((shared / "tiny/qwen2").string(), merged);
    auto from_folder = tfx::AutoModel::from_pretrained((dir / "merged").string(), {});
    const std::vector<int32_t> ids{1, 5, 9, 200, 17};
    tfx::ForwardCall a(*at_load), b(*from_folder);
    const auto la = a.run({.ids = ids});
    const auto lb = b.run({.ids = ids});
    EXPECT_EQ(std::vector<float>(la.begin(), la.end()), std::vector<float>(lb.begin(), lb.end()));
    // At run time it is refused, naming the setting.
    tfx::LoadOptions runtime;
    runtime.lora = {{dir, "", 1.0f}};
    const std::string message =
        tfx::test::error_of([&] { tfx::AutoModel::from_pretrained((shared / "tiny/qwen2").string(), runtime); });
    EXPECT_NE(message.find("modules_to_save"), std::string::npos) << message;
    fs::remove_all(dir);
}

TEST(ConvertCheckpoint, ACancelledConversionLeavesNothing) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    const fs::path parent = fs::temp_directory_path() / "tfx-test-convert-cancel";
    fs::remove_all(parent);
    fs::create_directories(parent);
    tfx::ConvertOptions options;
    options.max_shard_bytes = 200'000;  // several shards: the cancel comes after some were written
    int polls = 0;
    options.cancelled = [&] { return ++polls > 12; };
    const std::string message =
        tfx::test::error_of([&] { tfx::convert_checkpoint(model.string(), parent / "out", options); });
    EXPECT_NE(message.find("interrupted"), std::string::npos) << message;
    EXPECT_GT(polls, 12);
    EXPECT_TRUE(fs::is_empty(parent)) << "left: " << fs::directory_iterator(parent)->path();
    fs::remove_all(parent);
}

}  // namespace
