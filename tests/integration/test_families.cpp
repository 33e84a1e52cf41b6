// Every tiny reference model of ../shared/tiny against its Hugging Face golden: causal LMs
// (last-position logits within 1e-4, identical per-position argmax, identical greedy
// continuation), the base encoder (hidden states and pooler) and the sequence classifier.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/test_data.h"
#include "core/generation.h"
#include "core/model_session.h"
#include "registry/auto_model.h"

namespace {

constexpr float kTolerance = 1e-4f;

struct Outputs {
    std::vector<std::vector<float>> rows;
    std::vector<float> pooled;
};

Outputs forward(tfx::ModelSession& s, const std::vector<int32_t>& ids) {
    const tfx_model_info& info = s.info();
    const auto t = static_cast<int64_t>(ids.size());
    const int64_t rows = info.output_kind == TFX_OUTPUT_CLASS_LOGITS ? 1 : t;
    std::vector<float> out(static_cast<size_t>(rows * info.output_size));
    Outputs result;
    result.pooled.resize(static_cast<size_t>(info.hidden_size));
    std::vector<int64_t> positions(ids.size());
    for (int64_t i = 0; i < t; ++i) positions[i] = i;
    int64_t shape[3] = {1, rows, info.output_size};
    int64_t pooled_shape[2] = {1, info.hidden_size};
    tfx_tensor view{out.data(), {TFX_DEVICE_CPU, 0}, 3, {TFX_DTYPE_FLOAT, 32, 1}, shape, nullptr, 0};
    tfx_tensor pooled{result.pooled.data(), {TFX_DEVICE_CPU, 0}, 2, {TFX_DTYPE_FLOAT, 32, 1}, pooled_shape, nullptr, 0};
    tfx_forward_args args{};
    args.struct_size = sizeof(args);
    args.batch = 1;
    args.tokens = static_cast<int32_t>(t);
    args.input_ids = ids.data();
    args.positions = positions.data();
    args.output = &view;
    if (info.has_pooler) args.pooled_output = &pooled;
    s.forward(args);
    for (int64_t i = 0; i < rows; ++i) {
        result.rows.emplace_back(out.begin() + i * info.output_size, out.begin() + (i + 1) * info.output_size);
    }
    return result;
}

float max_abs_diff(const std::vector<float>& a, const nlohmann::json& b) {
    EXPECT_EQ(a.size(), b.size());
    float d = 0.0f;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::abs(a[i] - b[i].get<float>()));
    return d;
}

class Family : public ::testing::TestWithParam<const char*> {};

}  // namespace

TEST_P(Family, MatchesReference) {
    const std::string name = GetParam();
    TFX_TEST_DATA_OR_SKIP(model, "tiny/" + name);
    TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tiny/" + name + ".json");
    std::ifstream in(golden_path);
    const nlohmann::json golden = nlohmann::json::parse(in);
    auto session = tfx::AutoModel::from_pretrained(model, {});
    const std::string task = golden.value("task", "causal_lm");
    for (const auto& prompt : golden["prompts"]) {
        SCOPED_TRACE(prompt.value("name", "prompt"));
        const auto ids = prompt["input_ids"].get<std::vector<int32_t>>();
        Outputs out = forward(*session, ids);
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
        EXPECT_LE(max_abs_diff(out.rows.back(), prompt["last_logits"]), kTolerance);
        std::vector<int64_t> argmax;
        for (const auto& r : out.rows) argmax.push_back(std::max_element(r.begin(), r.end()) - r.begin());
        EXPECT_EQ(argmax, prompt["argmax_per_position"].get<std::vector<int64_t>>());
        tfx::GenerationConfig greedy;
        greedy.ignore_eos = true;
        greedy.max_new_tokens = prompt["greedy"]["max_new_tokens"].get<int64_t>();
        EXPECT_EQ(tfx::generate(*session, {ids}, greedy).new_tokens[0],
                  prompt["greedy"]["new_tokens"].get<std::vector<int32_t>>());
    }
}

INSTANTIATE_TEST_SUITE_P(Tiny, Family,
                         ::testing::Values("llama", "llama3_tied", "qwen2", "qwen3", "qwen3_moe", "mistral", "gemma",
                                           "gemma2", "gemma3", "phi3", "gpt2", "gpt_neox", "bert", "bert_cls"),
                         [](const auto& param_info) { return std::string(param_info.param); });
