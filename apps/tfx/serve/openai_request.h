// The request bodies of OpenAI's API as `tfx serve` reads them: /v1/chat/completions and
// /v1/completions (with vLLM's extensions top_k, min_p, repetition_penalty, ignore_eos) and
// /v1/embeddings, validated field by field. A bad field throws RequestError naming it, which the server
// answers with HTTP 400 and OpenAI's error body ({"error": {"message", "type", "param"}}).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace tfx::serve {

class RequestError : public std::runtime_error {
  public:
    RequestError(std::string field, const std::string& message)
        : std::runtime_error(message), param(std::move(field)) {}
    std::string param;  // the field at fault ("messages[1].content"), empty for the body as a whole
};

// The fields chat and completions share.
struct SamplingFields {
    std::string model;
    int64_t n = 1;
    std::optional<int64_t> max_tokens;  // max_tokens or max_completion_tokens
    float temperature = 1.0f;           // 0: greedy, as OpenAI and vLLM treat it
    float top_p = 1.0f;
    int64_t top_k = 0;
    float min_p = 0.0f;
    float repetition_penalty = 1.0f;
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    std::optional<uint64_t> seed;
    std::vector<std::string> stop;
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage
    bool ignore_eos = false;
    int32_t logprobs = -1;  // -1: none; k >= 0: the chosen token's and the k most likely
    // Constrained decoding's regex (response_format, guided_json, guided_regex); empty: none.
    std::string constraint_pattern;
};

struct ChatRequest : SamplingFields {
    nlohmann::ordered_json messages;  // as the chat template takes them (text parts joined)
    nlohmann::ordered_json tools;     // null: none
};

using TextOrTokenIds = std::variant<std::string, std::vector<int32_t>>;

struct CompletionRequest : SamplingFields {
    // Each prompt is text or token ids; several make several choices (n each), as OpenAI does.
    std::vector<TextOrTokenIds> prompts;
    bool echo = false;
};

// /v1/embeddings.
struct EmbeddingRequest {
    std::string model;
    std::vector<TextOrTokenIds> inputs;  // one vector each
    bool base64 = false;                 // encoding_format "base64": little-endian f32 bytes
    std::optional<int64_t> dimensions;   // must be the model's own (no Matryoshka truncation)
};
inline constexpr size_t kMaxEmbeddingInputs = 2048;  // OpenAI's limit per request

// Throws RequestError for malformed JSON, a missing or mistyped field, or a value out of range.
ChatRequest parse_chat_request(const std::string& body);
CompletionRequest parse_completion_request(const std::string& body);
EmbeddingRequest parse_embedding_request(const std::string& body);

}  // namespace tfx::serve
