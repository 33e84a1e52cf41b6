// The subcommands of `tfx`, one file each; main.cpp wires them into one CLI11 app.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/generation_config.h"
#include "core/model_session.h"
#include "registry/auto_model.h"

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
    std::string kv_dtype = "f32";
    std::string weight_format;
    std::string quantize;
    std::string matmul_precision = "highest";
    std::string revision;
    bool offline = false;
    std::vector<std::string> lora;  // DIR[=NAME][:SCALE] each
    bool merge_lora = false;
    int tensor_parallel = 1;
    // With `tensor_parallel`, also --tp (the commands that run the same way on every rank:
    // not chat or serve, whose input reaches rank 0 alone).
    void add_to(CLI::App* cmd, bool tensor_parallel = false);
    LoadOptions session_options() const;
};

// Decoding options shared by generate and chat. Only the options given on the command line
// override the model's generation_config.json.
struct SamplingOptions {
    int64_t max_new_tokens = 0;
    bool greedy = false;
    float temperature = 1.0f, top_p = 1.0f, min_p = 0.0f, repetition_penalty = 1.0f;
    int64_t top_k = 0;
    uint64_t seed = 0;
    bool ignore_eos = false;
    std::string generation_config_file;
    void add_to(CLI::App* cmd);
    // generation_config.json of the model (else config.json defaults), then these options;
    // validated, naming the option (or generation_config.json) at fault. When sampling without
    // --seed it draws a fresh seed; either way it prints "seed: N" to stderr when sampling.
    GenerationConfig resolve(const ModelSession& session) const;

  private:
    CLI::Option *max_new_opt_ = nullptr, *temperature_opt_ = nullptr, *top_k_opt_ = nullptr, *top_p_opt_ = nullptr,
                *min_p_opt_ = nullptr, *penalty_opt_ = nullptr, *seed_opt_ = nullptr;
};

// "1,2,3" -> ids; throws naming the argument on anything else (ids past int32 included).
std::vector<int32_t> parse_ids(const std::string& text, const std::string& argument);
// "1,2,3" -> integers; `what` names them in the message ("thread counts").
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& argument, const std::string& what);
// A check for integer options: "expected a positive integer, got '0'" instead of CLI11's
// range with the largest double spelt out.
CLI::Validator integer_at_least(int64_t minimum);
// Under --tp N (N > 1): joins the MPI job's N ranks and silences stdout on all but rank 0.
void join_tensor_parallel(int ranks);

void add_env_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_perplexity_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_init_model_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_convert_commands(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_tokenize_commands(CLI::App& app);
void add_task_commands(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_chat_template_command(CLI::App& app);
void add_hub_commands(CLI::App& app);
// Download progress for stderr: a bar on a terminal, one line per file otherwise.
std::function<void(const hub::Progress&)> download_progress_reporter();

}  // namespace tfx::cli
