// `tfx chat`: an interactive conversation. Each user line is appended to the history, the
// whole history goes through the model's chat template, and the reply streams back and
// joins the history. Nothing that goes wrong in one turn ends the conversation: a line that
// is not UTF-8, a chat template error or a failed generation skips that message with a
// message on stderr; a full context drops the oldest turns (a system message stays) with a
// one-line notice. Ctrl-C during a reply stops the reply (the part already written stays in
// the history, as llama.cpp's conversation mode keeps it) and gives the prompt back; Ctrl-C
// at the prompt, end of input (Ctrl-D) or /exit ends the session. /reset, /save FILE and
// /load FILE manage the history.
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/tfx/chat_history.h"
#include "apps/tfx/chat_input.h"
#include "apps/tfx/commands.h"
#include "core/generation.h"
#include "core/stop_strings.h"
#include "registry/auto_tokenizer.h"
#include "tfx/sdk/error.hpp"

namespace tfx::cli {
namespace {

struct ChatOptions {
    ModelOptions model;
    SamplingOptions sampling;
    std::string system;
};

const char* const kHelp =
    "commands: /reset (forget the conversation, keep the system message), /save FILE, /load FILE "
    "(JSON [{\"role\", \"content\"}]), /exit; Ctrl-C stops a reply, Ctrl-C or Ctrl-D at the prompt quits; "
    "start a message with // to send it with one leading /\n";

void report(const std::string& message) {
    std::cerr << "tfx: " << message << '\n' << std::flush;
}

std::string plural(size_t n, const std::string& word) {
    return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

class Chat {
  public:
    explicit Chat(const ChatOptions& o)
        : session_(AutoModel::from_pretrained(o.model.model, o.model.session_options())),
          tokenizer_(Tokenizer::for_model(*session_, global_options().plugin_paths)),
          config_(o.sampling.resolve(*session_)) {
        if (!config_.stop_strings.empty()) {
            stop_strings_.emplace(config_.stop_strings,
                                  [this](int32_t token) { return tokenizer_->piece_after_text(token); });
        }
        if (!tokenizer_->settings().contains("chat_template")) {
            throw sdk::Error(TFX_ERR_UNSUPPORTED, o.model.model +
                                                      ": tokenizer_config.json has no chat_template, so this model "
                                                      "has no chat format (tfx generate runs plain text)");
        }
        if (const auto bad = invalid_utf8_offset(o.system)) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                             "--system: not valid UTF-8 (at byte " + std::to_string(*bad) + ")");
        }
        if (!o.system.empty()) history_.push_back({{"role", "system"}, {"content", o.system}});
    }

    void run() {
        const bool interactive = isatty(STDIN_FILENO) != 0;
        ChatInterrupts interrupts;
        LineReader reader(STDIN_FILENO, interrupts);
        for (;;) {
            interrupts.clear();
            if (interactive) std::cerr << "> " << std::flush;
            std::string line;
            const LineStatus status = reader.read(line);
            if (status != LineStatus::kLine) {
                if (interactive) std::cerr << '\n' << std::flush;
                return;
            }
            if (const auto bad = invalid_utf8_offset(line)) {
                report("the line is not valid UTF-8 (byte " + std::to_string(*bad) + "); it was not sent");
                continue;
            }
            if (line.empty()) continue;
            if (line[0] == '/' && line.rfind("//", 0) != 0) {
                if (!command(line)) return;
                continue;
            }
            if (line.rfind("//", 0) == 0) line.erase(0, 1);
            turn(line, interrupts);
        }
    }

