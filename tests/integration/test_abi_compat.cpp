// ABI compatibility: a plugin built against the frozen ABI 2.0 headers loads on this host (any
// 2.x) and gives the same results as the host's own eager attention; a plugin of the previous
// major (1.0) is refused before it is loaded, with both versions named.
#include <gtest/gtest.h>

#include "../unit/test_data.h"
#include "core/forward_call.h"
#include "core/generation.h"
#include "core/model_session.h"
#include "core/plugin_catalogue.h"
#include "registry/auto_model.h"

TEST(AbiCompatibility, SameMajorPluginLoadsAndWorks) {
    tfx::PluginCatalogue catalogue({TFX_ABI_FIXTURE_DIR});
    ASSERT_EQ(catalogue.records().size(), 1u);
    tfx::PluginRecord record = catalogue.records()[0];
    EXPECT_EQ(record.abi_major, TFX_ABI_MAJOR);
    EXPECT_EQ(record.abi_minor, 0);
    tfx::probe_in_process(record, true);
    EXPECT_EQ(record.status, tfx::PluginStatus::ok) << record.reason;
    EXPECT_LE(record.abi_minor, TFX_ABI_MINOR);

    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    tfx::LoadOptions frozen;
    frozen.plugin_paths = {TFX_ABI_FIXTURE_DIR};
    frozen.attn_implementation = "abi-2.0-naive";
    auto session_frozen = tfx::AutoModel::from_pretrained(model, frozen);
    auto session_new = tfx::AutoModel::from_pretrained(model, {});
    EXPECT_NE(session_frozen->plugin_summary().find("abi-2.0-naive"), std::string::npos);
    tfx::GenerationConfig greedy;
    greedy.max_new_tokens = 24;
    greedy.ignore_eos = true;
    const std::vector<std::vector<int32_t>> prompts = {{1, 80, 147, 201, 282, 57}, {1, 80}, {1, 300, 12, 7}};
    EXPECT_EQ(tfx::generate(*session_frozen, prompts, greedy).new_tokens,
              tfx::generate(*session_new, prompts, greedy).new_tokens);
}

TEST(AbiCompatibility, PreviousMajorPluginIsRefusedNamingBothVersions) {
    tfx::PluginCatalogue catalogue({TFX_ABI1_FIXTURE_DIR});
    ASSERT_EQ(catalogue.records().size(), 1u);
    const tfx::PluginRecord& record = catalogue.records()[0];
    EXPECT_EQ(record.abi_major, 1);
    EXPECT_EQ(record.status, tfx::PluginStatus::abi_mismatch);
    EXPECT_NE(record.reason.find("built for tfx ABI 1.0"), std::string::npos) << record.reason;
    EXPECT_NE(record.reason.find("this host speaks ABI " + std::to_string(TFX_ABI_MAJOR) + "."), std::string::npos)
        << record.reason;

    // Asked for by name, it is not loaded: the error names both versions.
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    tfx::LoadOptions old;
    old.plugin_paths = {TFX_ABI1_FIXTURE_DIR};
    old.attn_implementation = "abi-1.0-naive";
    try {
        tfx::AutoModel::from_pretrained(model, old);
        ADD_FAILURE() << "an ABI 1 plugin was used";
    } catch (const std::exception& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("1.0"), std::string::npos) << message;
        EXPECT_NE(message.find(std::to_string(TFX_ABI_MAJOR) + "." + std::to_string(TFX_ABI_MINOR)), std::string::npos)
            << message;
    }
}

// ModernBERT's local attention needs a window ahead (ABI 2.3). An ABI 2.0 attention plugin reads
// that field as reserved and would attend past the window: the host refuses the call, naming
// the plugin and both versions, instead of returning wrong output.
TEST(AbiCompatibility, WindowAheadIsRefusedToAnOlderAttentionPlugin) {
    TFX_TEST_DATA_OR_SKIP(model, "tiny/modernbert");
    tfx::LoadOptions frozen;
    frozen.plugin_paths = {TFX_ABI_FIXTURE_DIR};
    frozen.attn_implementation = "abi-2.0-naive";
    auto session = tfx::AutoModel::from_pretrained(model, frozen);
    tfx::ForwardCall call(*session);
    const std::vector<int32_t> ids = {1, 45, 80, 147, 201, 282, 57, 33, 12, 2};
    try {
        call.run({.ids = ids, .output = tfx::SequenceInput::Output::all});
        FAIL() << "expected the 2.0 attention plugin to be refused";
    } catch (const std::exception& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("abi-2.0-naive"), std::string::npos) << message;
        EXPECT_NE(message.find("ABI 2.0"), std::string::npos) << message;
        EXPECT_NE(message.find("window ahead (2.3)"), std::string::npos) << message;
    }
}
