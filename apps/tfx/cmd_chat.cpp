// `tfx chat`: an interactive conversation. Each user line is appended to the history, the
// whole history goes through the model's chat template, and the reply streams back and
// joins the history. An empty line or end of input ends the session; /reset clears it.
#include <unistd.h>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/tfx/commands.h"
#include "core/generation.h"
#include "registry/auto_tokenizer.h"

namespace tfx::cli {
namespace {

struct ChatOptions {
    ModelOptions model;
    SamplingOptions sampling;
    std::string system;
};

void run_chat(const ChatOptions& o) {
    auto session = AutoModel::from_pretrained(o.model.model, o.model.session_options());
    auto tokenizer = Tokenizer::open(session->model_dir(), global_options().plugin_paths);
    const GenerationConfig config = o.sampling.resolve(*session);
    const bool interactive = isatty(STDIN_FILENO) != 0;

    nlohmann::ordered_json history = nlohmann::ordered_json::array();
    if (!o.system.empty()) history.push_back({{"role", "system"}, {"content", o.system}});
    const size_t fixed = history.size();
    for (;;) {
        if (interactive) std::cerr << "> " << std::flush;
        std::string line;
        if (!std::getline(std::cin, line) || line.empty()) break;
        if (line == "/reset") {
            history.erase(history.begin() + static_cast<std::ptrdiff_t>(fixed), history.end());
            continue;
        }
        history.push_back({{"role", "user"}, {"content", line}});
        TextStreamer streamer(*tokenizer, /*skip_special_tokens=*/true);
        auto result = generate(*session, {tokenizer->encode_chat(history, {})}, config,
                               [&](size_t, int32_t token) { std::cout << streamer.put(token) << std::flush; });
        std::cout << streamer.end() << '\n' << std::flush;
        history.push_back({{"role", "assistant"}, {"content", tokenizer->decode(result.new_tokens[0], true)}});
    }
}

}  // namespace

void add_chat_command(CLI::App& app) {
    auto o = std::make_shared<ChatOptions>();
    auto* cmd = app.add_subcommand("chat", "Interactive chat through the model's chat template (history kept)");
    o->model.add_to(cmd);
    o->sampling.add_to(cmd);
    cmd->add_option("--system", o->system, "System message at the start of the conversation");
    cmd->callback([o] { run_chat(*o); });
}

}  // namespace tfx::cli
