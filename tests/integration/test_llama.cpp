// The llama slice against the Hugging Face reference (../shared/golden): last-position logits
// within 1e-4, identical per-position argmax, identical greedy continuations; batches equal
// the unbatched runs; bad inputs give errors that name what is wrong.
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/error_of.h"
#include "../unit/test_data.h"
#include "backend_options.h"
#include "core/forward_call.h"
#include "core/generation.h"
#include "core/json_file.h"
#include "core/model_session.h"
#include "core/safetensors.h"
#include "registry/auto_model.h"

namespace fs = std::filesystem;

namespace {

constexpr float kTolerance = 1e-4f;

struct Golden {
    fs::path model;
    nlohmann::json data;
};

// Runs the model once without a cache; returns [tokens, output_size] rows.
std::vector<std::vector<float>> forward_all(tfx::ModelSession& s, const std::vector<int32_t>& ids) {
    tfx::ForwardCall call(s);
    call.run({.ids = ids, .output = tfx::SequenceInput::Output::all});
    std::vector<std::vector<float>> rows;
    for (int64_t i = 0; i < call.rows(); ++i) rows.emplace_back(call.row(i).begin(), call.row(i).end());
    return rows;
}

float max_abs_diff(const std::vector<float>& a, const nlohmann::json& b) {
    EXPECT_EQ(a.size(), b.size());
    float d = 0.0f;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::abs(a[i] - b[i].get<float>()));
    return d;
}

using tfx::test::error_of;

