// One /v1/chat/completions or /v1/completions request while it generates: its choices'
// sequences in the engine, their text (stop strings, logprobs, tool calls) and the answer,
// whole or streamed as OpenAI's chunks. It lives on the server's I/O thread: the engine's
// callbacks post to it, and a client that disconnects cancels every sequence at once.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/tfx/serve/choice_text.h"
#include "apps/tfx/serve/engine.h"
#include "apps/tfx/serve/http_server.h"
#include "apps/tfx/serve/metrics.h"
#include "apps/tfx/serve/openai_request.h"
#include "apps/tfx/serve/tool_calls.h"

namespace tfx::serve {

class CompletionRun : public std::enable_shared_from_this<CompletionRun> {
  public:
    enum class Kind { chat, completion };
    struct Prompt {
        std::vector<int32_t> ids;
        std::string echo;  // completions with echo: the prompt's text, sent before the new text
    };

    CompletionRun(Kind kind, const SamplingFields& fields, bool parse_tools, std::string model_name,
                  const Tokenizer& tokenizer, Engine& engine, Metrics& metrics, std::shared_ptr<Exchange> exchange);
    // Submits n sequences per prompt (choice index = prompt x n + sample). Throws QueueFull or
    // sdk::Error (the KV budget) before anything is sent.
    void start(const std::vector<Prompt>& prompts, const GenerationConfig& config, int64_t max_new_tokens,
               std::shared_ptr<ConstraintAutomaton> constraint = nullptr, int32_t adapter = lora::kActiveAdapters);

  private:
    struct Choice {
        explicit Choice(ChoiceText decoded) : text(std::move(decoded)) {}
        ChoiceText text;
        std::optional<ToolCallStream> tools;  // a streamed chat reply with `tools`: parsed as it comes
        Engine::Ticket ticket = 0;
        size_t prompt = 0;
        int64_t tokens = 0;
        bool done = false;
        bool started = false;  // its first chunk (role) was streamed
        std::string finish_reason;
        nlohmann::ordered_json logprobs;  // chat: content list; completions: the four arrays
        std::chrono::steady_clock::time_point last_token;
    };

    // Ids of a choice's tool calls: this prefix + the call's index.
    std::string tool_call_id_prefix(size_t choice) const;
    void on_token(size_t choice, const Generator::Event& event);
    void on_error(size_t choice, const std::string& message);
    void finish_choice(size_t choice, std::string reason);
    void add_logprobs(Choice& c, const Generator::Event& event, const std::string& piece);
    // Streaming: one chunk for `choice` with this text (and logprobs, tool calls), or its finish.
    void stream_piece(size_t choice, const std::string& piece, const nlohmann::ordered_json& logprobs,
                      const nlohmann::ordered_json& tool_calls = nullptr);
    void stream_finish(size_t choice);
    nlohmann::ordered_json chunk(nlohmann::ordered_json choices) const;
    nlohmann::ordered_json usage() const;
    void complete();
    void cancel_all();

    Kind kind_;
    SamplingFields fields_;
    bool parse_tools_;
    std::string model_name_;
    std::string id_;
    int64_t created_;
    const Tokenizer& tokenizer_;
    Engine& engine_;
    Metrics& metrics_;
    std::shared_ptr<Exchange> exchange_;
    std::vector<Choice> choices_;
    std::vector<Prompt> prompts_;
    int64_t prompt_tokens_ = 0;
    std::chrono::steady_clock::time_point arrival_;
    bool first_token_seen_ = false;
    bool answered_ = false;
};

}  // namespace tfx::serve
