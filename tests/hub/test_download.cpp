// Downloads from the fake Hub into a fresh cache: the exact huggingface_hub layout, revision
// pins, sharded checkpoints, tokens and redirects, and a second run without requests.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "tests/hub/hub_fixture.h"

namespace tfx::hub::testing {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kAllFiles = {"config.json",       "generation_config.json",
                                            "model.safetensors", "special_tokens_map.json",
                                            "tokenizer.json",    "tokenizer_config.json"};

std::string etag_of(const std::string& file, const std::string& bytes) {
    return file.ends_with(".safetensors") ? sha256_hex(bytes) : small_file_etag(bytes);
}

std::vector<std::string> sorted(std::vector<std::string> items) {
    std::sort(items.begin(), items.end());
    return items;
}

std::vector<std::string> folder_entries(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
    return sorted(names);
}

TEST_F(HubTest, FirstDownloadWritesTheHuggingfaceHubLayout) {
    const DownloadResult result = download(kRepo);
    const fs::path root = repo_root(kRepo);
    EXPECT_EQ(result.commit, main_commit_);
    EXPECT_EQ(result.revision, "main");
    EXPECT_EQ(result.snapshot, root / "snapshots" / main_commit_);
    EXPECT_EQ(read_file((root / "refs" / "main").string()),
              main_commit_);  // no newline, as Python writes it
    EXPECT_EQ(sorted(result.files), kAllFiles);
    EXPECT_TRUE(result.absent.empty());
    EXPECT_TRUE(result.used_network);

    std::uint64_t total = 0;
    std::vector<std::string> blobs;
    for (const std::string& file : kAllFiles) {
        const std::string bytes = model_file(file);
        const std::string etag = etag_of(file, bytes);
        const fs::path link = result.snapshot / file;
        ASSERT_TRUE(fs::is_symlink(link)) << file;
        EXPECT_EQ(fs::read_symlink(link), fs::path("../../blobs") / etag) << file;
        EXPECT_EQ(read_file(link.string()), bytes) << file;
        EXPECT_FALSE(fs::is_symlink(root / "blobs" / etag)) << file;
        blobs.push_back(etag);
        total += bytes.size();
    }
    EXPECT_EQ(folder_entries(root / "blobs"), sorted(blobs));  // nothing else: no .incomplete
    EXPECT_EQ(result.bytes_downloaded, total);
    EXPECT_FALSE(fs::exists(root / ".no_exist"));
    // Lock files where huggingface_hub takes its locks, so both tools wait for each other.
    EXPECT_TRUE(fs::exists(cache_ / ".locks" / "models--tfx-test--tinystories-656k" /
                           (sha256_hex(model_file("model.safetensors")) + ".lock")));
}

TEST_F(HubTest, SecondRunStartsWithoutARequest) {
    const DownloadResult first = download(kRepo);
    const std::size_t requests = hub_->request_count();
    ASSERT_GT(requests, 0u);

    EXPECT_EQ(resolve_model(kRepo), first.snapshot);
    const DownloadResult second = download(kRepo);
    EXPECT_EQ(hub_->request_count(), requests);
    EXPECT_FALSE(second.used_network);
    EXPECT_EQ(second.bytes_downloaded, 0u);
    EXPECT_EQ(sorted(second.files), kAllFiles);

    // Asked to check for updates, it asks the Hub again but downloads nothing.
    HubOptions options;
    options.check_for_updates = true;
    const DownloadResult third = download(kRepo, options);
    EXPECT_GT(hub_->request_count(), requests);
    EXPECT_EQ(third.bytes_downloaded, 0u);
    EXPECT_EQ(hub_->cdn_gets(sha256_hex(model_file("model.safetensors"))), 1u);
}

TEST_F(HubTest, LocalFolderIsUsedAsIs) {
    EXPECT_EQ(resolve_model(model_dir_.string()), model_dir_);
    EXPECT_EQ(hub_->request_count(), 0u);
    expect_hub_error([] { resolve_model("/no/such/model/folder"); }, ErrorKind::InvalidArgument,
                     {"/no/such/model/folder"});
    expect_hub_error([] { resolve_model("not a repo id"); }, ErrorKind::InvalidArgument, {"not a repo id", "folder"});
}

TEST_F(HubTest, RevisionPinnedByTagAndByCommit) {
    const fs::path root = repo_root(kRepo);
    const DownloadResult v1 = download(std::string(kRepo) + "@v1.0");
    EXPECT_EQ(v1.commit, v1_commit_);
    EXPECT_EQ(v1.revision, "v1.0");
    EXPECT_EQ(read_file((root / "refs" / "v1.0").string()), v1_commit_);
    EXPECT_FALSE(fs::exists(root / "refs" / "main"));
    // Files this commit lacks are remembered in .no_exist, as huggingface_hub does.
    EXPECT_EQ(sorted(v1.absent), (std::vector<std::string>{"special_tokens_map.json", "tokenizer_config.json"}));
    for (const char* file : {"special_tokens_map.json", "tokenizer_config.json"}) {
        EXPECT_FALSE(fs::exists(v1.snapshot / file));
        EXPECT_TRUE(fs::is_regular_file(root / ".no_exist" / v1_commit_ / file)) << file;
    }

    // main shares the weights' blob: linked, not downloaded again.
    const DownloadResult main = download(kRepo);
    EXPECT_EQ(main.commit, main_commit_);
    EXPECT_EQ(fs::read_symlink(main.snapshot / "model.safetensors"),
              fs::read_symlink(v1.snapshot / "model.safetensors"));
    EXPECT_EQ(hub_->cdn_gets(sha256_hex(model_file("model.safetensors"))), 1u);

    // A commit needs no ref and, once cached, no request.
    const std::size_t requests = hub_->request_count();
    HubOptions by_commit;
    by_commit.revision = v1_commit_;
    EXPECT_EQ(download(kRepo, by_commit).snapshot, v1.snapshot);
    EXPECT_EQ(hub_->request_count(), requests);
    EXPECT_FALSE(fs::exists(root / "refs" / v1_commit_));

    expect_hub_error([&] { download(std::string(kRepo) + "@v1.0", by_commit); }, ErrorKind::InvalidArgument,
                     {"v1.0", v1_commit_});
}

TEST_F(HubTest, ShardedCheckpointFetchesTheIndexThenItsShards) {
    const DownloadResult result = download(kSharded);
    const auto shards = split_checkpoint(model_file("model.safetensors"));
    for (const auto& [name, bytes] : shards) {
        ASSERT_TRUE(fs::is_symlink(result.snapshot / name)) << name;
        EXPECT_EQ(read_file((result.snapshot / name).string()), bytes) << name;
        EXPECT_NE(std::find(result.files.begin(), result.files.end(), name), result.files.end()) << name;
    }
    EXPECT_TRUE(fs::exists(repo_root(kSharded) / ".no_exist" / main_commit_ / "model.safetensors"));
    EXPECT_FALSE(fs::exists(result.snapshot / "model.safetensors"));

    // The index is asked for before any shard.
    const auto log = hub_->log();
    auto position = [&](const std::string& suffix) {
        return std::find_if(log.begin(), log.end(),
                            [&](const FakeHub::Logged& l) { return l.target.ends_with(suffix); }) -
               log.begin();
    };
    EXPECT_LT(position("model.safetensors.index.json"), position("model-00001-of-00002.safetensors"));

    const std::size_t requests = hub_->request_count();
    EXPECT_EQ(resolve_model(kSharded), result.snapshot);
    EXPECT_EQ(hub_->request_count(), requests);
}

TEST_F(HubTest, IncludeAndExcludeFilterTheFiles) {
    HubOptions options;
    options.exclude = {"*.safetensors"};
    const DownloadResult no_weights = download(kRepo, options);
    EXPECT_FALSE(fs::exists(no_weights.snapshot / "model.safetensors"));
    EXPECT_TRUE(fs::exists(no_weights.snapshot / "config.json"));
    EXPECT_EQ(hub_->cdn_gets(sha256_hex(model_file("model.safetensors"))), 0u);

    HubOptions named;
    named.include = {"config.json", "README.md"};  // a plain name also asks for that file
    const DownloadResult only = download(kRepo, named);
    EXPECT_EQ(only.files, std::vector<std::string>{"config.json"});
    EXPECT_EQ(only.absent, std::vector<std::string>{"README.md"});
    EXPECT_TRUE(fs::exists(repo_root(kRepo) / ".no_exist" / main_commit_ / "README.md"));
}

TEST_F(HubTest, ReportsProgressPerFile) {
    std::vector<Progress> events;
    HubOptions options;
    options.on_progress = [&](const Progress& p) { events.push_back(p); };
    download(kRepo, options);

    const std::uint64_t size = model_file("model.safetensors").size();
    std::uint64_t last = 0;
    bool done = false;
    for (const Progress& p : events) {
        if (p.file != "model.safetensors") continue;
        EXPECT_EQ(p.repo_id, kRepo);
        EXPECT_EQ(p.total, size);
        EXPECT_GE(p.bytes, last);
        last = p.bytes;
        done = done || p.done;
    }
    EXPECT_TRUE(done);
    EXPECT_EQ(last, size);
}

TEST_F(HubTest, GatedRepoWithoutTokenSaysToSetHfToken) {
    expect_hub_error([] { download(kGated); }, ErrorKind::Unauthorized, {kGated, "gated", "HF_TOKEN"});
    EXPECT_FALSE(fs::exists(repo_root(kGated) / "snapshots"));
}

TEST_F(HubTest, TokenIsSentToTheHubButNotToAnotherOrigin) {
    env_.set("HF_TOKEN", FakeHub::kToken);
    const DownloadResult result = download(kGated);
    EXPECT_EQ(read_file((result.snapshot / "model.safetensors").string()), model_file("model.safetensors"));
    std::size_t hub_requests = 0, cdn_requests = 0;
    for (const auto& l : hub_->log()) {
        if (l.server == "hub") {
            ++hub_requests;
            EXPECT_EQ(l.authorization, std::string("Bearer ") + FakeHub::kToken) << l.target;
        } else {
            ++cdn_requests;
            EXPECT_EQ(l.authorization, "") << "token leaked to the CDN: " << l.target;
        }
    }
    EXPECT_GT(hub_requests, 0u);
    EXPECT_GT(cdn_requests, 0u);
}

TEST_F(HubTest, TokenFileInHfHomeIsUsed) {
    fs::create_directories(temp_ / "hf_home");
    std::ofstream(temp_ / "hf_home" / "token") << FakeHub::kToken << "\n";
    EXPECT_NO_THROW(download(kGated));
}

}  // namespace
}  // namespace tfx::hub::testing