fs::path scratch(const std::string& name) {
    fs::path dir = fs::temp_directory_path() / (name + "-" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// A model and its golden, on a backend (backend_options.h).
struct GoldenCase {
    const char* model;
    const char* golden;
    const char* backend;
};
class LlamaGolden : public ::testing::TestWithParam<GoldenCase> {};

}  // namespace

TEST_P(LlamaGolden, MatchesReference) {
    TFX_TEST_DATA_OR_SKIP(model, GetParam().model);
    TFX_TEST_DATA_OR_SKIP(golden_path, GetParam().golden);
    std::ifstream in(golden_path);
    const nlohmann::json golden = nlohmann::json::parse(in);
    if (const std::string missing = tfx::test::backend_missing(GetParam().backend); !missing.empty())
        GTEST_SKIP() << missing;
    auto session = tfx::AutoModel::from_pretrained(model, tfx::test::backend_options(GetParam().backend));
    ASSERT_NE(session->plugin_summary().find(std::string(GetParam().backend) + " (backend)"), std::string::npos)
        << session->plugin_summary();
    tfx::GenerationConfig greedy;
    greedy.ignore_eos = true;
    for (const auto& prompt : golden["prompts"]) {
        const auto ids = prompt["input_ids"].get<std::vector<int32_t>>();
        SCOPED_TRACE(prompt.value("name", "prompt"));
        auto rows = forward_all(*session, ids);
        EXPECT_LE(max_abs_diff(rows.back(), prompt["last_logits"]), kTolerance);
        std::vector<int64_t> argmax;
        for (const auto& r : rows) argmax.push_back(std::max_element(r.begin(), r.end()) - r.begin());
        EXPECT_EQ(argmax, prompt["argmax_per_position"].get<std::vector<int64_t>>());

        greedy.max_new_tokens = prompt["greedy"]["max_new_tokens"].get<int64_t>();
        auto result = tfx::generate(*session, {ids}, greedy);
        EXPECT_EQ(result.new_tokens[0], prompt["greedy"]["new_tokens"].get<std::vector<int32_t>>());
    }
}

// All prompts of a golden as one ragged batch: greedy tokens identical to the reference.
TEST_P(LlamaGolden, BatchEqualsUnbatched) {
    TFX_TEST_DATA_OR_SKIP(model, GetParam().model);
    TFX_TEST_DATA_OR_SKIP(golden_path, GetParam().golden);
    std::ifstream in(golden_path);
    const nlohmann::json golden = nlohmann::json::parse(in);
    if (const std::string missing = tfx::test::backend_missing(GetParam().backend); !missing.empty())
        GTEST_SKIP() << missing;
    auto session = tfx::AutoModel::from_pretrained(model, tfx::test::backend_options(GetParam().backend));
    ASSERT_NE(session->plugin_summary().find(std::string(GetParam().backend) + " (backend)"), std::string::npos)
        << session->plugin_summary();
    std::vector<std::vector<int32_t>> prompts;
    for (const auto& p : golden["prompts"]) prompts.push_back(p["input_ids"].get<std::vector<int32_t>>());
    tfx::GenerationConfig greedy;
    greedy.ignore_eos = true;
    greedy.max_new_tokens = golden["prompts"][0]["greedy"]["max_new_tokens"].get<int64_t>();
    auto batched = tfx::generate(*session, prompts, greedy);
    for (size_t i = 0; i < prompts.size(); ++i) {
        const auto& reference = golden["prompts"][i]["greedy"];
        const auto expected = reference["new_tokens"].get<std::vector<int32_t>>();
        // A divergence is acceptable only at a near-tie of the reference's top two logits.
        for (size_t t = 0; t < expected.size(); ++t) {
            if (batched.new_tokens[i][t] == expected[t]) continue;
            EXPECT_LT(reference["step_top1_minus_top2"][t].get<float>(), kTolerance)
                << "sequence " << i << " step " << t;
            break;
        }
    }
}

std::vector<GoldenCase> golden_cases() {
    std::vector<GoldenCase> cases;
    for (const char* backend : {"cpu", "guarded", "torch", "cuda"}) {
        cases.push_back({"tiny/llama", "golden/tiny/llama.json", backend});
        cases.push_back({"tiny/llama3_tied", "golden/tiny/llama3_tied.json", backend});
        cases.push_back({"models/tinystories-656k", "golden/tinystories-656k.json", backend});
        cases.push_back({"models/tinystories-656k-bf16", "golden/tinystories-656k-bf16.json", backend});
    }
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Models, LlamaGolden, ::testing::ValuesIn(golden_cases()), [](const auto& case_info) {
    std::string name = case_info.param.model;
    for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return name + tfx::test::backend_suffix(case_info.param.backend);
});

TEST(LlamaSampling, SeededSamplingIsReproducibleAndRespectsTopK) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    tfx::GenerationConfig g;
    g.do_sample = true;
    g.temperature = 0.8f;
    g.top_k = 1;  // top-1 sampling must equal greedy decoding
    g.max_new_tokens = 12;
    g.ignore_eos = true;
    g.seed = 7;
    const std::vector<int32_t> prompt = {1, 80, 147, 201, 282, 57};
    auto top1 = tfx::generate(*session, {prompt}, g);
    tfx::GenerationConfig greedy = g;
    greedy.do_sample = false;
    EXPECT_EQ(top1.new_tokens, tfx::generate(*session, {prompt}, greedy).new_tokens);
    g.top_k = 0;
    g.top_p = 0.9f;
    auto a = tfx::generate(*session, {prompt}, g);
    auto b = tfx::generate(*session, {prompt}, g);
    EXPECT_EQ(a.new_tokens, b.new_tokens);
    g.seed = 8;
    g.temperature = 1.5f;
    EXPECT_NE(a.new_tokens, tfx::generate(*session, {prompt}, g).new_tokens);
}

TEST(LlamaGeneration, StopsAtEosUnlessIgnored) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto session = tfx::AutoModel::from_pretrained(model, {});
    const std::vector<int32_t> prompt = {1, 80, 147, 201, 282, 57};
    tfx::GenerationConfig g;
    g.max_new_tokens = 8;
    auto free_run = tfx::generate(*session, {prompt}, g);
    ASSERT_EQ(free_run.new_tokens[0].size(), 8u);
    g.eos_token_ids = {free_run.new_tokens[0][3]};  // pretend the 4th token ends the sequence
    auto stopped = tfx::generate(*session, {prompt}, g);
    EXPECT_EQ(stopped.new_tokens[0],
              std::vector<int32_t>(free_run.new_tokens[0].begin(), free_run.new_tokens[0].begin() + 4));
    g.ignore_eos = true;
    EXPECT_EQ(tfx::generate(*session, {prompt}, g).new_tokens, free_run.new_tokens);
    std::vector<int32_t> streamed;
    tfx::generate(*session, {prompt}, g, [&](size_t, int32_t t) { streamed.push_back(t); });
    EXPECT_EQ(streamed, free_run.new_tokens[0]);
}

