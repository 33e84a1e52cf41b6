// The cache as a whole (list, remove, where it is) and the small pieces the client trusts:
// name validation and SHA-256.
#include <filesystem>
#include <string>

#include "registry/hub/names.h"
#include "registry/hub/sha256.h"
#include "tests/hub/hub_fixture.h"

namespace tfx::hub::testing {
namespace {

namespace fs = std::filesystem;

TEST_F(HubTest, CacheListsAndRemovesModels) {
    EXPECT_TRUE(list_cache().empty());
    download(kRepo);
    download(std::string(kRepo) + "@v1.0");

    const auto repos = list_cache();
    ASSERT_EQ(repos.size(), 1u);
    const CachedRepo& repo = repos[0];
    EXPECT_EQ(repo.repo_id, kRepo);
    EXPECT_EQ(repo.path, repo_root(kRepo));
    std::uint64_t blob_bytes = 0;
    for (const auto& entry : fs::directory_iterator(repo.path / "blobs")) blob_bytes += entry.file_size();
    EXPECT_GE(repo.size_on_disk, blob_bytes);
    EXPECT_LT(repo.size_on_disk, blob_bytes + 4096);  // blobs once, plus refs and markers
    ASSERT_EQ(repo.revisions.size(), 2u);
    for (const CachedRevision& revision : repo.revisions) {
        const bool is_main = revision.commit == main_commit_;
        EXPECT_EQ(revision.refs, std::vector<std::string>{is_main ? "main" : "v1.0"});
        EXPECT_EQ(revision.files, is_main ? 6u : 4u);
        EXPECT_EQ(revision.snapshot, repo.path / "snapshots" / revision.commit);
    }

    EXPECT_EQ(remove_from_cache(kRepo), repo.size_on_disk);
    EXPECT_FALSE(fs::exists(repo_root(kRepo)));
    EXPECT_FALSE(fs::exists(cache_ / ".locks" / "models--tfx-test--tinystories-656k"));
    EXPECT_TRUE(list_cache().empty());
    expect_hub_error([] { remove_from_cache(kRepo); }, ErrorKind::RepoNotFound, {kRepo, "not in the cache"});
    expect_hub_error([] { remove_from_cache("../.."); }, ErrorKind::InvalidArgument, {"../.."});
    EXPECT_TRUE(fs::exists(cache_));
}

TEST(HubEnvironment, CacheFolderFollowsHuggingfaceHubRules) {
    ScopedEnv env;
    for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"})
        env.set(name, std::nullopt);
    env.set("HOME", "/home/someone");
    EXPECT_EQ(hub_cache_dir(), fs::path("/home/someone/.cache/huggingface/hub"));
    env.set("XDG_CACHE_HOME", "/xdg");
    EXPECT_EQ(hub_cache_dir(), fs::path("/xdg/huggingface/hub"));
    env.set("HF_HOME", "~/hf");
    EXPECT_EQ(hub_cache_dir(), fs::path("/home/someone/hf/hub"));
    env.set("HUGGINGFACE_HUB_CACHE", "/legacy");
    EXPECT_EQ(hub_cache_dir(), fs::path("/legacy"));
    env.set("HF_HUB_CACHE", "/hub-cache");
    EXPECT_EQ(hub_cache_dir(), fs::path("/hub-cache"));
}

TEST(HubNames, RepoIdsFollowTheHubRules) {
    for (const char* good : {"gpt2", "org/name", "Org-1/model_name.v2", "a/b"})
        EXPECT_TRUE(is_valid_repo_id(good)) << good;
    for (const char* bad : {"", "/name", "org/", "a/b/c", "org--x/name", "org/na..me", "-org/name", "org/name-",
                            "org/na me", "../name", "org/name\\x"}) {
        EXPECT_FALSE(is_valid_repo_id(bad)) << bad;
    }
    EXPECT_EQ(repo_folder_name("org/name"), "models--org--name");
    EXPECT_EQ(repo_folder_name("gpt2"), "models--gpt2");

    const RepoRef pinned = parse_repo_ref("org/name@refs/pr/1", "");
    EXPECT_EQ(pinned.id, "org/name");
    EXPECT_EQ(pinned.revision, "refs/pr/1");
    EXPECT_EQ(parse_repo_ref("org/name", "").revision, "main");
    EXPECT_THROW(parse_repo_ref("org/name@../x", ""), HubError);
    EXPECT_THROW(parse_repo_ref("org/name@v1", "v2"), HubError);

    EXPECT_EQ(url_quote("refs/pr/1", false), "refs%2Fpr%2F1");
    EXPECT_EQ(url_quote("dir/a b.json", true), "dir/a%20b.json");
    EXPECT_TRUE(is_safe_etag("d7edf6bd2a681fb0175f7735299831ee1b22b812"));
    EXPECT_FALSE(is_safe_etag("../x"));
    EXPECT_FALSE(is_safe_etag(".hidden"));
    EXPECT_THROW(check_repo_file("a/../b", "test"), HubError);
    EXPECT_THROW(check_repo_file("/abs", "test"), HubError);
    EXPECT_NO_THROW(check_repo_file("sub/dir/model.safetensors", "test"));
}

TEST(HubSha256, MatchesKnownDigests) {
    auto digest = [](const std::string& text) {
        Sha256 hash;
        hash.update(text);
        return hash.hex_digest();
    };
    EXPECT_EQ(digest(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(digest(std::string(1'000'000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    // Fed in pieces that straddle blocks, as a resumed download is.
    Sha256 pieces;
    const std::string text(1000, 'x');
    for (std::size_t at = 0; at < text.size(); at += 37) pieces.update(text.substr(at, 37));
    EXPECT_EQ(pieces.hex_digest(), digest(text));
}

}  // namespace
}  // namespace tfx::hub::testing
