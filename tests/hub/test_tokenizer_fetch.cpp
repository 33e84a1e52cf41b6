// A tokenizer opened by Hub id through the C host API (as Python's AutoTokenizer does) fetches
// the tokenizer and config files only, never the weights.
#include <filesystem>

#include "tests/hub/hub_fixture.h"
#include "tfx/host_api.h"

namespace tfx::hub::testing {
namespace {

namespace fs = std::filesystem;

TEST_F(HubTest, ATokenizerByHubIdFetchesNoWeights) {
    tfx_api_tokenizer* tokenizer = nullptr;
    tfx_error error{};
    ASSERT_EQ(tfx_api_open_tokenizer(kRepo, nullptr, &tokenizer, &error), TFX_OK) << error.message;
    tfx_api_close_tokenizer(tokenizer);
    const fs::path snapshot = repo_root(kRepo) / "snapshots" / main_commit_;
    EXPECT_TRUE(fs::exists(snapshot / "tokenizer.json"));
    EXPECT_TRUE(fs::exists(snapshot / "tokenizer_config.json"));
    EXPECT_FALSE(fs::exists(snapshot / "model.safetensors"));
    EXPECT_EQ(hub_->cdn_gets(sha256_hex(model_file("model.safetensors"))), 0u);
}

}  // namespace
}  // namespace tfx::hub::testing
