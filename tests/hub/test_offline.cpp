// Offline mode (HF_HUB_OFFLINE or the option): the cache only, never a request; and a cache
// laid out by hand the way Python's huggingface_hub writes it.
#include <filesystem>
#include <fstream>

#include "tests/hub/hub_fixture.h"

namespace tfx::hub::testing {
namespace {

namespace fs = std::filesystem;

TEST_F(HubTest, OfflineUsesTheCacheWithoutARequest) {
    const DownloadResult online = download(kRepo);
    const std::size_t requests = hub_->request_count();

    HubOptions offline;
    offline.offline = true;
    offline.check_for_updates = true;  // offline wins
    const DownloadResult cached = download(kRepo, offline);
    EXPECT_EQ(cached.snapshot, online.snapshot);
    EXPECT_EQ(cached.files.size(), online.files.size());
    EXPECT_FALSE(cached.used_network);

    env_.set("HF_HUB_OFFLINE", "1");
    EXPECT_EQ(resolve_model(kRepo), online.snapshot);
    EXPECT_EQ(hub_->request_count(), requests);
}

TEST_F(HubTest, OfflineWithoutTheModelNamesTheFileAndTheMode) {
    env_.set("HF_HUB_OFFLINE", "true");
    expect_hub_error([] { resolve_model(kRepo); }, ErrorKind::Offline, {"offline mode is on", "config.json", kRepo});
    EXPECT_EQ(hub_->request_count(), 0u);
}

TEST_F(HubTest, OfflineWithAPartialCacheNamesTheMissingFile) {
    const DownloadResult online = download(kRepo);
    fs::remove(online.snapshot / "model.safetensors");
    HubOptions offline;
    offline.offline = true;
    expect_hub_error([&] { download(kRepo, offline); }, ErrorKind::Offline,
                     {"offline mode is on", "model.safetensors", "lacks"});
}

TEST_F(HubTest, FindsACacheWrittenInThePythonLayout) {
    // What huggingface_hub leaves after hf_hub_download of three files: blobs named by ETag,
    // relative links, refs/main; no .no_exist for files it was never asked about.
    const std::string commit = "0123456789abcdef0123456789abcdef01234567";
    const fs::path root = cache_ / "models--someone--tiny-llama";
    for (const char* file : {"config.json", "model.safetensors", "tokenizer.json"}) {
        const std::string bytes = model_file(file);
        const std::string etag =
            std::string(file).ends_with(".safetensors") ? sha256_hex(bytes) : small_file_etag(bytes);
        fs::create_directories(root / "blobs");
        fs::create_directories(root / "snapshots" / commit);
        std::ofstream(root / "blobs" / etag, std::ios::binary) << bytes;
        fs::create_symlink(fs::path("../../blobs") / etag, root / "snapshots" / commit / file);
    }
    fs::create_directories(root / "refs");
    std::ofstream(root / "refs" / "main") << commit;

    env_.set("HF_HUB_OFFLINE", "1");
    EXPECT_EQ(resolve_model("someone/tiny-llama"), root / "snapshots" / commit);
    const DownloadResult result = download("someone/tiny-llama");
    EXPECT_EQ(result.commit, commit);
    EXPECT_EQ(result.files, (std::vector<std::string>{"config.json", "model.safetensors", "tokenizer.json"}));
    EXPECT_EQ(result.absent.size(), 3u);  // generation_config, tokenizer_config, special_tokens_map

    const auto repos = list_cache();
    ASSERT_EQ(repos.size(), 1u);
    EXPECT_EQ(repos[0].repo_id, "someone/tiny-llama");
    ASSERT_EQ(repos[0].revisions.size(), 1u);
    EXPECT_EQ(repos[0].revisions[0].refs, std::vector<std::string>{"main"});
    EXPECT_EQ(repos[0].revisions[0].files, 3u);
    EXPECT_EQ(hub_->request_count(), 0u);
}

}  // namespace
}  // namespace tfx::hub::testing
