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

// A streamed reply that may hold tool calls, sent as early as it is known: content as soon as
// it cannot be the start of a <tool_call> block (whitespace right before one is dropped, as
// parse_tool_calls drops it), each Hermes/Qwen call as soon as its block closes, a Llama 3
// JSON reply (it begins with '{') when it is whole. The deltas add up to parse_tool_calls of the
// whole text, except that a malformed block after well-formed ones turns only the text from
// it on into content (what was sent is not taken back).
class ToolCallStream {
  public:
    explicit ToolCallStream(std::string id_prefix) : id_prefix_(std::move(id_prefix)) {}
    struct Delta {
        std::string content;
        // Calls not sent before, each with its "index" among the reply's calls (OpenAI's delta).
        nlohmann::ordered_json tool_calls = nlohmann::ordered_json::array();
    };
    // `text`: the reply so far, each call's extending the last's; `finished`: it is whole.
    Delta update(const std::string& text, bool finished);
    bool made_calls() const { return calls_sent_ > 0; }

  private:
    enum class Mode { undecided, hermes, json, plain };
    // Sends `parsed`'s calls from calls_sent_ on.
    void add_calls(const nlohmann::ordered_json& parsed, Delta& delta);

    std::string id_prefix_;
    Mode mode_ = Mode::undecided;
    size_t sent_ = 0;  // characters of the text sent (as content, or as the calls they hold)
    size_t calls_sent_ = 0;
};

}  // namespace tfx::serve
