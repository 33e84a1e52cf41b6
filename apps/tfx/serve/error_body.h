// OpenAI's error body, {"error": {"message", "type", "param", "code"}}: what every error answer
// of `tfx serve` carries, from the routes (400 naming the field, 404, 429, ...) and from the
// HTTP layer (malformed requests, 413, internal errors).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tfx::serve {

// param: the request field at fault, empty for none (JSON null). Bytes that are not UTF-8 (a
// message may quote the client's input) are replaced rather than failing the answer.
inline std::string openai_error_body(std::string_view message, std::string_view type, std::string_view param = {}) {
    const nlohmann::ordered_json body = {
        {"error",
         {{"message", message},
          {"type", type},
          {"param", param.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(param)},
          {"code", nullptr}}}};
    return body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace tfx::serve
