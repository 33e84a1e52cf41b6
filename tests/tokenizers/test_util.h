// Shared helpers for the tokenizer tests: locating $TFX_TEST_DATA and reading JSON lines.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tfx::tok::test {

// <TFX_TEST_DATA>/tokenizers, or nullopt when the data is not available.
inline std::optional<std::filesystem::path> tokenizers_dir() {
    const char* root = std::getenv("TFX_TEST_DATA");
    if (!root || !*root) return std::nullopt;
    auto dir = std::filesystem::path(root) / "tokenizers";
    if (!std::filesystem::exists(dir / "corpus-dev.jsonl")) return std::nullopt;
    return dir;
}

inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
    std::vector<nlohmann::json> rows;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
        if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
    return rows;
}

inline const std::vector<std::string>& all_tokenizer_names() {
    static const std::vector<std::string> names = {
        "bert-base-uncased", "claude", "deepseek_v3", "gemma3", "gpt4o", "gptoss", "llama2", "llama3", "qwen3",
        "t5-style-unigram"};
    return names;
}

}  // namespace tfx::tok::test

#define TFX_REQUIRE_TEST_DATA(dir_var)                       \
    const auto dir_var = ::tfx::tok::test::tokenizers_dir(); \
    if (!dir_var) GTEST_SKIP() << "TFX_TEST_DATA is not set to the shared data folder"
