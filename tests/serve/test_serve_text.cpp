// The server's text handling without a model: tool-call parsing and request validation.
#include <gtest/gtest.h>

#include "apps/tfx/serve/openai_request.h"
#include "apps/tfx/serve/tool_calls.h"

namespace {

using tfx::serve::parse_tool_calls;

TEST(ToolCalls, HermesBlocksBecomeToolCallsAndTheTextBeforeThemContent) {
    const auto reply = parse_tool_calls(
        "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
        "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>",
        "call_");
    ASSERT_EQ(reply.tool_calls.size(), 2u);
    EXPECT_EQ(reply.content, "Let me look.");
    EXPECT_EQ(reply.tool_calls[0]["id"], "call_0");
    EXPECT_EQ(reply.tool_calls[0]["type"], "function");
    EXPECT_EQ(reply.tool_calls[0]["function"]["name"], "get_weather");
    EXPECT_EQ(reply.tool_calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
    EXPECT_EQ(reply.tool_calls[1]["function"]["name"], "get_time");
}

TEST(ToolCalls, Llama3JsonRepliesBecomeToolCalls) {
    const auto one = parse_tool_calls(R"({"name": "search", "parameters": {"q": "a;b"}})", "c");
    ASSERT_EQ(one.tool_calls.size(), 1u);
    EXPECT_EQ(one.tool_calls[0]["function"]["arguments"], R"({"q":"a;b"})");
    const auto two = parse_tool_calls(R"({"name": "f", "parameters": {}}; {"name": "g", "parameters": {"x": 1}})", "c");
    ASSERT_EQ(two.tool_calls.size(), 2u);
    EXPECT_EQ(two.tool_calls[1]["function"]["name"], "g");
}

TEST(ToolCalls, OtherTextStaysContent) {
    for (const char* text : {"Hello there", "{not json", R"({"no_name": 1})", "<tool_call>{broken</tool_call>"}) {
        const auto reply = parse_tool_calls(text, "c");
        EXPECT_TRUE(reply.tool_calls.empty()) << text;
        EXPECT_EQ(reply.content, text);
    }
}

// Feeds `text` a few characters at a time, as tokens arrive; returns the content and calls sent,
// and at which feed (characters seen) the first call went out.
struct Streamed {
    std::string content;
    nlohmann::ordered_json calls = nlohmann::ordered_json::array();
    size_t first_call_at = 0;
    size_t content_before_end = 0;  // content characters sent before the reply was whole
};
Streamed stream(const std::string& text, size_t step) {
    tfx::serve::ToolCallStream parser("c");
    Streamed out;
    for (size_t seen = 0; seen < text.size();) {
        seen = std::min(text.size(), seen + step);
        const bool finished = seen == text.size();
        const auto delta = parser.update(text.substr(0, seen), finished);
        out.content += delta.content;
        if (!finished) out.content_before_end = out.content.size();
        for (const auto& call : delta.tool_calls) {
            EXPECT_EQ(call["index"], out.calls.size()) << text;
            if (out.calls.empty()) out.first_call_at = seen;
            auto whole = call;
            whole.erase("index");
            out.calls.push_back(whole);
        }
    }
    EXPECT_EQ(parser.made_calls(), !out.calls.empty());
    return out;
}

TEST(ToolCalls, StreamedDeltasAddUpToTheWholeReplysParse) {
    const std::string hermes =
        "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
        "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>";
    const std::vector<std::string> replies = {
        hermes,
        "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": \"<tool_call>\"}}</tool_call>",
        R"({"name": "f", "parameters": {}}; {"name": "g", "parameters": {"x": 1}})",
        "  {\"name\": \"f\"}",
        "Hello there, no calls < here <tool",
        "{not json",
        "<tool_call>{broken</tool_call>",
        "   \n ",
        "Text then an unclosed <tool_call>{\"name\": \"f\", \"arguments\": {}}"};
    for (const std::string& text : replies) {
        const auto whole = parse_tool_calls(text, "c");
        for (size_t step : {1, 3, 7, 1000}) {
            const Streamed s = stream(text, step);
            EXPECT_EQ(s.content, whole.content) << "step " << step << ": " << text;
            EXPECT_EQ(s.calls, whole.tool_calls) << "step " << step << ": " << text;
        }
    }
}

TEST(ToolCalls, ContentAndEachCallAreSentAsSoonAsTheyAreKnown) {
    const std::string first_call = "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>";
    const std::string text = "Checking the weather now." + std::string("\n") + first_call +
                             "<tool_call>{\"name\": \"b\", \"arguments\": {}}</tool_call>";
    const Streamed s = stream(text, 1);
    EXPECT_EQ(s.content_before_end, std::string("Checking the weather now.").size());
    EXPECT_EQ(s.first_call_at, text.find(first_call) + first_call.size()) << "the first call waits for nothing else";
    ASSERT_EQ(s.calls.size(), 2u);
    // A malformed block after a good one: the good one stays sent, the rest becomes content.
    const Streamed broken = stream(first_call + " <tool_call>{oops</tool_call>", 4);
    EXPECT_EQ(broken.calls.size(), 1u);
    EXPECT_EQ(broken.content, " <tool_call>{oops</tool_call>");
    // A Llama 3 JSON reply is sent whole, at its end.
    EXPECT_EQ(stream(R"({"name": "f", "parameters": {}})", 2).first_call_at, 31u);
}

TEST(OpenAiRequest, BadFieldsAreNamed) {
    auto param_of = [](const std::string& body) {
        try {
            tfx::serve::parse_chat_request(body);
        } catch (const tfx::serve::RequestError& e) {
            return e.param;
        }
        return std::string("(accepted)");
    };
    const std::string ok = R"("model": "m", "messages": [{"role": "user", "content": "hi"}])";
    EXPECT_EQ(param_of("{" + ok + "}"), "(accepted)");
    EXPECT_EQ(param_of("{not json"), "");
    EXPECT_EQ(param_of("[1]"), "");
    EXPECT_EQ(param_of(R"({"model": "m", "n": 2e999})"), "");  // a number past a double: not JSON we take
    EXPECT_EQ(param_of(R"({"messages": [{"role": "user", "content": "hi"}]})"), "model");
    EXPECT_EQ(param_of(R"({"model": "m", "messages": []})"), "messages");
    EXPECT_EQ(param_of(R"({"model": "m", "messages": [{"content": "hi"}]})"), "messages[0].role");
    EXPECT_EQ(param_of("{" + ok + R"(, "temperature": 3})"), "temperature");
    EXPECT_EQ(param_of("{" + ok + R"(, "max_tokens": 0})"), "max_tokens");
    EXPECT_EQ(param_of("{" + ok + R"(, "n": "2"})"), "n");
    EXPECT_EQ(param_of("{" + ok + R"(, "stop": ["a", "b", "c", "d", "e"]})"), "stop");
    EXPECT_EQ(param_of("{" + ok + R"(, "top_logprobs": 2})"), "top_logprobs");
    EXPECT_EQ(param_of("{" + ok + R"(, "stream_options": {"include_usage": true}})"), "stream_options");
    EXPECT_EQ(param_of("{" + ok + R"(, "presence_penalty": -2.5})"), "presence_penalty");
}

TEST(OpenAiRequest, CompletionPromptsTakeEveryOpenAiForm) {
    using tfx::serve::parse_completion_request;
    EXPECT_EQ(parse_completion_request(R"({"model": "m", "prompt": "a"})").prompts.size(), 1u);
    EXPECT_EQ(parse_completion_request(R"({"model": "m", "prompt": ["a", "b"]})").prompts.size(), 2u);
    EXPECT_EQ(parse_completion_request(R"({"model": "m", "prompt": [1, 2, 3]})").prompts.size(), 1u);
    EXPECT_EQ(parse_completion_request(R"({"model": "m", "prompt": [[1], [2, 3]]})").prompts.size(), 2u);
    EXPECT_EQ(parse_completion_request(R"({"model": "m", "prompt": "a"})").max_tokens, 16);
    EXPECT_THROW(parse_completion_request(R"({"model": "m", "prompt": [-1]})"), tfx::serve::RequestError);
    EXPECT_THROW(parse_completion_request(R"({"model": "m", "prompt": {}})"), tfx::serve::RequestError);
}

}  // namespace
