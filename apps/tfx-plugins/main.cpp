// tfx-plugins: list, inspect and verify the plugins on the search path. Probing happens in
// child processes under a time limit (--probe-timeout, TFX_PLUGIN_PROBE_TIMEOUT), so a plugin
// that crashes, calls exit() or hangs while loading cannot take this command down.
#include <chrono>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/paths.h"
#include "core/plugin_catalogue.h"

namespace {

// "llama; LlamaForCausalLM, LlamaModel" from {"model_types": [...], "architectures": {...}}.
std::string summarize_provides(const nlohmann::json& provides) {
    std::string out;
    for (const auto& [key, value] : provides.items()) {
        std::string part;
        if (value.is_array()) {
            for (const auto& v : value)
                part += (part.empty() ? "" : ",") + (v.is_string() ? v.get<std::string>() : v.dump());
        } else if (value.is_object()) {
            for (const auto& [k, v] : value.items()) part += (part.empty() ? "" : ",") + k;
        } else {
            part = value.is_string() ? value.get<std::string>() : value.dump();
        }
        if (!part.empty()) out += (out.empty() ? "" : "; ") + part;
    }
    return out.empty() ? "-" : out;
}

std::string abi_of(const tfx::PluginRecord& r) {
    return r.abi_major < 0 ? "?" : std::to_string(r.abi_major) + "." + std::to_string(r.abi_minor);
}

std::string status_of(const tfx::PluginRecord& r) {
    std::string s(tfx::to_string(r.status));
    return r.reason.empty() ? s : s + ": " + r.reason;
}

nlohmann::json to_json(const tfx::PluginRecord& r) {
    return {{"name", r.name},
            {"kind", r.kind},
            {"version", r.version},
            {"abi", abi_of(r)},
            {"path", r.library.string()},
            {"status", std::string(tfx::to_string(r.status))},
            {"reason", r.reason},
            {"score", r.score},
            {"provides", r.provides()}};
}

void print_table(const std::vector<tfx::PluginRecord>& records) {
    std::vector<std::vector<std::string>> rows{{"NAME", "KIND", "VERSION", "ABI", "PROVIDES", "PATH", "STATUS"}};
    for (const auto& r : records) {
        rows.push_back({r.name, r.kind.empty() ? "?" : r.kind, r.version.empty() ? "?" : r.version, abi_of(r),
                        summarize_provides(r.provides()), r.library.string(), status_of(r)});
    }
    std::vector<std::size_t> width(rows[0].size(), 0);
    for (const auto& row : rows) {
        for (std::size_t i = 0; i + 1 < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
        }
        std::cout << line << '\n';
    }
}

}  // namespace

int run(int argc, char** argv) {
    CLI::App app{"tfx-plugins: list, inspect and verify tfx plugins"};
    app.require_subcommand(1);
    std::vector<std::string> plugin_paths;
    app.add_option("--plugin-path", plugin_paths, "Extra plugin folders searched first (colon-separated)");
    double probe_timeout = 0;
    app.add_option("--probe-timeout", probe_timeout,
                   "Seconds a plugin's probe (load, score, create) may take before it is killed and reported "
                   "as crashed (default 10, or TFX_PLUGIN_PROBE_TIMEOUT)")
        ->check(CLI::PositiveNumber);

    bool json = false;
    auto* list = app.add_subcommand("list", "Table of every plugin found, with its status");
    list->add_flag("--json", json, "One JSON array for machines");
    std::string name;
    auto* info = app.add_subcommand("info", "The whole manifest of one plugin");
    info->add_option("NAME", name, "Plugin name or library file name")->required();
    auto* verify = app.add_subcommand("verify", "Load and instantiate each plugin in a child process");
    verify->add_flag("--json", json, "One JSON array for machines");
    CLI11_PARSE(app, argc, argv);
    if (probe_timeout > 0) {
        tfx::set_probe_timeout(std::chrono::milliseconds(static_cast<long>(probe_timeout * 1000)));
    }

    tfx::PluginCatalogue catalogue(tfx::paths::plugin_search_path(plugin_paths));

    if (*list) {
        catalogue.probe_all(/*isolated=*/true, /*create_instance=*/false);
        if (json) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& r : catalogue.records()) out.push_back(to_json(r));
            std::cout << out.dump(2) << '\n';
        } else {
            std::cout << "Plugin folders:";
            for (const auto& d : catalogue.dirs()) std::cout << ' ' << d.string();
            std::cout << (catalogue.dirs().empty() ? " (none found)\n" : "\n");
            print_table(catalogue.records());
        }
        return 0;
    }
    if (*info) {
        catalogue.probe_all(true, false);
        const tfx::PluginRecord* r = catalogue.find(name);
        if (r == nullptr) {
            std::cerr << "tfx-plugins: no plugin named '" << name << "' on the search path\n";
            return 1;
        }
        nlohmann::json out = to_json(*r);
        out["manifest"] = r->manifest;
        out["built_with_abi"] = abi_of(*r);
        out["host_abi"] = std::to_string(TFX_ABI_MAJOR) + "." + std::to_string(TFX_ABI_MINOR);
        std::cout << out.dump(2) << '\n';
        return 0;
    }
    catalogue.probe_all(true, /*create_instance=*/true);
    int failures = 0;
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : catalogue.records()) {
        bool good = r.status == tfx::PluginStatus::ok || r.status == tfx::PluginStatus::shadowed;
        failures += good ? 0 : 1;
        if (json) {
            out.push_back(to_json(r));
        } else {
            std::cout << (good ? "PASS  " : "FAIL  ") << r.library.string() << ": " << status_of(r) << '\n';
        }
    }
    if (json) std::cout << out.dump(2) << '\n';
    std::cout << (json ? ""
                       : std::to_string(catalogue.records().size() - failures) + " of " +
                             std::to_string(catalogue.records().size()) + " plugins verified\n");
    return failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "tfx-plugins: error: " << e.what() << '\n';
        return 1;
    }
}
