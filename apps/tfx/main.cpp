// tfx: run Hugging Face transformer models. Each subcommand lives in its own cmd_*.cpp.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "apps/tfx/commands.h"
#include "apps/tfx/interrupt.h"
#include "core/tensor_parallel.h"
#include "tfx/sdk/error.hpp"

namespace tfx::cli {
GlobalOptions& global_options() {
    static GlobalOptions options;
    return options;
}
}  // namespace tfx::cli

namespace {

// Options of the top-level app, which go before the subcommand.
const std::vector<std::string> kGlobalOptions = {"--plugin-path"};

size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = up;
        }
    }
    return row[b.size()];
}

bool is_global_option(const std::string& arg) {
    return std::any_of(kGlobalOptions.begin(), kGlobalOptions.end(),
                       [&](const std::string& g) { return arg == g || arg.rfind(g + "=", 0) == 0; });
}

// The index in argv of the subcommand (skipping global options and their values), or 0 when
// the first word is an option CLI11 handles (--help, --version, an unknown one) or absent.
int subcommand_index(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg.rfind("--plugin-path=", 0) == 0) continue;
        if (arg == "--plugin-path") {
            ++i;
            continue;
        }
        if (!arg.empty() && arg[0] == '-') return 0;
        return i;
    }
    return 0;
}

bool is_subcommand(const CLI::App& app, const std::string& word) {
    const auto subs = app.get_subcommands({});
    return std::any_of(subs.begin(), subs.end(), [&](const CLI::App* sub) { return sub->check_name(word); });
}

// "unknown command 'generat' (did you mean 'generate'?)" for a first word that is no subcommand.
std::string unknown_command_message(const CLI::App& app, const std::string& word) {
    std::string best;
    size_t best_distance = 0;
    std::string names;
    for (const CLI::App* sub : app.get_subcommands({})) {
        const std::string& name = sub->get_name();
        names += (names.empty() ? "" : ", ") + name;
        const size_t d = edit_distance(word, name);
        const bool prefix = name.rfind(word, 0) == 0;  // "gen" -> "generate"
        const size_t score = prefix ? std::min<size_t>(d, 1) : d;
        if (best.empty() || score < best_distance) {
            best = name;
            best_distance = score;
        }
    }
    std::string message = "unknown command '" + word + "'";
    if (!best.empty() && best_distance <= std::max<size_t>(2, word.size() / 3))
        message += " (did you mean '" + best + "'?)";
    return message + "; the commands are: " + names + " (tfx --help)";
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"tfx: run Hugging Face transformer models with plugins"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("tfx ") + TFX_VERSION, "Print the version and exit");
    app.add_option("--plugin-path", tfx::cli::global_options().plugin_paths,
                   "Extra plugin folders searched first (colon-separated)");
    tfx::cli::add_generate_command(app);
    tfx::cli::add_forward_command(app);
    tfx::cli::add_perplexity_command(app);
    tfx::cli::add_init_model_command(app);
    tfx::cli::add_quantize_command(app);
    tfx::cli::add_convert_commands(app);
    tfx::cli::add_bench_command(app);
    tfx::cli::add_chat_command(app);
    tfx::cli::add_serve_command(app);
    tfx::cli::add_chat_template_command(app);
    tfx::cli::add_task_commands(app);
    tfx::cli::add_tokenize_commands(app);
    tfx::cli::add_hub_commands(app);
    tfx::cli::add_env_command(app);
    if (const int sub = subcommand_index(argc, argv); sub > 0 && !is_subcommand(app, argv[sub])) {
        std::cerr << "tfx: error: " << unknown_command_message(app, argv[sub]) << '\n';
        return static_cast<int>(CLI::ExitCodes::ExtrasError);
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int sub = subcommand_index(argc, argv);
        for (int i = sub + 1; sub > 0 && i < argc; ++i) {
            if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr && is_global_option(argv[i])) {
                const std::string option = std::string(argv[i]).substr(0, std::string(argv[i]).find('='));
                std::cerr << "tfx: error: " << option
                          << " is a global option: put it before the subcommand, as in 'tfx " << option << " DIR "
                          << argv[sub] << " ...'\n";
                return e.get_exit_code();
            }
        }
        return app.exit(e);
    } catch (const tfx::cli::Interrupted&) {
        std::cerr << "tfx: interrupted\n";
        tfx::TensorParallelGroup::abort_job(tfx::cli::kInterruptedExitCode);
        return tfx::cli::kInterruptedExitCode;
    } catch (const std::exception& e) {
        // Under --tp, which rank failed; then the whole job ends (its peers may be waiting on it).
        const tfx::TensorParallelGroup* group = tfx::TensorParallelGroup::joined();
        std::cerr << "tfx: error"
                  << (group != nullptr
                          ? " (rank " + std::to_string(group->rank()) + " of " + std::to_string(group->size()) + ")"
                          : std::string())
                  << ": " << e.what() << '\n';
        tfx::TensorParallelGroup::abort_job(1);
        return 1;
    }
    return 0;
}
