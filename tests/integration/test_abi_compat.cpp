// A plugin built against the frozen ABI 1.0 headers loads on this (newer minor) host and
// gives the same results as the host's own eager attention.
#include <gtest/gtest.h>

#include "../unit/test_data.h"
#include "core/generation.h"
#include "core/model_session.h"
#include "core/plugin_catalogue.h"
#include "registry/auto_model.h"

TEST(AbiCompatibility, OlderMinorPluginLoadsAndWorks) {
    tfx::PluginCatalogue catalogue({TFX_ABI_FIXTURE_DIR});
    ASSERT_EQ(catalogue.records().size(), 1u);
    tfx::PluginRecord record = catalogue.records()[0];
    EXPECT_EQ(record.abi_major, 1);
    EXPECT_EQ(record.abi_minor, 0);
    tfx::probe_in_process(record, true);
    EXPECT_EQ(record.status, tfx::PluginStatus::ok) << record.reason;
    EXPECT_LT(record.abi_minor, TFX_ABI_MINOR);

    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    tfx::LoadOptions old_plugin;
    old_plugin.plugin_paths = {TFX_ABI_FIXTURE_DIR};
    old_plugin.attn_implementation = "abi-1.0-naive";
    auto session_old = tfx::AutoModel::from_pretrained(model, old_plugin);
    auto session_new = tfx::AutoModel::from_pretrained(model, {});
    EXPECT_NE(session_old->plugin_summary().find("abi-1.0-naive"), std::string::npos);
    tfx::GenerationConfig greedy;
    greedy.max_new_tokens = 24;
    greedy.ignore_eos = true;
    const std::vector<int32_t> prompt = {1, 80, 147, 201, 282, 57};
    EXPECT_EQ(tfx::generate(*session_old, {prompt}, greedy).new_tokens,
              tfx::generate(*session_new, {prompt}, greedy).new_tokens);
}
