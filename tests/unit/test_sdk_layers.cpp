// The SDK's model plumbing against a minimal host: the task head the host names, and the
// weight table's describe mode (what weight_specs and tfx init-model read).
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "error_of.h"
#include "tfx/sdk/layers.hpp"

namespace {

// A host with a config and options only: enough for everything that does not compute.
struct MiniHost {
    std::map<std::string, std::string> options;
    tfx_host_services services{};

    MiniHost() {
        services.struct_size = sizeof(services);
        services.host = this;
        services.config_json = [](void*) { return "{\"model_type\": \"x\"}"; };
        services.option = [](void* self, const char* key) -> const char* {
            auto& opts = static_cast<MiniHost*>(self)->options;
            auto it = opts.find(key);
            return it == opts.end() ? nullptr : it->second.c_str();
        };
        services.has_weight = [](void*, const char*) -> int32_t { return 0; };
    }
};

using tfx::test::error_of;

}  // namespace

TEST(SdkLayers, TaskHeadComesFromTheHostAndIsChecked) {
    MiniHost mini;
    tfx::sdk::Host host(&mini.services);
    EXPECT_EQ(error_of([&] { host.task_head({"causal_lm"}); }), "the host did not name a task head");
    mini.options["task_head"] = "base";
    EXPECT_EQ(host.task_head({"causal_lm", "base"}), "base");
    mini.options["task_head"] = "masked_lm";
    EXPECT_EQ(error_of([&] {
                  host.task_head({"causal_lm", "base"});
              }),
              "unsupported task head 'masked_lm' (causal_lm, base)");
}

// A linear's weight is marked "linear" (tfx quantize quantizes those).
TEST(SdkLayers, DescribingRecordsEachTensorOnceWithItsInit) {
    MiniHost mini;
    tfx::sdk::Host host(&mini.services);
    tfx::sdk::WeightTable w(host, tfx::sdk::WeightTable::Mode::describe);
    EXPECT_TRUE(w.describing());
    EXPECT_EQ(w.prefix("model.", "norm.weight", true), "model.");
    EXPECT_EQ(w.prefix("model.", "norm.weight", false), "");
    const tfx::sdk::View embed = w.tensor_or("model.embed_tokens.weight", "lm_head.weight", {10, 4});
    EXPECT_EQ(embed.dim(0), 10);
    w.f32("model.norm.weight", {4});
    const tfx::sdk::Linear q = w.linear("model.q_proj", 8, 4, true);
    EXPECT_FALSE(q) << "describing packs nothing";

    std::string text;
    w.write_specs({&text, [](void* ctx, const void* data, size_t n) {
                       static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), n);
                   }});
    const auto specs = nlohmann::json::parse(text);
    ASSERT_EQ(specs.size(), 4u);
    EXPECT_EQ(specs[0],
              (nlohmann::json{{"name", "model.embed_tokens.weight"}, {"shape", {10, 4}}, {"init", "normal"}}));
    EXPECT_EQ(specs[1], (nlohmann::json{{"name", "model.norm.weight"}, {"shape", {4}}, {"init", "ones"}}));
    EXPECT_EQ(specs[2], (nlohmann::json{
                            {"name", "model.q_proj.weight"}, {"shape", {8, 4}}, {"init", "normal"}, {"linear", true}}));
    EXPECT_EQ(specs[3], (nlohmann::json{{"name", "model.q_proj.bias"}, {"shape", {8}}, {"init", "zeros"}}));
}

TEST(SdkLayers, ActivationNamesFollowTransformers) {
    auto c = tfx::sdk::Config::parse(R"({"hidden_act": "gelu_pytorch_tanh", "other": "mish"})", "config.json");
    EXPECT_EQ(tfx::sdk::activation_from(c), TFX_ACT_GELU_TANH);
    EXPECT_NE(
        error_of([&] { tfx::sdk::activation_from(c, "other"); }).find("field 'other': unsupported activation 'mish'"),
        std::string::npos);
}

TEST(SdkLayers, LabelCountIsId2labelsSizeElseNumLabelsElseTwo) {
    using tfx::sdk::Config;
    using tfx::sdk::label_count;
    EXPECT_EQ(label_count(Config::parse(R"({"id2label": {"0": "a", "1": "b", "2": "c"}, "num_labels": 7})", "c")), 3);
    EXPECT_EQ(label_count(Config::parse(R"({"num_labels": 7})", "c")), 7);
    EXPECT_EQ(label_count(Config::parse(R"({})", "c")), 2);
    EXPECT_NE(error_of([] {
                  label_count(Config::parse(R"({"id2label": "a"})", "c"));
              }).find("field 'id2label': expected an object"),
              std::string::npos);
    EXPECT_NE(error_of([] { label_count(Config::parse(R"({"id2label": {}})", "c")); }).find("at least one label"),
              std::string::npos);
    EXPECT_NE(error_of([] {
                  label_count(Config::parse(R"({"num_labels": 0})", "c"));
              }).find("field 'num_labels': a classifier needs at least one label"),
              std::string::npos);
}
