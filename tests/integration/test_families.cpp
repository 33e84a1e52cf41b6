// Every tiny reference model of ../shared/tiny against its Hugging Face golden: causal LMs
// (last-position logits within 1e-4, identical per-position argmax, identical greedy
// continuation), masked LMs (the same, without generation), the base encoder (hidden states and
// pooler), the sequence and token classifiers and question answering (start and end logits).
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/test_data.h"
#include "backend_options.h"
#include "core/forward_call.h"
#include "core/generation.h"
#include "core/model_session.h"
#include "registry/auto_model.h"

namespace {

constexpr float kTolerance = 1e-4f;

struct Outputs {
    std::vector<std::vector<float>> rows;
    std::vector<float> pooled;
};

Outputs forward(tfx::ModelSession& s, const std::vector<int32_t>& ids, const std::vector<int32_t>& token_types = {}) {
    tfx::ForwardCall call(s);
    call.run({.ids = ids, .token_type_ids = token_types, .output = tfx::SequenceInput::Output::all});
    Outputs result;
    for (int64_t i = 0; i < call.rows(); ++i) {
        const auto row = call.row(i);
        result.rows.emplace_back(row.begin(), row.end());
    }
    result.pooled.assign(call.pooled().begin(), call.pooled().end());
    return result;
}

float max_abs_diff(const std::vector<float>& a, const nlohmann::json& b) {
    EXPECT_EQ(a.size(), b.size());
    float d = 0.0f;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::abs(a[i] - b[i].get<float>()));
    return d;
}

// A family's tiny model on a backend: the cpu backend, the guarded test backend whose memory
// nothing but its own ops may touch, and the torch backend (every family's goldens run on each).
class Family : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

}  // namespace

TEST_P(Family, MatchesReference) {
    const auto [family, backend] = GetParam();
    const std::string name = family;
    if (const std::string missing = tfx::test::backend_missing(backend); !missing.empty()) GTEST_SKIP() << missing;
    TFX_TEST_DATA_OR_SKIP(model, "tiny/" + name);
    TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tiny/" + name + ".json");
    std::ifstream in(golden_path);
    const nlohmann::json golden = nlohmann::json::parse(in);
    auto session = tfx::AutoModel::from_pretrained(model, tfx::test::backend_options(backend));
    ASSERT_NE(session->plugin_summary().find(std::string(backend) + " (backend)"), std::string::npos)
        << session->plugin_summary();
    const std::string task = golden.value("task", "causal_lm");
    for (const auto& prompt : golden["prompts"]) {
        SCOPED_TRACE(prompt.value("name", "prompt"));
        const auto ids = prompt["input_ids"].get<std::vector<int32_t>>();
        const auto token_types = prompt.value("token_type_ids", std::vector<int32_t>{});
        Outputs out = forward(*session, ids, token_types);
        if (task == "encoder") {
            ASSERT_EQ(out.rows.size(), prompt["last_hidden_state"].size());
            for (size_t t = 0; t < out.rows.size(); ++t)
                EXPECT_LE(max_abs_diff(out.rows[t], prompt["last_hidden_state"][t]), kTolerance);
            EXPECT_LE(max_abs_diff(out.pooled, prompt["pooler_output"]), kTolerance);
            continue;
        }
        if (task == "seq_cls") {
            EXPECT_LE(max_abs_diff(out.rows[0], prompt["logits"]), kTolerance);
            continue;
        }
        if (task == "qa") {  // per token: (start, end) logits
            ASSERT_EQ(out.rows.size(), prompt["start_logits"].size());
            std::vector<float> start, end;
            for (const auto& r : out.rows) start.push_back(r[0]), end.push_back(r[1]);
            EXPECT_LE(max_abs_diff(start, prompt["start_logits"]), kTolerance);
            EXPECT_LE(max_abs_diff(end, prompt["end_logits"]), kTolerance);
            continue;
        }
        std::vector<int64_t> argmax;
        for (const auto& r : out.rows) argmax.push_back(std::max_element(r.begin(), r.end()) - r.begin());
        if (task == "token_cls") {  // per token: the labels' logits
            ASSERT_EQ(out.rows.size(), prompt["logits"].size());
            for (size_t t = 0; t < out.rows.size(); ++t)
                EXPECT_LE(max_abs_diff(out.rows[t], prompt["logits"][t]), kTolerance) << "token " << t;
            EXPECT_EQ(argmax, prompt["argmax_per_position"].get<std::vector<int64_t>>());
            continue;
        }
        if (task == "masked_lm") {  // every position's vocabulary logits; no generation
            EXPECT_LE(max_abs_diff(out.rows.back(), prompt["last_logits"]), kTolerance);
            EXPECT_EQ(argmax, prompt["argmax_per_position"].get<std::vector<int64_t>>());
            continue;
        }
        EXPECT_LE(max_abs_diff(out.rows.back(), prompt["last_logits"]), kTolerance);
        EXPECT_EQ(argmax, prompt["argmax_per_position"].get<std::vector<int64_t>>());
        tfx::GenerationConfig greedy;
        greedy.ignore_eos = true;
        greedy.max_new_tokens = prompt["greedy"]["max_new_tokens"].get<int64_t>();
        EXPECT_EQ(tfx::generate(*session, {ids}, greedy).new_tokens[0],
                  prompt["greedy"]["new_tokens"].get<std::vector<int32_t>>());
    }
}

INSTANTIATE_TEST_SUITE_P(Tiny, Family,
                         ::testing::Combine(::testing::Values("llama", "llama3_tied", "qwen2", "qwen3", "qwen3_moe",
                                                              "mistral", "gemma", "gemma2", "gemma3", "granite", "phi3",
                                                              "starcoder2", "olmo2", "mixtral", "deepseek_v3",
                                                              "qwen2_moe", "phi", "cohere", "gpt2", "gpt_neox", "bert",
                                                              "bert_cls", "bert_token_cls", "bert_qa", "roberta",
                                                              "modernbert", "xlm_roberta", "deberta_v2"),
                                            ::testing::Values("cpu", "guarded", "torch", "cuda")),
                         [](const auto& case_info) {
                             return std::string(std::get<0>(case_info.param)) +
                                    tfx::test::backend_suffix(std::get<1>(case_info.param));
                         });

namespace {

bool torch_backend_loaded() {
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);) {
        if (line.find("libtfx-backend-torch.so") != std::string::npos) return true;
    }
    return false;
}

}  // namespace

// The torch backend promises at most score 50 in its manifest, below the cpu backend's 100: a run
// that does not name it never loads libtorch (0.7 s and hundreds of MB of libraries).
TEST(BackendChoice, ABackendThatCannotWinIsNotLoaded) {
    if (const std::string missing = tfx::test::backend_missing("torch"); !missing.empty()) GTEST_SKIP() << missing;
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto automatic = tfx::AutoModel::from_pretrained(model, {});
    EXPECT_NE(automatic->plugin_summary().find("cpu (backend)"), std::string::npos) << automatic->plugin_summary();
    EXPECT_FALSE(torch_backend_loaded()) << "--device auto loaded the torch backend";
    auto torch = tfx::AutoModel::from_pretrained(model, tfx::test::backend_options("torch"));
    EXPECT_TRUE(torch_backend_loaded());
}