  private:
    // A /command; false to end the session.
    bool command(const std::string& line) {
        const size_t space = line.find(' ');
        const std::string name = line.substr(0, space);
        std::string argument = space == std::string::npos ? "" : line.substr(space + 1);
        argument.erase(0, argument.find_first_not_of(' '));
        argument.erase(argument.find_last_not_of(' ') + 1);
        if (name == "/exit" || name == "/quit" || name == "/bye") return false;
        if (name == "/help" || name == "/?") {
            std::cerr << kHelp << std::flush;
        } else if (name == "/reset") {
            const bool system = !history_.empty() && history_[0].value("role", "") == "system";
            history_.erase(history_.begin() + (system ? 1 : 0), history_.end());
            report(system ? "conversation cleared (the system message stays)" : "conversation cleared");
        } else if (name == "/save" || name == "/load") {
            if (argument.empty()) {
                report(name + ": give a file, as in '" + name + " chat.json'");
                return true;
            }
            try {
                if (name == "/save") {
                    save_messages(argument, history_);
                    report("saved " + plural(history_.size(), "message") + " to " + argument);
                } else {
                    nlohmann::ordered_json loaded = load_messages(argument);
                    for (size_t i = 0; i < loaded.size(); ++i) {
                        if (const auto bad = invalid_utf8_offset(loaded[i]["content"].get<std::string>())) {
                            throw std::runtime_error(argument + ": message " + std::to_string(i) +
                                                     ": \"content\" is not valid UTF-8");
                        }
                    }
                    if (!loaded.empty()) {
                        try {
                            (void)tokenizer_->apply_chat_template(loaded, {});
                        } catch (const std::exception& e) {
                            throw std::runtime_error(argument +
                                                     ": the chat template rejects these messages: " + e.what());
                        }
                    }
                    history_ = std::move(loaded);
                    report("loaded " + plural(history_.size(), "message") + " from " + argument);
                }
            } catch (const std::exception& e) {
                report(std::string("error: ") + e.what() + (name == "/load" ? " (the conversation is unchanged)" : ""));
            }
        } else {
            report("unknown command '" + name + "' (/help lists them; start a message with // to send a leading /)");
        }
        return true;
    }

    void turn(const std::string& text, ChatInterrupts& interrupts) {
        nlohmann::ordered_json messages = history_;
        messages.push_back({{"role", "user"}, {"content", text}});
        FittedPrompt fitted;
        const int64_t max_positions = session_->info().max_positions;
        try {
            fitted = fit_to_context(
                std::move(messages), max_positions,
                [&](const nlohmann::ordered_json& m) { return tokenizer_->encode_chat(m, {}); },
                [&](int64_t length) {
                    return config_.max_length ? *config_.max_length - length : config_.max_new_tokens;
                });
        } catch (const std::exception& e) {
            report(std::string("error: ") + e.what() + "; the message was not sent");
            return;
        }
        if (fitted.dropped > 0) {
            report("context full (" + std::to_string(max_positions) + " tokens): dropped the " +
                   plural(fitted.dropped, "oldest message") +
                   (!fitted.messages.empty() && fitted.messages[0].value("role", "") == "system"
                        ? " (the system message stays)"
                        : ""));
        }
        if (fitted.capped)
            report("the reply is limited to " + plural(fitted.max_new_tokens, "token") + " to fit the context");

        GenerationConfig config = config_;
        config.max_length.reset();
        config.max_new_tokens = fitted.max_new_tokens;
        config.num_return_sequences = 1;  // a reply is one sequence
        TextStreamer streamer(*tokenizer_, /*skip_special_tokens=*/true);
        std::vector<int32_t> reply;
        // The model's stop_strings end a reply as they end generate()'s output (token boundaries,
        // the prompt counting).
        std::vector<int32_t> context = fitted.prompt;
        try {
            generate(
                *session_, {fitted.prompt}, config,
                [&](size_t, int32_t token) {
                    reply.push_back(token);
                    context.push_back(token);
                    std::cout << streamer.put(token) << std::flush;
                },
                [&](size_t, const std::vector<int32_t>&) {
                    return interrupts.pending() || (stop_strings_ && stop_strings_->matches(context));
                });
        } catch (const std::exception& e) {
            std::cout << '\n' << std::flush;
            report(std::string("error: ") + e.what() + "; the message was not sent");
            return;
        }
        std::cout << streamer.end() << '\n' << std::flush;
        if (interrupts.pending()) report("reply stopped; what was written stays in the conversation");
        history_ = std::move(fitted.messages);
        history_.push_back({{"role", "assistant"},
                            {"content", sanitize_utf8(tokenizer_->decode(reply, /*skip_special_tokens=*/true))}});
    }

    std::unique_ptr<ModelSession> session_;
    std::unique_ptr<Tokenizer> tokenizer_;
    GenerationConfig config_;
    std::optional<StopStrings> stop_strings_;
    nlohmann::ordered_json history_ = nlohmann::ordered_json::array();
};

}  // namespace

void add_chat_command(CLI::App& app) {
    auto o = std::make_shared<ChatOptions>();
    auto* cmd = app.add_subcommand(
        "chat",
        "Interactive chat through the model's chat template (history kept). Ctrl-C stops a reply; Ctrl-C or "
        "Ctrl-D at the prompt, or /exit, quits; /reset, /save FILE, /load FILE, /help");
    o->model.add_to(cmd);
    o->sampling.add_to(cmd);
    cmd->add_option("--system", o->system, "System message at the start of the conversation");
    cmd->callback([o] { Chat(*o).run(); });
}

}  // namespace tfx::cli
