// The subcommands of `tfx`, one file each; main.cpp wires them into one CLI11 app.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace tfx::cli {

// Options every subcommand shares (set on the top-level app).
struct GlobalOptions {
    std::vector<std::string> plugin_paths;
};
GlobalOptions& global_options();

// Options every model command takes: the model and how to run it.
struct ModelOptions {
    std::string model;
    std::string device = "auto";
    std::string attn_implementation;
    int threads = 0;
    void add_to(CLI::App* cmd);
};

// "1,2,3" -> ids; throws naming the argument on anything else.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& argument);

void add_env_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_init_model_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_tokenize_commands(CLI::App& app);
void add_task_commands(CLI::App& app);

}  // namespace tfx::cli
