// Test data lives outside the repository; tests find it through TFX_TEST_DATA and skip,
// saying why, when it is absent.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include <gtest/gtest.h>

namespace tfx::test {

inline std::optional<std::filesystem::path> data_path(const std::string& relative) {
    const char* root = std::getenv("TFX_TEST_DATA");
    if (root == nullptr || *root == '\0') return std::nullopt;
    std::filesystem::path p = std::filesystem::path(root) / relative;
    if (!std::filesystem::exists(p)) return std::nullopt;
    return p;
}

}  // namespace tfx::test

// Binds `var` to $TFX_TEST_DATA/relative or skips the test with the reason.
#define TFX_TEST_DATA_OR_SKIP(var, relative)                                                                \
    auto var##_opt = ::tfx::test::data_path(relative);                                                      \
    if (!var##_opt) {                                                                                       \
        GTEST_SKIP() << "test data missing: set TFX_TEST_DATA to the shared folder holding " << (relative); \
    }                                                                                                       \
    const std::filesystem::path var = *var##_opt