TEST(LlamaErrors, BadInputsNameWhatIsWrong) {
    TFX_TEST_DATA_OR_SKIP(tiny, "tiny/llama");
    fs::path dir = scratch("tfx-bad-model");
    EXPECT_NE(error_of([&] { tfx::AutoModel::from_pretrained(dir, {}); }).find("no config.json"), std::string::npos);
    EXPECT_NE(error_of([&] { tfx::AutoModel::from_pretrained(dir / "absent", {}); }).find("no such local folder"),
              std::string::npos);

    auto config = nlohmann::json::parse(tfx::read_text_file(tiny / "config.json"));
    fs::copy_file(tiny / "model.safetensors", dir / "model.safetensors");
    auto write_config = [&](const nlohmann::json& c) {
        std::ofstream(dir / "config.json", std::ios::trunc) << c.dump();
    };

    auto missing_field = config;
    missing_field.erase("hidden_size");
    write_config(missing_field);
    EXPECT_NE(error_of([&] {
                  tfx::AutoModel::from_pretrained(dir, {});
              }).find("field 'hidden_size': required field is missing"),
              std::string::npos);

    auto unknown = config;
    unknown["model_type"] = "not_a_model";
    write_config(unknown);
    std::string e = error_of([&] { tfx::AutoModel::from_pretrained(dir, {}); });
    EXPECT_NE(e.find("'not_a_model' is not provided by any installed model plugin"), std::string::npos) << e;
    EXPECT_NE(e.find("llama"), std::string::npos) << e;

    auto wrong_shape = config;
    wrong_shape["intermediate_size"] = 100;
    write_config(wrong_shape);
    e = error_of([&] { tfx::AutoModel::from_pretrained(dir, {}); });
    EXPECT_NE(e.find("tensor 'model.layers.0.mlp.gate_proj.weight': expected shape [100, 64], found [176, 64]"),
              std::string::npos)
        << e;

    auto more_layers = config;
    more_layers["num_hidden_layers"] = 4;
    write_config(more_layers);
    e = error_of([&] { tfx::AutoModel::from_pretrained(dir, {}); });
    EXPECT_NE(e.find("tensor 'model.layers.3.input_layernorm.weight' not found"), std::string::npos) << e;

    write_config(config);
    auto session = tfx::AutoModel::from_pretrained(dir, {});
    e = error_of([&] { tfx::generate(*session, {{1, 384}}, {}); });
    EXPECT_NE(e.find("input id 384 is outside the vocabulary (size 384)"), std::string::npos) << e;
    e = error_of([&] { forward_all(*session, {1, -1}); });
    EXPECT_NE(e.find("input id -1 is outside the vocabulary"), std::string::npos) << e;
    fs::remove_all(dir);
}

TEST(LlamaInitModel, RandomWeightsRoundTripThroughTheModel) {
    TFX_TEST_DATA_OR_SKIP(tiny, "tiny/llama3_tied");
    auto specs = tfx::AutoModel::from_config(tiny / "config.json", {})->weight_specs();
    // Every tensor the reference saved is one the plugin declares, with the same shape.
    auto ckpt = tfx::safetensors::Checkpoint::open(tiny);
    EXPECT_EQ(specs.size(), ckpt.names().size());
    for (const auto& spec : specs) {
        auto entry = ckpt.find(spec["name"].get<std::string>());
        ASSERT_TRUE(entry) << spec["name"];
        EXPECT_EQ(entry->info->shape, spec["shape"].get<std::vector<int64_t>>());
    }
}
