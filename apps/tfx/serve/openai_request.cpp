#include "apps/tfx/serve/openai_request.h"

#include <cmath>
#include <limits>

#include "core/json_schema_regex.h"
#include "core/regex_automaton.h"
#include "tfx/sdk/error.hpp"

namespace tfx::serve {
namespace {

using Json = nlohmann::ordered_json;

Json parse_object(const std::string& body) {
    Json j;
    try {
        j = Json::parse(body);
    } catch (const nlohmann::json::parse_error& e) {
        throw RequestError(
            "", "the request body is not valid JSON (at byte " + std::to_string(e.byte) + "): expected a JSON object");
    } catch (const nlohmann::json::exception& e) {  // a number too large for a double, ...
        throw RequestError("", std::string("the request body is not valid JSON: ") + e.what());
    }
    if (!j.is_object())
        throw RequestError("", "the request body must be a JSON object, got " + std::string(j.type_name()));
    return j;
}

// A field that is absent or null is left as it is.
const Json* field(const Json& j, const char* name) {
    const auto it = j.find(name);
    return it == j.end() || it->is_null() ? nullptr : &*it;
}

float number_in(const Json& j, const char* name, float fallback, double low, double high) {
    const Json* v = field(j, name);
    if (!v) return fallback;
    if (!v->is_number()) throw RequestError(name, std::string(name) + " must be a number, got " + v->dump());
    const double x = v->get<double>();
    if (!(x >= low && x <= high)) {
        throw RequestError(name, std::string(name) + " must be between " + nlohmann::json(low).dump() + " and " +
                                     nlohmann::json(high).dump() + ", got " + v->dump());
    }
    return static_cast<float>(x);
}

std::optional<int64_t> integer_in(const Json& j, const char* name, int64_t low, int64_t high) {
    const Json* v = field(j, name);
    if (!v) return std::nullopt;
    if (!v->is_number_integer()) throw RequestError(name, std::string(name) + " must be an integer, got " + v->dump());
    const bool in_range = v->is_number_unsigned() ? v->get<uint64_t>() <= static_cast<uint64_t>(high) &&
                                                        (low <= 0 || v->get<uint64_t>() >= static_cast<uint64_t>(low))
                                                  : v->get<int64_t>() >= low && v->get<int64_t>() <= high;
    if (!in_range) {
        throw RequestError(name, std::string(name) + " must be an integer from " + std::to_string(low) + " to " +
                                     std::to_string(high) + ", got " + v->dump());
    }
    return v->get<int64_t>();
}

bool flag(const Json& j, const char* name) {
    const Json* v = field(j, name);
    if (!v) return false;
    if (!v->is_boolean()) throw RequestError(name, std::string(name) + " must be true or false, got " + v->dump());
    return v->get<bool>();
}

// A JSON Schema's regex; schema errors become a 400 naming `where`.
std::string schema_pattern(const Json& schema, const std::string& where) {
    if (!schema.is_object() && !schema.is_boolean())
        throw RequestError(where, where + " must be a JSON Schema object, got " + schema.dump());
    try {
        return json_schema_regex(schema);
    } catch (const sdk::Error& e) {
        throw RequestError(where, e.what());
    }
}

// Constrained decoding: OpenAI's response_format (json_object, json_schema), or vLLM's
// guided_json / guided_regex. Empty: none.
std::string constraint_pattern(const Json& j) {
    std::string pattern;
    if (const Json* format = field(j, "response_format")) {
        const Json* type = format->is_object() ? field(*format, "type") : nullptr;
        const std::string kind = type && type->is_string() ? type->get<std::string>() : "";
        if (kind == "json_object") {
            pattern = json_object_regex();
        } else if (kind == "json_schema") {
            const Json* spec = field(*format, "json_schema");
            const Json* schema = spec && spec->is_object() ? field(*spec, "schema") : nullptr;
            if (!schema)
                throw RequestError("response_format.json_schema",
                                   "response_format.json_schema must be an object with a schema");
            pattern = schema_pattern(*schema, "response_format.json_schema.schema");
        } else if (kind != "text") {
            throw RequestError(
                "response_format",
                "response_format must be {\"type\": \"text\"}, {\"type\": \"json_object\"} or {\"type\": "
                "\"json_schema\", \"json_schema\": {\"schema\": ...}}, got " +
                    format->dump());
        }
    }
    if (const Json* schema = field(j, "guided_json")) {
        if (!pattern.empty()) throw RequestError("guided_json", "guided_json cannot be combined with response_format");
        if (schema->is_string()) {
            const Json parsed = Json::parse(schema->get<std::string>(), nullptr, false);
            if (parsed.is_discarded()) throw RequestError("guided_json", "guided_json is not valid JSON");
            pattern = schema_pattern(parsed, "guided_json");
        } else {
            pattern = schema_pattern(*schema, "guided_json");
        }
    }
    if (const Json* regex = field(j, "guided_regex")) {
        if (!pattern.empty())
            throw RequestError("guided_regex", "guided_regex cannot be combined with another constraint");
        if (!regex->is_string() || regex->get<std::string>().empty())
            throw RequestError("guided_regex", "guided_regex must be a non-empty string");
        pattern = regex->get<std::string>();
        try {
            RegexAutomaton check(pattern);
        } catch (const sdk::Error& e) {
            throw RequestError("guided_regex", e.what());
        }
    }
    return pattern;
}

void read_sampling(const Json& j, SamplingFields& s) {
    const Json* model = field(j, "model");
    if (!model || !model->is_string()) throw RequestError("model", "model is required: the served model's name");
    s.model = model->get<std::string>();
    s.n = integer_in(j, "n", 1, 128).value_or(1);
    s.max_tokens = integer_in(j, "max_completion_tokens", 1, std::numeric_limits<int32_t>::max());
    if (!s.max_tokens) s.max_tokens = integer_in(j, "max_tokens", 1, std::numeric_limits<int32_t>::max());
    s.temperature = number_in(j, "temperature", 1.0f, 0.0, 2.0);
    s.top_p = number_in(j, "top_p", 1.0f, 0.0, 1.0);
    if (field(j, "top_p") && s.top_p <= 0.0f) throw RequestError("top_p", "top_p must be greater than 0, got 0");
    // vLLM's -1 (off) is accepted beside 0.
    s.top_k = std::max<int64_t>(0, integer_in(j, "top_k", -1, std::numeric_limits<int32_t>::max()).value_or(0));
    s.min_p = number_in(j, "min_p", 0.0f, 0.0, 1.0);
    s.repetition_penalty = number_in(j, "repetition_penalty", 1.0f, 1e-6, 1e6);
    s.presence_penalty = number_in(j, "presence_penalty", 0.0f, -2.0, 2.0);
    s.frequency_penalty = number_in(j, "frequency_penalty", 0.0f, -2.0, 2.0);
    if (const Json* seed = field(j, "seed")) {
        if (!seed->is_number_integer()) throw RequestError("seed", "seed must be an integer, got " + seed->dump());
        s.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : static_cast<uint64_t>(seed->get<int64_t>());
    }
    if (const Json* stop = field(j, "stop")) {
        if (stop->is_string()) {
            s.stop.push_back(stop->get<std::string>());
        } else if (stop->is_array() && stop->size() <= 4) {
            for (const Json& item : *stop) {
                if (!item.is_string()) throw RequestError("stop", "stop must hold strings, got " + item.dump());
                s.stop.push_back(item.get<std::string>());
            }
        } else {
            throw RequestError("stop", "stop must be a string or a list of up to 4 strings, got " + stop->dump());
        }
        for (const std::string& text : s.stop) {
            if (text.empty()) throw RequestError("stop", "stop strings must not be empty");
        }
    }
    s.stream = flag(j, "stream");
    if (const Json* options = field(j, "stream_options")) {
        if (!options->is_object())
            throw RequestError("stream_options", "stream_options must be an object, got " + options->dump());
        if (!s.stream) throw RequestError("stream_options", "stream_options is only allowed when stream is true");
        s.include_usage = flag(*options, "include_usage");
    }
    s.ignore_eos = flag(j, "ignore_eos");
    s.constraint_pattern = constraint_pattern(j);
}

// A message's content as the chat template takes it: text, or text parts joined.
Json message_content(const Json& content, const std::string& where) {
    if (content.is_string() || content.is_null()) return content;
    if (!content.is_array()) throw RequestError(where, where + " must be a string or a list of parts");
    std::string text;
    for (size_t i = 0; i < content.size(); ++i) {
        const Json& part = content[i];
        const std::string at = where + "[" + std::to_string(i) + "]";
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string())
            throw RequestError(at, at + " must be {\"type\": \"text\", \"text\": ...} (this model reads text only)");
        text += part["text"].get<std::string>();
    }
    return text;
}

// A field holding a string, a list of strings, token ids or lists of token ids (a prompt,
// embeddings' input): one entry per text or id list.
std::vector<TextOrTokenIds> texts_or_token_ids(const Json& j, const std::string& name) {
    const Json* value = field(j, name.c_str());
    const std::string expected = name + " is required: a string, a list of strings, token ids or lists of token ids";
    if (!value) throw RequestError(name, expected);
    auto ids_of = [&](const Json& list) {
        std::vector<int32_t> ids;
        for (const Json& id : list) {
            if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
                id.get<int64_t>() > std::numeric_limits<int32_t>::max())
                throw RequestError(name, name + " token ids must be integers >= 0, got " + id.dump());
            ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
        }
        if (ids.empty()) throw RequestError(name, "a list of token ids in " + name + " must not be empty");
        return ids;
    };
    std::vector<TextOrTokenIds> items;
    if (value->is_string()) {
        items.emplace_back(value->get<std::string>());
    } else if (value->is_array() && !value->empty() && (*value)[0].is_number()) {
        items.emplace_back(ids_of(*value));
    } else if (value->is_array() && !value->empty()) {
        for (const Json& item : *value) {
            if (item.is_string())
                items.emplace_back(item.get<std::string>());
            else if (item.is_array())
                items.emplace_back(ids_of(item));
            else
                throw RequestError(name, expected + ", got an item " + item.dump());
        }
    } else {
        throw RequestError(name, expected);
    }
    return items;
}

}  // namespace

