#include "jinja/chat_template.h"

#include "jinja/pystr.h"

namespace tfx::jinja {
namespace {

using json = nlohmann::ordered_json;

[[noreturn]] void fail(const std::string& message) {
    throw Error(ErrorKind::runtime, message);
}

// A special token is a string or an AddedToken object {"content": ...}.
std::optional<std::string> token_text(const json& value) {
    if (value.is_string()) return value.get<std::string>();
    if (value.is_object() && value.contains("content") && value["content"].is_string()) {
        return value["content"].get<std::string>();
    }
    return std::nullopt;
}

// transformers' special_tokens_map: only tokens that are set and non-empty are passed.
json special_tokens_of(const json& config) {
    json tokens = json::object();
    static const char* const kNames[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                         "pad_token", "cls_token", "mask_token"};
    for (const char* name : kNames) {
        if (!config.contains(name)) continue;
        if (const auto text = token_text(config[name]); text && !text->empty()) tokens[name] = *text;
    }
    if (config.contains("additional_special_tokens") && config["additional_special_tokens"].is_array()) {
        json list = json::array();
        for (const auto& t : config["additional_special_tokens"]) {
            if (const auto text = token_text(t)) list.push_back(*text);
        }
        if (!list.empty()) tokens["additional_special_tokens"] = list;
    }
    if (config.contains("extra_special_tokens") && config["extra_special_tokens"].is_object()) {
        for (const auto& [name, value] : config["extra_special_tokens"].items()) {
            if (const auto text = token_text(value); text && !text->empty()) tokens[name] = *text;
        }
    }
    return tokens;
}

// The text of the final message that continue_final_message keeps open.
std::string final_message_text(const json& messages) {
    if (!messages.is_array() || messages.empty() || !messages.back().is_object()) {
        fail("continue_final_message is set but there is no final message");
    }
    const json& content = messages.back().contains("content") ? messages.back()["content"] : json();
    if (content.is_string()) return content.get<std::string>();
    if (content.is_array()) {
        for (auto it = content.rbegin(); it != content.rend(); ++it) {
            if (it->is_object() && it->contains("text") && (*it)["text"].is_string())
                return (*it)["text"].get<std::string>();
        }
        fail("continue_final_message is set but we could not find any text to continue in the final message!");
    }
    fail("continue_final_message is set but the final message has no text content");
}

// Cuts the render right after the final message's content, as transformers does.
std::string continue_final(const std::string& rendered, const std::string& final_message) {
    const std::string stripped = pystr::strip(final_message, std::nullopt, pystr::StripSide::both);
    const std::string lstripped = pystr::strip(final_message, std::nullopt, pystr::StripSide::left);
    const std::size_t at = rendered.rfind(stripped);
    if (at == std::string::npos) {
        fail(
            "continue_final_message is set but the final message does not appear in the chat after applying the "
            "chat template! This can happen if the chat template deletes portions of the final message. Please "
            "verify the chat template and final message in your chat to ensure they are compatible.");
    }
    if (rendered.compare(at, lstripped.size(), final_message) == 0 && lstripped.size() == final_message.size()) {
        return rendered.substr(0, at + lstripped.size());
    }
    return rendered.substr(0, at + stripped.size());
}

}  // namespace

ChatTemplate::ChatTemplate(const json& config) {
    if (!config.is_object() || !config.contains("chat_template") || config["chat_template"].is_null()) {
        fail("the tokenizer config has no chat_template");
    }
    auto add = [this](std::string name, const std::string& source) {
        std::variant<Template, Error> parsed = Error(ErrorKind::syntax, "");
        try {
            parsed = Template::parse(source);
        } catch (const Error& e) {
            parsed = e;
        }
        templates_.push_back({std::move(name), std::move(parsed)});
    };
    const json& chat_template = config["chat_template"];
    if (chat_template.is_string()) {
        add("default", chat_template.get<std::string>());
    } else if (chat_template.is_array()) {
        list_form_ = true;
        for (const auto& entry : chat_template) {
            if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
                !entry["name"].is_string() || !entry["template"].is_string()) {
                fail("chat_template list entries must be {\"name\": string, \"template\": string}");
            }
            add(entry["name"].get<std::string>(), entry["template"].get<std::string>());
        }
    } else {
        fail("chat_template must be a string or a list of named templates");
    }
    special_tokens_ = special_tokens_of(config);
}

const ChatTemplate::Named& ChatTemplate::find(const std::optional<std::string>& name, bool has_tools) const {
    auto lookup = [this](std::string_view wanted) -> const Named* {
        for (const Named& t : templates_) {
            if (t.name == wanted) return &t;
        }
        return nullptr;
    };
    if (name) {
        if (const Named* t = lookup(*name)) return *t;
        fail("the tokenizer has no chat template named '" + *name + "'");
    }
    if (has_tools && list_form_) {
        if (const Named* t = lookup("tool_use")) return *t;
    }
    if (const Named* t = lookup("default")) return *t;
    fail("This model has multiple chat templates with no default specified!");
}

std::string ChatTemplate::select(const std::optional<std::string>& name, bool has_tools) const {
    return find(name, has_tools).name;
}

std::string ChatTemplate::apply(const ChatRequest& request) const {
    if (request.continue_final_message && request.add_generation_prompt) {
        fail(
            "continue_final_message and add_generation_prompt are not compatible. Use continue_final_message when "
            "you want the model to continue the final message, and add_generation_prompt when you want to add a "
            "header that will prompt it to start a new assistant message instead.");
    }
    if (!request.extra.is_null() && !request.extra.is_object()) fail("extra template variables must be a JSON object");
    for (const char* reserved : {"messages", "tools", "add_generation_prompt"}) {
        if (request.extra.is_object() && request.extra.contains(reserved)) {
            fail(std::string("'") + reserved + "' cannot be passed as an extra variable");
        }
    }
    const Named& chosen = find(request.template_name, !request.tools.is_null());
    if (const Error* error = std::get_if<Error>(&chosen.parsed)) throw *error;

    json context = special_tokens_;
    context["messages"] = request.messages;
    context["tools"] = request.tools;  // always defined; none without tools
    context["documents"] = json();
    context["add_generation_prompt"] = request.add_generation_prompt;
    if (request.extra.is_object()) {
        for (const auto& [key, value] : request.extra.items()) context[key] = value;
    }
    std::string rendered = std::get<Template>(chosen.parsed).render(context, request.options);
    if (request.continue_final_message) rendered = continue_final(rendered, final_message_text(request.messages));
    return rendered;
}

std::string apply_chat_template(const json& tokenizer_config, const ChatRequest& request) {
    return ChatTemplate(tokenizer_config).apply(request);
}

}  // namespace tfx::jinja
