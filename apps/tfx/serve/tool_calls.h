// Tool calls in a model's output, for chat requests that pass `tools`: the conventions the
// chat templates teach their models, turned into OpenAI's `tool_calls`.
//   - Hermes / Qwen: <tool_call>{"name": ..., "arguments": {...}}</tool_call>, one block per call,
//     optionally after some text (the message's content).
//   - Llama 3.x: the whole reply is one JSON object {"name": ..., "parameters": {...}} (or
//     "arguments"), or several separated by ';'.
// Output that follows neither is plain content.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tfx::serve {

struct ParsedReply {
    std::string content;  // the text outside the calls (may be empty)
    // OpenAI's message.tool_calls items: {"id", "type": "function", "function": {"name", "arguments"}},
    // arguments as a JSON string.
    nlohmann::ordered_json tool_calls = nlohmann::ordered_json::array();
};

// `id_prefix` + the call's index makes each call's id.
ParsedReply parse_tool_calls(const std::string& text, const std::string& id_prefix);

}  // namespace tfx::serve
