#include "apps/tfx/serve/tool_calls.h"

#include <algorithm>
#include <optional>
#include <string_view>

namespace tfx::serve {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kSpace = " \t\r\n";
const std::string kOpen = "<tool_call>", kClose = "</tool_call>";

std::string trim(const std::string& s) {
    const size_t first = s.find_first_not_of(kSpace);
    if (first == std::string::npos) return {};
    return s.substr(first, s.find_last_not_of(kSpace) - first + 1);
}

// The end of text[0, end) without its trailing whitespace.
size_t trimmed_end(const std::string& text, size_t end) {
    while (end > 0 && std::string_view(kSpace).find(text[end - 1]) != std::string_view::npos) --end;
    return end;
}

// Length of the longest end of `text` that begins `tag` (it may become the tag).
size_t partial_tag_at_end(const std::string& text, const std::string& tag) {
    for (size_t k = std::min(text.size(), tag.size() - 1); k > 0; --k) {
        if (text.compare(text.size() - k, k, tag, 0, k) == 0) return k;
    }
    return 0;
}

// {"name": string, "arguments" | "parameters": object} as a tool_calls item, else nothing.
std::optional<Json> as_call(const std::string& text, const std::string& id) {
    const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return std::nullopt;
    const Json* arguments = nullptr;
    for (const char* key : {"arguments", "parameters"}) {
        if (j.contains(key)) arguments = &j[key];
    }
    if (arguments && !arguments->is_object() && !arguments->is_string()) return std::nullopt;
    const std::string argument_text = !arguments               ? "{}"
                                      : arguments->is_string() ? arguments->get<std::string>()
                                                               : arguments->dump();
    return Json{{"id", id}, {"type", "function"}, {"function", {{"name", j["name"]}, {"arguments", argument_text}}}};
}

}  // namespace

ParsedReply parse_tool_calls(const std::string& text, const std::string& id_prefix) {
    ParsedReply reply;
    const std::string &open = kOpen, &close = kClose;
    if (const size_t first = text.find(open); first != std::string::npos) {
        size_t at = first;
        while (at != std::string::npos) {
            const size_t body = at + open.size();
            const size_t end = text.find(close, body);
            const std::optional<Json> call =
                as_call(trim(text.substr(body, end == std::string::npos ? std::string::npos : end - body)),
                        id_prefix + std::to_string(reply.tool_calls.size()));
            if (!call) return ParsedReply{text, Json::array()};  // not a well-formed call: leave the text as it is
            reply.tool_calls.push_back(*call);
            at = end == std::string::npos ? end : text.find(open, end + close.size());
        }
        reply.content = text.substr(0, trimmed_end(text, first));
        return reply;
    }
    const std::string whole = trim(text);
    if (whole.empty() || whole.front() != '{') return ParsedReply{text, Json::array()};
    // One object, or several separated by ';' (Llama 3.x's parallel calls).
    size_t start = 0;
    while (start < whole.size()) {
        size_t end = whole.find(';', start);
        std::optional<Json> call;
        // A ';' may sit inside an argument string: widen the piece until it parses.
        while (!(call = as_call(trim(whole.substr(start, end == std::string::npos ? std::string::npos : end - start)),
                                id_prefix + std::to_string(reply.tool_calls.size()))) &&
               end != std::string::npos) {
            end = whole.find(';', end + 1);
        }
        if (!call) return ParsedReply{text, Json::array()};
        reply.tool_calls.push_back(*call);
        start = end == std::string::npos ? whole.size() : end + 1;
    }
    return reply;
}

void ToolCallStream::add_calls(const Json& parsed, Delta& delta) {
    for (; calls_sent_ < parsed.size(); ++calls_sent_) {
        Json call = parsed[calls_sent_];
        call["index"] = calls_sent_;
        delta.tool_calls.push_back(std::move(call));
    }
}

ToolCallStream::Delta ToolCallStream::update(const std::string& text, bool finished) {
    Delta delta;
    if (mode_ == Mode::undecided) {
        const size_t first = text.find_first_not_of(kSpace);
        if (first == std::string::npos && !finished) return delta;  // only whitespace so far
        mode_ = first == std::string::npos ? Mode::plain : text[first] == '{' ? Mode::json : Mode::hermes;
    }
    if (mode_ == Mode::json) {
        if (!finished) return delta;
        const ParsedReply reply = parse_tool_calls(text, id_prefix_);
        mode_ = Mode::plain;
        if (!reply.tool_calls.empty()) {
            add_calls(reply.tool_calls, delta);
            sent_ = text.size();
        }
    }
    if (mode_ == Mode::hermes) {
        const size_t open = text.find(kOpen);
        // Content up to the first block, or up to what may still become one.
        size_t end = open != std::string::npos ? trimmed_end(text, open)
                     : finished                ? text.size()
                                               : trimmed_end(text, text.size() - partial_tag_at_end(text, kOpen));
        if (end > sent_) {
            delta.content = text.substr(sent_, end - sent_);
            sent_ = end;
        }
        if (open == std::string::npos) return delta;
        // Every closed block (every block, once the reply is whole).
        const size_t last_close = text.rfind(kClose);
        const size_t parse_to = finished                                               ? text.size()
                                : last_close == std::string::npos || last_close < open ? 0
                                                                                       : last_close + kClose.size();
        if (parse_to == 0) return delta;
        const ParsedReply reply = parse_tool_calls(text.substr(0, parse_to), id_prefix_);
        if (!reply.tool_calls.empty()) {
            add_calls(reply.tool_calls, delta);
            sent_ = parse_to;  // the calls' text is sent; text between blocks is not content
            return delta;
        }
        mode_ = Mode::plain;  // a malformed block: the text from it on is content
    }
    if (mode_ == Mode::plain && text.size() > sent_) {
        delta.content += text.substr(sent_);
        sent_ = text.size();
    }
    return delta;
}

}  // namespace tfx::serve
