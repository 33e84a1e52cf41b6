// The fixture of the Hub tests: a fake Hub serving the real tinystories-656k model, a fresh
// cache in a temporary folder, and the HF_* environment pointed at both (restored after).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "registry/hub/hub.h"
#include "tests/hub/fake_hub.h"

namespace tfx::hub::testing {

// Sets or unsets environment variables for one test and puts the old values back.
class ScopedEnv {
  public:
    ScopedEnv() = default;
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;
    ~ScopedEnv() {
        for (const auto& [name, value] : saved_) {
            if (value) {
                ::setenv(name.c_str(), value->c_str(), 1);
            } else {
                ::unsetenv(name.c_str());
            }
        }
    }
    void set(const std::string& name, const std::optional<std::string>& value) {
        if (saved_.count(name) == 0) {
            const char* old = std::getenv(name.c_str());
            saved_[name] = old != nullptr ? std::optional<std::string>(old) : std::nullopt;
        }
        if (value) {
            ::setenv(name.c_str(), value->c_str(), 1);
        } else {
            ::unsetenv(name.c_str());
        }
    }

  private:
    std::map<std::string, std::optional<std::string>> saved_;
};

// Runs `action`, which must throw a HubError of `kind` whose message holds every word.
template <typename Action>
void expect_hub_error(Action&& action, ErrorKind kind, std::initializer_list<std::string> words) {
    try {
        action();
        ADD_FAILURE() << "no HubError thrown";
    } catch (const HubError& e) {
        EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(kind)) << e.what();
        for (const std::string& word : words) {
            EXPECT_NE(std::string(e.what()).find(word), std::string::npos)
                << "'" << word << "' is not in: " << e.what();
        }
    }
}

class HubTest : public ::testing::Test {
  protected:
    static constexpr const char* kRepo = "tfx-test/tinystories-656k";
    static constexpr const char* kSharded = "tfx-test/tinystories-sharded";
    static constexpr const char* kGated = "tfx-test/gated";

    void SetUp() override;
    void TearDown() override;

    // The bytes of a file of the model folder.
    std::string model_file(const std::string& name) const;
    std::filesystem::path repo_root(const std::string& repo_id) const;

    std::filesystem::path model_dir_;
    std::filesystem::path temp_;
    std::filesystem::path cache_;
    std::unique_ptr<FakeHub> hub_;
    ScopedEnv env_;

    std::string main_commit_;  // of kRepo, also tag "v2"
    std::string v1_commit_;    // of kRepo at tag "v1.0": no tokenizer_config.json, no special_tokens_map.json
};

}  // namespace tfx::hub::testing