ChatRequest parse_chat_request(const std::string& body) {
    const Json j = parse_object(body);
    ChatRequest r;
    read_sampling(j, r);
    const Json* messages = field(j, "messages");
    if (!messages || !messages->is_array() || messages->empty())
        throw RequestError("messages", "messages is required: a non-empty list of {\"role\", \"content\"} objects");
    r.messages = Json::array();
    for (size_t i = 0; i < messages->size(); ++i) {
        const Json& m = (*messages)[i];
        const std::string at = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) throw RequestError(at, at + " must be an object with role and content");
        const Json* role = field(m, "role");
        if (!role || !role->is_string()) throw RequestError(at + ".role", at + ".role is required (a string)");
        Json message = m;
        if (m.contains("content"))
            message["content"] = message_content(m["content"], at + ".content");
        else if (!m.contains("tool_calls"))
            throw RequestError(at + ".content", at + ".content is required");
        r.messages.push_back(std::move(message));
    }
    if (const Json* tools = field(j, "tools")) {
        if (!tools->is_array()) throw RequestError("tools", "tools must be a list of tool objects");
        r.tools = *tools;
    }
    const bool logprobs = flag(j, "logprobs");
    const std::optional<int64_t> top = integer_in(j, "top_logprobs", 0, 20);
    if (top && !logprobs) throw RequestError("top_logprobs", "top_logprobs needs logprobs: true");
    if (logprobs) r.logprobs = static_cast<int32_t>(top.value_or(0));
    return r;
}

