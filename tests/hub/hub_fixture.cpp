#include "tests/hub/hub_fixture.h"

#include <stdlib.h>

#include "tests/unit/test_data.h"

namespace tfx::hub::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kModelFiles[] = {"config.json",       "generation_config.json",
                                       "model.safetensors", "special_tokens_map.json",
                                       "tokenizer.json",    "tokenizer_config.json"};

}  // namespace

void HubTest::SetUp() {
    TFX_TEST_DATA_OR_SKIP(model_dir, "models/tinystories-656k");
    model_dir_ = model_dir;

    std::string pattern = (fs::temp_directory_path() / "tfx-hub-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    temp_ = pattern;
    cache_ = temp_ / "hub";
    hub_ = std::make_unique<FakeHub>();

    env_.set("HF_HUB_CACHE", cache_.string());
    env_.set("HF_HOME", (temp_ / "hf_home").string());
    env_.set("HF_ENDPOINT", hub_->endpoint());
    for (const char* name :
         {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "HUGGINGFACE_HUB_CACHE"}) {
        env_.set(name, std::nullopt);
    }

    std::map<std::string, std::string> all;
    for (const char* name : kModelFiles) all[name] = model_file(name);
    main_commit_ = sha256_hex("main commit").substr(0, 40);
    v1_commit_ = sha256_hex("v1 commit").substr(0, 40);

    std::map<std::string, std::string> v1 = all;
    v1.erase("tokenizer_config.json");
    v1.erase("special_tokens_map.json");
    FakeHub::Repo repo;
    repo.refs = {{"main", main_commit_}, {"v1.0", v1_commit_}, {"v2", main_commit_}};
    repo.commits = {{main_commit_, all}, {v1_commit_, v1}};
    hub_->add_repo(kRepo, repo);

    std::map<std::string, std::string> sharded = all;
    sharded.erase("model.safetensors");
    sharded.merge(split_checkpoint(all["model.safetensors"]));
    hub_->add_repo(kSharded, {{{"main", main_commit_}}, {{main_commit_, sharded}}, false, ""});

    hub_->add_repo(kGated, {{{"main", main_commit_}}, {{main_commit_, all}}, true, ""});
    hub_->add_repo(
        "tfx-test/no-config",
        {{{"main", main_commit_}}, {{main_commit_, {{"model.safetensors", all["model.safetensors"]}}}}, false, ""});
    const std::string evil_index = R"({"weight_map": {"embed": "../../../../escape.safetensors"}})";
    hub_->add_repo(
        "tfx-test/evil-index",
        {{{"main", main_commit_}},
         {{main_commit_, {{"config.json", all["config.json"]}, {"model.safetensors.index.json", evil_index}}}},
         false,
         ""});
    hub_->add_repo("tfx-test/bad-etag", {{{"main", main_commit_}}, {{main_commit_, all}}, false, "../../../escape"});
}

void HubTest::TearDown() {
    hub_.reset();
    if (!temp_.empty()) {
        std::error_code ec;
        fs::remove_all(temp_, ec);
    }
}

std::string HubTest::model_file(const std::string& name) const {
    return read_file((model_dir_ / name).string());
}

fs::path HubTest::repo_root(const std::string& repo_id) const {
    std::string folder = "models--" + repo_id;
    folder.replace(folder.find('/'), 1, "--");
    return cache_ / folder;
}

}  // namespace tfx::hub::testing
