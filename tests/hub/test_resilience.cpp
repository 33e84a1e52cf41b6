// What goes wrong on real networks and disks: cut connections and resume, corrupt bytes,
// two downloaders at once, HTTP errors, an unreachable Hub, and hostile answers.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/hub/hub_fixture.h"

namespace tfx::hub::testing {
namespace {

namespace fs = std::filesystem;

std::vector<FakeHub::Logged> cdn_gets_of(const FakeHub& hub, const std::string& sha) {
    std::vector<FakeHub::Logged> gets;
    for (const auto& l : hub.log()) {
        if (l.server == "cdn" && l.method == "GET" && l.target.starts_with("/" + sha)) gets.push_back(l);
    }
    return gets;
}

TEST_F(HubTest, ResumesWithRangeWhenTheConnectionIsCut) {
    const std::string weights = model_file("model.safetensors");
    const std::string sha = sha256_hex(weights);
    hub_->cut_cdn_at(1'000'000, 1);
    const DownloadResult result = download(kRepo);
    EXPECT_EQ(read_file((result.snapshot / "model.safetensors").string()), weights);
    const auto gets = cdn_gets_of(*hub_, sha);
    ASSERT_EQ(gets.size(), 2u);
    EXPECT_EQ(gets[0].range, "");
    EXPECT_EQ(gets[1].range, "bytes=1000000-");
}

TEST_F(HubTest, ResumesWhatAnEarlierRunLeft) {
    const std::string weights = model_file("model.safetensors");
    const std::string sha = sha256_hex(weights);
    const fs::path blobs = repo_root(kRepo) / "blobs";
    fs::create_directories(blobs);
    std::ofstream(blobs / (sha + ".incomplete"), std::ios::binary) << weights.substr(0, 123456);

    const DownloadResult result = download(kRepo);
    EXPECT_EQ(read_file((result.snapshot / "model.safetensors").string()), weights);
    const auto gets = cdn_gets_of(*hub_, sha);
    ASSERT_EQ(gets.size(), 1u);
    EXPECT_EQ(gets[0].range, "bytes=123456-");
    EXPECT_FALSE(fs::exists(blobs / (sha + ".incomplete")));
}

TEST_F(HubTest, AFailedDownloadLeavesNothingThatLooksComplete) {
    const std::string weights = model_file("model.safetensors");
    const std::string sha = sha256_hex(weights);
    const fs::path root = repo_root(kRepo);
    hub_->cut_cdn_at(500'000, 1000);  // the link dies at the same byte, again and again
    expect_hub_error([] { download(kRepo); }, ErrorKind::Network, {"model.safetensors", "resumes"});
    EXPECT_FALSE(fs::exists(root / "blobs" / sha));
    EXPECT_FALSE(fs::exists(root / "snapshots" / main_commit_ / "model.safetensors"));
    EXPECT_FALSE(fs::is_symlink(root / "snapshots" / main_commit_ / "model.safetensors"));
    EXPECT_EQ(fs::file_size(root / "blobs" / (sha + ".incomplete")), 500'000u);

    hub_->cut_cdn_at(0, 0);
    const DownloadResult result = download(kRepo);
    EXPECT_EQ(read_file((result.snapshot / "model.safetensors").string()), weights);
    EXPECT_EQ(cdn_gets_of(*hub_, sha).back().range, "bytes=500000-");
}

// A CDN that stops sending mid-file but keeps the connection open: each stalled attempt ends
// after HF_HUB_DOWNLOAD_TIMEOUT seconds, the download resumes from the bytes it has.
TEST_F(HubTest, AStalledTransferTimesOutAndResumes) {
    const std::string weights = model_file("model.safetensors");
    const std::string sha = sha256_hex(weights);
    env_.set("HF_HUB_DOWNLOAD_TIMEOUT", "1");
    hub_->stall_cdn_at(1'000'000, 1);
    const auto start = std::chrono::steady_clock::now();
    const DownloadResult result = download(kRepo);
    const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(read_file((result.snapshot / "model.safetensors").string()), weights);
    const auto gets = cdn_gets_of(*hub_, sha);
    ASSERT_EQ(gets.size(), 2u);
    EXPECT_EQ(gets[1].range, "bytes=1000000-");
    EXPECT_LT(seconds, 5.5);  // libcurl's LOW_SPEED_TIME averaging took 7 s here
}

// A CDN that stalls at the same byte every time: the download gives up after a few
// timeouts in total, not a multiple of them per attempt, and says it stalled.
TEST_F(HubTest, ACdnThatAlwaysStallsGivesUpWithinTheTimeout) {
    env_.set("HF_HUB_DOWNLOAD_TIMEOUT", "1");
    hub_->stall_cdn_at(1'000'000, 1000);
    const auto start = std::chrono::steady_clock::now();
    expect_hub_error([] { download(kRepo); }, ErrorKind::Network,
                     {"model.safetensors", "stalled", "HF_HUB_DOWNLOAD_TIMEOUT"});
    const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 8.0);  // 5 stalled attempts took 15 s
}

TEST_F(HubTest, WrongSha256IsRejectedAndNothingIsKept) {
    const std::string sha = sha256_hex(model_file("model.safetensors"));
    const fs::path root = repo_root(kRepo);
    hub_->corrupt_cdn(true);
    expect_hub_error([] { download(kRepo); }, ErrorKind::Integrity, {"model.safetensors", "sha256", sha});
    EXPECT_FALSE(fs::exists(root / "blobs" / sha));
    EXPECT_FALSE(fs::exists(root / "blobs" / (sha + ".incomplete")));
    EXPECT_FALSE(fs::is_symlink(root / "snapshots" / main_commit_ / "model.safetensors"));

    hub_->corrupt_cdn(false);
    const DownloadResult result = download(kRepo);
    EXPECT_EQ(read_file((result.snapshot / "model.safetensors").string()), model_file("model.safetensors"));
}

void expect_one_consistent_copy(const FakeHub& hub, const fs::path& root, const std::string& weights) {
    const std::string sha = sha256_hex(weights);
    EXPECT_EQ(hub.cdn_gets(sha), 1u);  // the second downloader waited and reused the blob
    std::size_t blobs = 0;
    for (const auto& entry : fs::directory_iterator(root / "blobs")) {
        EXPECT_FALSE(entry.path().string().ends_with(".incomplete")) << entry.path();
        ++blobs;
    }
    EXPECT_EQ(blobs, 6u);
    std::string commit;
    std::ifstream(root / "refs" / "main") >> commit;
    EXPECT_EQ(read_file((root / "snapshots" / commit / "model.safetensors").string()), weights);
}

TEST_F(HubTest, TwoThreadsDownloadingTheSameModelCooperate) {
    hub_->slow_cdn(std::chrono::milliseconds(20));
    std::vector<DownloadResult> results(2);
    std::vector<std::string> errors(2);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < 2; ++i) {
        threads.emplace_back([&, i] {
            try {
                results[i] = download(kRepo);
            } catch (const std::exception& e) {
                errors[i] = e.what();
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(errors[0], "");
    EXPECT_EQ(errors[1], "");
    EXPECT_EQ(results[0].snapshot, results[1].snapshot);
    expect_one_consistent_copy(*hub_, repo_root(kRepo), model_file("model.safetensors"));
}

TEST_F(HubTest, TwoProcessesDownloadingTheSameModelCooperate) {
    hub_->slow_cdn(std::chrono::milliseconds(20));
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // The child only talks to the servers over TCP; _exit skips the parent's teardown.
        int status = 0;
        try {
            download(kRepo);
        } catch (...) {
            status = 1;
        }
        ::_exit(status);
    }
    EXPECT_NO_THROW(download(kRepo));
    int status = -1;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child's download failed";
    expect_one_consistent_copy(*hub_, repo_root(kRepo), model_file("model.safetensors"));
}

TEST_F(HubTest, MissingRepoRevisionAndFileAreNamed) {
    expect_hub_error([] { download("tfx-test/no-such-model"); }, ErrorKind::RepoNotFound,
                     {"tfx-test/no-such-model", "not found", "HF_TOKEN"});
    expect_hub_error([] { download(std::string(kRepo) + "@no-such-branch"); }, ErrorKind::RevisionNotFound,
                     {"no-such-branch", kRepo});
    expect_hub_error([] { download("tfx-test/no-config"); }, ErrorKind::FileNotFound,
                     {"config.json", "tfx-test/no-config"});
    EXPECT_TRUE(fs::exists(repo_root("tfx-test/no-config") / ".no_exist" / main_commit_ / "config.json"));
}

TEST_F(HubTest, UnreachableHubSaysSoAndWhetherACopyIsCached) {
    HubOptions refused;
    refused.endpoint = "http://127.0.0.1:" + std::to_string(unused_port());
    expect_hub_error([&] { download(kRepo, refused); }, ErrorKind::Network,
                     {"cannot reach", "no copy of " + std::string(kRepo)});

    const DownloadResult online = download(kRepo);
    refused.check_for_updates = true;
    const DownloadResult fallback = download(kRepo, refused);
    EXPECT_EQ(fallback.snapshot, online.snapshot);
    ASSERT_EQ(fallback.warnings.size(), 1u);
    EXPECT_NE(fallback.warnings[0].find("cannot reach"), std::string::npos) << fallback.warnings[0];

    fs::remove(online.snapshot / "model.safetensors");
    expect_hub_error([&] { download(kRepo, refused); }, ErrorKind::Network,
                     {"cannot reach", "lacks model.safetensors"});
}

TEST_F(HubTest, HostileAnswersNeverBecomePaths) {
    expect_hub_error([] { download("tfx-test/bad-etag"); }, ErrorKind::Protocol, {"ETag", "../../../escape"});
    expect_hub_error([] { download("tfx-test/evil-index"); }, ErrorKind::InvalidArgument,
                     {"../../../../escape.safetensors"});
    for (const auto& entry : fs::recursive_directory_iterator(temp_)) {
        EXPECT_EQ(entry.path().filename().string().find("escape"), std::string::npos) << entry.path();
    }
    EXPECT_FALSE(fs::exists(temp_.parent_path() / "escape"));
    EXPECT_FALSE(fs::exists(temp_.parent_path() / "escape.safetensors"));

    for (const char* bad :
         {"../etc/passwd", "a/b/c", "org--x/name", "org/..", "org/name@../../x", "org/name@a b", ""}) {
        expect_hub_error([&] { download(bad); }, ErrorKind::InvalidArgument, {});
    }
    for (const auto& l : hub_->log()) {  // the bad names were refused before any request
        EXPECT_TRUE(l.target.find("bad-etag") != std::string::npos ||
                    l.target.find("evil-index") != std::string::npos || l.server == "cdn")
            << l.target;
    }
}

}  // namespace
}  // namespace tfx::hub::testing
