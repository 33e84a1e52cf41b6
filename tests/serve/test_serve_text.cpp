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
