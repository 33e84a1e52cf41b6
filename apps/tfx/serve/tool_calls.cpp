#include "apps/tfx/serve/tool_calls.h"

#include <optional>

namespace tfx::serve {
namespace {

using Json = nlohmann::ordered_json;

std::string trim(const std::string& s) {
    const size_t first = s.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return {};
    return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
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
    const std::string open = "<tool_call>", close = "</tool_call>";
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
        reply.content = trim(text.substr(0, first));
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

}  // namespace tfx::serve
