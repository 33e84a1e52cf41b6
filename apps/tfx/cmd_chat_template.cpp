// `tfx chat-template`: render a model's chat template the way transformers' apply_chat_template
// does, for one conversation (--messages) or for a JSONL file of cases (--jsonl).
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "jinja/chat_template.h"

namespace tfx::cli {
namespace {

using json = nlohmann::ordered_json;

struct ChatTemplateArgs {
    std::string tokenizer_dir;
    std::string messages_file;
    std::string jsonl_file;
    bool add_generation_prompt = false;
    std::string now;
    std::string template_name;
};

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

json read_json_file(const std::string& path) {
    const std::string text = read_file(path);
    try {
        return json::parse(text);
    } catch (const json::exception& e) {
        throw std::runtime_error(path + " is not valid JSON: " + e.what());
    }
}

// The settings every request of one invocation shares.
jinja::ChatRequest base_request(const ChatTemplateArgs& args) {
    jinja::ChatRequest request;
    if (!args.now.empty()) {
        request.options.now = jinja::DateTime::parse(args.now);
        if (!request.options.now) throw std::runtime_error("--now must look like \"YYYY-MM-DD HH:MM:SS\"");
    }
    if (!args.template_name.empty()) request.template_name = args.template_name;
    return request;
}

// A case line of cases-dev.jsonl: messages, tools?, add_generation_prompt?,
// continue_final_message?, extra?
void fill_from_case(jinja::ChatRequest& request, const json& item) {
    if (!item.is_object() || !item.contains("messages")) throw std::runtime_error("a case needs \"messages\"");
    request.messages = item["messages"];
    request.tools = item.value("tools", json());
    request.add_generation_prompt = item.value("add_generation_prompt", false);
    request.continue_final_message = item.value("continue_final_message", false);
    request.extra = item.value("extra", json::object());
}

// One JSON object per line, UTF-8 as is, except the three characters that line splitters such as
// Python's str.splitlines() treat as line breaks (U+0085, U+2028, U+2029), which are escaped.
std::string dump_line(const json& row) {
    const std::string text = row.dump(-1, ' ', false, json::error_handler_t::replace);
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text.compare(i, 2, "\xC2\x85") == 0) {
            out += "\\u0085";
            i += 1;
        } else if (text.compare(i, 3, "\xE2\x80\xA8") == 0 || text.compare(i, 3, "\xE2\x80\xA9") == 0) {
            out += text[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

// Per-case failures become {"error": ...} lines; only unreadable input fails the command.
void run_jsonl(const jinja::ChatTemplate& chat, const jinja::ChatRequest& base, const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::string line;
    while (std::getline(in, line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        json row;
        try {
            jinja::ChatRequest request = base;
            fill_from_case(request, json::parse(line));
            row["rendered"] = chat.apply(request);
        } catch (const std::exception& e) {
            row = json::object();
            row["error"] = e.what();
        }
        std::cout << dump_line(row) << '\n';
    }
}

void run_messages(const jinja::ChatTemplate& chat, const jinja::ChatRequest& base, const ChatTemplateArgs& args) {
    jinja::ChatRequest request = base;
    const json input = read_json_file(args.messages_file);
    if (input.is_array()) {
        request.messages = input;
    } else if (input.is_object() && input.contains("messages")) {
        request.messages = input["messages"];
        request.tools = input.value("tools", json());
    } else {
        throw std::runtime_error(args.messages_file +
                                 " must hold a JSON array of messages or an object with \"messages\"");
    }
    request.add_generation_prompt = args.add_generation_prompt;
    std::cout << chat.apply(request);
}

void run(const ChatTemplateArgs& args) {
    const jinja::ChatRequest base = base_request(args);
    const std::string config_path = args.tokenizer_dir + "/tokenizer_config.json";
    const json config = read_json_file(config_path);
    std::optional<jinja::ChatTemplate> chat;
    try {
        chat.emplace(config);
    } catch (const jinja::Error& e) {
        throw std::runtime_error(config_path + ": " + e.what());
    }
    if (args.jsonl_file.empty()) {
        run_messages(*chat, base, args);
    } else {
        run_jsonl(*chat, base, args.jsonl_file);
    }
}

}  // namespace

void add_chat_template_command(CLI::App& app) {
    auto args = std::make_shared<ChatTemplateArgs>();
    CLI::App* cmd = app.add_subcommand("chat-template", "Render a model's chat template (as transformers does)");
    cmd->add_option("--tokenizer", args->tokenizer_dir, "Directory holding tokenizer_config.json")->required();
    auto* messages = cmd->add_option("--messages", args->messages_file,
                                     "JSON file: an array of messages, or an object with \"messages\" and \"tools\"");
    auto* jsonl =
        cmd->add_option("--jsonl", args->jsonl_file,
                        "JSONL cases (messages, tools, add_generation_prompt, continue_final_message, extra); "
                        "prints one {\"rendered\"} or {\"error\"} object per case");
    messages->excludes(jsonl);
    cmd->add_flag("--add-generation-prompt", args->add_generation_prompt, "End with the assistant turn header")
        ->needs(messages);
    cmd->add_option("--now", args->now, "Time strftime_now() sees, \"YYYY-MM-DD HH:MM:SS\" (default: local time)");
    cmd->add_option("--template", args->template_name, "Named template of a list-form chat_template");
    cmd->callback([args, messages, jsonl]() {
        if (messages->count() == 0 && jsonl->count() == 0) {
            throw CLI::RequiredError("--messages or --jsonl");
        }
        try {
            run(*args);
        } catch (const std::exception& e) {
            std::cerr << "tfx chat-template: " << e.what() << '\n';
            throw CLI::RuntimeError(1);
        }
    });
}

}  // namespace tfx::cli
