// The subcommands of `tfx`, one file each; main.cpp wires them into one CLI11 app.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace tfx::cli {

// Options every subcommand shares (set on the top-level app).
struct GlobalOptions {
    std::vector<std::string> plugin_paths;
};
GlobalOptions& global_options();

void add_env_command(CLI::App& app);

}  // namespace tfx::cli