CompletionRequest parse_completion_request(const std::string& body) {
    const Json j = parse_object(body);
    CompletionRequest r;
    read_sampling(j, r);
    if (!field(j, "max_tokens") && !field(j, "max_completion_tokens")) r.max_tokens = 16;  // OpenAI's default
    r.prompts = texts_or_token_ids(j, "prompt");
    r.echo = flag(j, "echo");
    if (const std::optional<int64_t> logprobs = integer_in(j, "logprobs", 0, 20))
        r.logprobs = static_cast<int32_t>(*logprobs);
    return r;
}

EmbeddingRequest parse_embedding_request(const std::string& body) {
    const Json j = parse_object(body);
    EmbeddingRequest r;
    const Json* model = field(j, "model");
    if (!model || !model->is_string()) throw RequestError("model", "model is required: the served model's name");
    r.model = model->get<std::string>();
    r.inputs = texts_or_token_ids(j, "input");
    if (r.inputs.size() > kMaxEmbeddingInputs) {
        throw RequestError("input", "input holds " + std::to_string(r.inputs.size()) + " items; at most " +
                                        std::to_string(kMaxEmbeddingInputs) + " per request");
    }
    if (const Json* format = field(j, "encoding_format")) {
        if (*format != "float" && *format != "base64")
            throw RequestError("encoding_format",
                               "encoding_format must be \"float\" or \"base64\", got " + format->dump());
        r.base64 = *format == "base64";
    }
    r.dimensions = integer_in(j, "dimensions", 1, std::numeric_limits<int32_t>::max());
    return r;
}

}  // namespace tfx::serve
