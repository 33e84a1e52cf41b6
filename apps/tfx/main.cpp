// tfx: run Hugging Face transformer models. Each subcommand lives in its own cmd_*.cpp.
#include <iostream>

#include "apps/tfx/commands.h"
#include "tfx/sdk/error.hpp"

namespace tfx::cli {
GlobalOptions& global_options() {
    static GlobalOptions options;
    return options;
}
}  // namespace tfx::cli

int main(int argc, char** argv) {
    CLI::App app{"tfx: run Hugging Face transformer models with plugins"};
    app.require_subcommand(1);
    app.add_option("--plugin-path", tfx::cli::global_options().plugin_paths,
                   "Extra plugin folders searched first (colon-separated)");
    tfx::cli::add_generate_command(app);
    tfx::cli::add_forward_command(app);
    tfx::cli::add_init_model_command(app);
    tfx::cli::add_bench_command(app);
    tfx::cli::add_chat_command(app);
    tfx::cli::add_chat_template_command(app);
    tfx::cli::add_task_commands(app);
    tfx::cli::add_tokenize_commands(app);
    tfx::cli::add_hub_commands(app);
    tfx::cli::add_env_command(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const std::exception& e) {
        std::cerr << "tfx: error: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
