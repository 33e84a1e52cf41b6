// `tfx env`: what a bug report needs, in the "- key: value" form of `transformers env`.
#include <sys/utsname.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <thread>

#include <boost/version.hpp>

#include "apps/tfx/commands.h"
#include "core/paths.h"
#include "core/plugin_catalogue.h"

namespace tfx::cli {
namespace {

std::string cpu_features() {
    __builtin_cpu_init();
    std::string out;
    auto add = [&](const char* name, bool present) {
        if (present) out += (out.empty() ? "" : " ") + std::string(name);
    };
    add("sse4.2", __builtin_cpu_supports("sse4.2"));
    add("avx", __builtin_cpu_supports("avx"));
    add("avx2", __builtin_cpu_supports("avx2"));
    add("fma", __builtin_cpu_supports("fma"));
    add("f16c", __builtin_cpu_supports("f16c"));
    add("avx512f", __builtin_cpu_supports("avx512f"));
    add("avx512bw", __builtin_cpu_supports("avx512bw"));
    add("avx512vnni", __builtin_cpu_supports("avx512vnni"));
    add("avx512bf16", __builtin_cpu_supports("avx512bf16"));
    return out.empty() ? "none detected" : out;
}

std::string env_or(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v != nullptr ? v : fallback;
}

void run_env() {
    auto line = [](const std::string& key, const std::string& value) {
        std::cout << "- " << key << ": " << value << '\n';
    };
    utsname os{};
    uname(&os);
    std::cout << "Copy-and-paste the text below in your GitHub issue and FILL OUT the two last points.\n\n";
    line("tfx version", TFX_VERSION);
    line("Plugin ABI", std::to_string(TFX_ABI_MAJOR) + "." + std::to_string(TFX_ABI_MINOR));
    line("Platform", std::string(os.sysname) + " " + os.release + " " + os.machine);
    line("Compiler", std::string("g++ ") + __VERSION__);
    line("Boost version", std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000) +
                              "." + std::to_string(BOOST_VERSION % 100));
    line("libtorch version (build)", TFX_TORCH_VERSION);
    line("CUDA toolkit (build)", TFX_CUDA_VERSION);
    line("CPU threads", std::to_string(std::thread::hardware_concurrency()));
    line("CPU features", cpu_features());

    PluginCatalogue catalogue(paths::plugin_search_path(global_options().plugin_paths));
    std::string dirs;
    for (const auto& d : catalogue.dirs()) dirs += (dirs.empty() ? "" : ":") + d.string();
    line("Plugin dirs", dirs.empty() ? "(none found)" : dirs);
    std::map<std::string, int> per_kind;
    for (const auto& r : catalogue.records()) ++per_kind[r.kind.empty() ? "unknown" : r.kind];
    std::string counts = std::to_string(catalogue.records().size());
    for (const auto& [kind, n] : per_kind)
        counts += (counts.find('(') == std::string::npos ? " (" : ", ") + kind + " " + std::to_string(n);
    line("Plugins", per_kind.empty() ? counts : counts + ")");
    // Each backend as --device auto weighs it: its score, or why it cannot run here.
    std::string backends;
    for (auto& r : catalogue.records()) {
        if (r.kind != "backend") continue;
        if (r.status == PluginStatus::unknown) probe_in_process(r, false);
        backends += (backends.empty() ? "" : ", ") + r.name +
                    (r.status == PluginStatus::ok ? " (score " + std::to_string(r.score) + ")"
                                                  : " (unavailable here: " + r.reason + ")");
    }
    line("Backends", backends.empty() ? "(none installed)" : backends);

    const std::string home = env_or("HOME", "~");
    const std::string hf_home = env_or("HF_HOME", env_or("XDG_CACHE_HOME", home + "/.cache") + "/huggingface");
    line("HF_HOME", hf_home);
    line("HF hub cache", env_or("HF_HUB_CACHE", hf_home + "/hub"));
    for (const char* name : {"TFX_PLUGIN_PATH", "TFX_LOG_LEVEL", "TFX_TEST_DATA", "HF_ENDPOINT", "HF_HUB_OFFLINE"}) {
        line(name, env_or(name, "(not set)"));
    }
    line("HF_TOKEN", std::getenv("HF_TOKEN") != nullptr ? "(set, hidden)" : "(not set)");
    line("Using GPU in script?", "<fill in>");
    line("Using distributed or parallel set-up in script?", "<fill in>");
}

}  // namespace

void add_env_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("env", "Print versions, CPU features, plugin and cache folders");
    cmd->callback(run_env);
}

}  // namespace tfx::cli
