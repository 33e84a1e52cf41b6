// Every chat template of $TFX_TEST_DATA/chat_templates against every dev case, compared byte for
// byte with what transformers rendered (golden-dev.jsonl).
#include <algorithm>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "jinja/chat_template.h"
#include "jinja_test_support.h"

namespace tfx::jinja::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

std::vector<json> read_jsonl(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<json> rows;
    std::string line;
    while (std::getline(in, line)) {
        if (line.find_first_not_of(" \t\r") != std::string::npos) rows.push_back(json::parse(line));
    }
    return rows;
}

json read_json(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return json::parse(in);
}

ChatRequest request_for(const json& c) {
    ChatRequest request;
    request.messages = c["messages"];
    request.tools = c.value("tools", json());
    request.add_generation_prompt = c.value("add_generation_prompt", false);
    request.continue_final_message = c.value("continue_final_message", false);
    request.extra = c.value("extra", json::object());
    request.options = reference_options();
    return request;
}

// Compares one case; returns whether it matched (failures are reported with context).
bool check_case(const ChatTemplate& chat, const json& c, const json& golden) {
    SCOPED_TRACE("case " + c.value("id", std::string("?")));
    const ChatRequest request = request_for(c);
    if (golden.contains("template")) {
        EXPECT_EQ(chat.select(std::nullopt, !request.tools.is_null()), golden["template"].get<std::string>());
    }
    try {
        const std::string rendered = chat.apply(request);
        if (!golden.contains("rendered")) {
            ADD_FAILURE() << "expected an error (" << golden.value("error", std::string()) << "), got a render";
            return false;
        }
        EXPECT_EQ(rendered, golden["rendered"].get<std::string>());
        return rendered == golden["rendered"].get<std::string>();
    } catch (const Error& e) {
        if (golden.contains("rendered")) {
            ADD_FAILURE() << "unexpected error: " << e.what();
            return false;
        }
        if (golden.value("error_kind", std::string()) == "raise_exception") {
            EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(ErrorKind::raised)) << e.what();
            EXPECT_EQ(std::string(e.what()), golden["error"].get<std::string>());
            return e.kind() == ErrorKind::raised && e.what() == golden["error"].get<std::string>();
        }
        EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(ErrorKind::runtime)) << e.what();
        return e.kind() == ErrorKind::runtime;
    }
}

TEST(ChatTemplateGolden, DevCasesMatchTransformers) {
    const auto data = test_data_dir();
    if (!data) GTEST_SKIP() << "TFX_TEST_DATA is not set to the shared test data directory";
    const fs::path root = *data / "chat_templates";
    if (!fs::exists(root / "cases-dev.jsonl")) GTEST_SKIP() << "no chat_templates/cases-dev.jsonl under " << *data;
    const std::vector<json> cases = read_jsonl(root / "cases-dev.jsonl");

    std::vector<fs::path> dirs;
    for (const auto& entry : fs::directory_iterator(root)) {
        if (fs::exists(entry.path() / "tokenizer_config.json") && fs::exists(entry.path() / "golden-dev.jsonl")) {
            dirs.push_back(entry.path());
        }
    }
    std::sort(dirs.begin(), dirs.end());
    ASSERT_FALSE(dirs.empty()) << "no template directories under " << root;

    for (const fs::path& dir : dirs) {
        SCOPED_TRACE("template " + dir.filename().string());
        const std::vector<json> goldens = read_jsonl(dir / "golden-dev.jsonl");
        ASSERT_EQ(goldens.size(), cases.size());
        const ChatTemplate chat(read_json(dir / "tokenizer_config.json"));
        std::size_t passed = 0;
        for (std::size_t i = 0; i < cases.size(); ++i) passed += check_case(chat, cases[i], goldens[i]) ? 1 : 0;
        std::cout << "[ golden   ] " << dir.filename().string() << ": " << passed << "/" << cases.size() << '\n';
    }
}

}  // namespace
}  // namespace tfx::jinja::test
