// transformers' tokenizer.apply_chat_template(..., tokenize=False) for a tokenizer_config.json:
// picks the chat template, passes the special tokens and the request's variables, renders, and
// applies continue_final_message.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "jinja/jinja.h"

namespace tfx::jinja {

struct ChatRequest {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    nlohmann::ordered_json tools;  // null: no tools (the template sees `tools` = none)
    bool add_generation_prompt = false;
    bool continue_final_message = false;  // leave the final message open for the model to continue
    // Extra template variables (date_string, enable_thinking, documents, ...); they win over
    // special tokens of the same name. `documents` feeds the documents variable.
    nlohmann::ordered_json extra = nlohmann::ordered_json::object();
    // A named template of a list-form chat_template; unset: `tool_use` when tools are given and
    // such a template exists, else `default`.
    std::optional<std::string> template_name;
    RenderOptions options;  // "now" for strftime_now, render limits
};

class ChatTemplate {
  public:
    // Parses every template of the config's `chat_template` (a string or a list of
    // {"name", "template"}). Throws Error{runtime} when there is no chat_template. A template that
    // does not parse only fails when it is used.
    explicit ChatTemplate(const nlohmann::ordered_json& tokenizer_config);

    // The name of the template a request would use ("default" for a single unnamed template).
    std::string select(const std::optional<std::string>& name, bool has_tools) const;

    // Throws Error: syntax (chosen template does not parse), raised (raise_exception) or runtime.
    std::string apply(const ChatRequest& request) const;

  private:
    struct Named {
        std::string name;
        std::variant<Template, Error> parsed;
    };
    const Named& find(const std::optional<std::string>& name, bool has_tools) const;

    std::vector<Named> templates_;
    bool list_form_ = false;
    nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
};

// One-shot convenience: ChatTemplate(tokenizer_config).apply(request).
std::string apply_chat_template(const nlohmann::ordered_json& tokenizer_config, const ChatRequest& request);

}  // namespace tfx::jinja
