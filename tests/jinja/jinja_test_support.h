// Helpers shared by the Jinja engine tests.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "jinja/jinja.h"

namespace tfx::jinja::test {

// The fixed clock of the reference renders: 2025-03-09 14:05:07.
inline RenderOptions reference_options() {
    RenderOptions options;
    options.now = DateTime{2025, 3, 9, 14, 5, 7};
    return options;
}

inline std::string render(const std::string& source, const std::string& context_json = "{}",
                          const RenderOptions& options = reference_options()) {
    return Template::parse(source).render(nlohmann::ordered_json::parse(context_json), options);
}

// What a template must produce: its output, or an error of some kind.
struct Expect {
    std::optional<std::string> output;
    ErrorKind kind = ErrorKind::runtime;
    std::optional<std::string> message;  // exact what() for raise_exception

    static Expect output_of(std::string text) { return {std::move(text), ErrorKind::runtime, std::nullopt}; }
    static Expect error(ErrorKind kind) { return {std::nullopt, kind, std::nullopt}; }
    static Expect raised(std::string message) { return {std::nullopt, ErrorKind::raised, std::move(message)}; }
};

struct Case {
    const char* source;
    const char* context;  // JSON object
    Expect expect;
};

inline void check(const Case& c) {
    SCOPED_TRACE(std::string("template: ") + c.source);
    try {
        const std::string out = render(c.source, c.context);
        if (c.expect.output) {
            EXPECT_EQ(out, *c.expect.output);
        } else {
            ADD_FAILURE() << "expected an error, got output: " << out;
        }
    } catch (const Error& e) {
        if (c.expect.output) {
            ADD_FAILURE() << "unexpected error: " << e.what();
            return;
        }
        EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(c.expect.kind)) << e.what();
        if (c.expect.message) {
            EXPECT_EQ(std::string(e.what()), *c.expect.message);
        }
    }
}

// $TFX_TEST_DATA, or nullopt when it is unset or not a directory.
inline std::optional<std::filesystem::path> test_data_dir() {
    const char* root = std::getenv("TFX_TEST_DATA");
    if (root == nullptr || !std::filesystem::is_directory(root)) return std::nullopt;
    return std::filesystem::path(root);
}

}  // namespace tfx::jinja::test
