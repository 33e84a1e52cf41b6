#include "core/plugin_catalogue.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>

#include <boost/dll/shared_library.hpp>

#include "core/log.h"
#include "tfx/sdk/error.hpp"

namespace tfx {
namespace fs = std::filesystem;

namespace {

constexpr auto kProbeTimeout = std::chrono::seconds(20);

[[noreturn]] void fail(PluginStatus status, const std::string& reason) {
    throw sdk::Error(TFX_ERR_ABI, std::string(to_string(status)) + ": " + reason);
}

// Libraries loaded by this process stay loaded until it exits: plugins may have handed out
// function pointers and static data that outlive any one user, and their dependencies
// (OpenMP, oneDNN) may still run threads during exit. So the handles are never destroyed.
std::deque<boost::dll::shared_library>& loaded_libraries() {
    static auto* libraries = new std::deque<boost::dll::shared_library>();
    return *libraries;
}

PluginStatus classify_load_failure(const std::string& message, const fs::path& library) {
    // dlopen names the library it could not find; if that is not the plugin itself, the
    // plugin is fine and one of its dependencies is missing.
    const std::string own = library.filename().string();
    auto missing = message.find(": cannot open shared object file");
    if (missing != std::string::npos) {
        auto start = message.rfind(' ', missing);
        std::string dep = message.substr(start == std::string::npos ? 0 : start + 1,
                                         missing - (start == std::string::npos ? 0 : start + 1));
        if (fs::path(dep).filename().string() != own) return PluginStatus::missing_dependency;
    }
    if (message.find("undefined symbol") != std::string::npos) return PluginStatus::missing_dependency;
    if (message.find("version `") != std::string::npos) return PluginStatus::missing_dependency;
    return PluginStatus::not_a_plugin;
}

void read_sidecar(PluginRecord& record) {
    fs::path sidecar = record.library;
    sidecar.replace_extension(".json");
    std::string stem = record.library.stem().string();  // libtfx-model-llama
    if (stem.rfind("libtfx-", 0) == 0) {
        std::string rest = stem.substr(7);
        auto dash = rest.find('-');
        record.kind = rest.substr(0, dash);
        record.name = dash == std::string::npos ? rest : rest.substr(dash + 1);
    } else {
        record.name = stem;
    }
    if (!fs::exists(sidecar)) return;
    std::ifstream in(sidecar);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        record.status = PluginStatus::bad_manifest;
        record.reason = sidecar.filename().string() + " is not valid JSON";
        return;
    }
    record.manifest = j;
    record.name = j.value("name", record.name);
    record.kind = j.value("kind", record.kind);
    record.version = j.value("version", "");
    if (auto abi = j.find("abi"); abi != j.end() && abi->is_object()) {
        record.abi_major = abi->value("major", -1);
        record.abi_minor = abi->value("minor", -1);
    }
    if (record.abi_major != TFX_ABI_MAJOR) {
        record.status = PluginStatus::abi_mismatch;
        record.reason = "built for tfx ABI " + std::to_string(record.abi_major) + "." +
                        std::to_string(record.abi_minor) + " (sidecar), this host speaks ABI " +
                        std::to_string(TFX_ABI_MAJOR) + "." + std::to_string(TFX_ABI_MINOR) +
                        "; not loaded. Rebuild the plugin against this SDK";
    }
}

}  // namespace

std::string_view to_string(PluginStatus status) {
    switch (status) {
        case PluginStatus::unknown:
            return "unknown";
        case PluginStatus::ok:
            return "ok";
        case PluginStatus::not_a_plugin:
            return "not a plugin";
        case PluginStatus::abi_mismatch:
            return "ABI mismatch";
        case PluginStatus::missing_dependency:
            return "missing dependency";
        case PluginStatus::unavailable:
            return "unavailable here";
        case PluginStatus::bad_manifest:
            return "bad manifest";
        case PluginStatus::crashed:
            return "crashed";
        case PluginStatus::shadowed:
            return "shadowed";
    }
    return "unknown";
}

std::string_view kind_name(int32_t kind) {
    switch (kind) {
        case TFX_KIND_MODEL:
            return "model";
        case TFX_KIND_BACKEND:
            return "backend";
        case TFX_KIND_TOKENIZER:
            return "tokenizer";
        case TFX_KIND_ATTENTION:
            return "attention";
        case TFX_KIND_QUANTIZER:
            return "quantizer";
        default:
            return "";
    }
}

const nlohmann::json& PluginRecord::provides() const {
    static const nlohmann::json empty = nlohmann::json::object();
    if (!manifest.is_object()) return empty;
    auto it = manifest.find("provides");
    return it != manifest.end() && it->is_object() ? *it : empty;
}

LoadedPlugin load_plugin(const PluginRecord& record) {
    if (record.status == PluginStatus::abi_mismatch) fail(record.status, record.reason);
    static std::mutex mutex;
    std::lock_guard lock(mutex);

    boost::dll::shared_library library;
    try {
        library.load(record.library, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
        std::string message = e.what();
        fail(classify_load_failure(message, record.library), message);
    }
    if (!library.has(TFX_PLUGIN_ENTRY_SYMBOL)) {
        fail(PluginStatus::not_a_plugin, "no '" TFX_PLUGIN_ENTRY_SYMBOL "' symbol in " + record.library.string());
    }
    auto entry = library.get<const tfx_plugin_descriptor*()>(TFX_PLUGIN_ENTRY_SYMBOL);
    const tfx_plugin_descriptor* d = entry();
    if (d == nullptr || d->magic != TFX_PLUGIN_MAGIC) {
        fail(PluginStatus::not_a_plugin, "the descriptor's magic number is wrong");
    }
    if (d->abi_major != TFX_ABI_MAJOR) {
        fail(PluginStatus::abi_mismatch, "built for tfx ABI " + std::to_string(d->abi_major) + "." +
                                             std::to_string(d->abi_minor) + " (descriptor), this host speaks ABI " +
                                             std::to_string(TFX_ABI_MAJOR) + "." + std::to_string(TFX_ABI_MINOR));
    }
    if (d->struct_size < offsetof(tfx_plugin_descriptor, get_table) + sizeof(d->get_table) || d->name == nullptr ||
        d->version == nullptr || d->manifest_json == nullptr || d->create == nullptr || d->destroy == nullptr ||
        d->get_table == nullptr || kind_name(d->kind).empty()) {
        fail(PluginStatus::not_a_plugin, "the descriptor is incomplete (size " + std::to_string(d->struct_size) + ")");
    }
    if (record.manifest.is_object()) {
        nlohmann::json embedded = nlohmann::json::parse(d->manifest_json, nullptr, false);
        if (embedded != record.manifest) {
            fail(PluginStatus::bad_manifest,
                 "the sidecar differs from the manifest embedded in " + record.library.filename().string());
        }
    }
    const void* table = d->get_table();
    if (table == nullptr || *static_cast<const uint32_t*>(table) < sizeof(uint32_t)) {
        fail(PluginStatus::not_a_plugin, "the function table is missing");
    }
    loaded_libraries().push_back(std::move(library));
    return LoadedPlugin{d, table, record.library};
}

void probe_in_process(PluginRecord& record, bool create_instance) {
    try {
        LoadedPlugin plugin = load_plugin(record);
        const tfx_plugin_descriptor* d = plugin.descriptor;
        record.name = d->name;
        record.kind = std::string(kind_name(d->kind));
        record.version = d->version;
        record.abi_major = d->abi_major;
        record.abi_minor = d->abi_minor;
        record.score = d->score != nullptr ? d->score() : 100;
        if (record.score <= 0) {
            record.status = PluginStatus::unavailable;
            record.reason = "the plugin reports it cannot run on this machine (score 0)";
            return;
        }
        if (create_instance && d->kind == TFX_KIND_MODEL) {
            // A model instance needs a model session (config and weights), so verify checks
            // the table a session would call instead of creating one.
            const auto* table = static_cast<const tfx_model_table*>(plugin.table);
            if (!TFX_HAS_FIELD(table, tfx_model_table, forward) || table->load == nullptr ||
                table->get_info == nullptr || table->forward == nullptr) {
                record.status = PluginStatus::not_a_plugin;
                record.reason = "the model table lacks load, get_info or forward";
                return;
            }
        } else if (create_instance) {
            tfx_host_services host{};
            host.struct_size = sizeof(host);
            host.abi_major = TFX_ABI_MAJOR;
            host.abi_minor = TFX_ABI_MINOR;
            void* instance = nullptr;
            tfx_error error = sdk::empty_error();
            if (d->create(&host, &instance, &error) != TFX_OK) {
                record.status = PluginStatus::unavailable;
                record.reason = std::string("create failed: ") + error.message;
                return;
            }
            d->destroy(instance);
        }
        record.status = PluginStatus::ok;
        record.reason.clear();
    } catch (const std::exception& e) {
        std::string message = e.what();
        record.status = PluginStatus::not_a_plugin;
        for (auto s : {PluginStatus::abi_mismatch, PluginStatus::missing_dependency, PluginStatus::bad_manifest,
                       PluginStatus::not_a_plugin}) {
            std::string prefix = std::string(to_string(s)) + ": ";
            if (message.rfind(prefix, 0) == 0) {
                record.status = s;
                message = message.substr(prefix.size());
                break;
            }
        }
        record.reason = message;
    }
}

void probe_isolated(PluginRecord& record, bool create_instance) {
    int fds[2];
    if (::pipe(fds) != 0) {
        probe_in_process(record, create_instance);
        return;
    }
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        probe_in_process(record, create_instance);
        nlohmann::json out = {{"status", static_cast<int>(record.status)},
                              {"reason", record.reason},
                              {"score", record.score},
                              {"name", record.name},
                              {"kind", record.kind},
                              {"version", record.version},
                              {"abi_major", record.abi_major},
                              {"abi_minor", record.abi_minor}};
        std::string text = out.dump();
        for (std::size_t off = 0; off < text.size();) {
            ssize_t n = ::write(fds[1], text.data() + off, text.size() - off);
            if (n <= 0) break;
            off += static_cast<std::size_t>(n);
        }
        ::_exit(0);
    }
    ::close(fds[1]);
    if (pid < 0) {
        ::close(fds[0]);
        probe_in_process(record, create_instance);
        return;
    }
    std::string text;
    auto deadline = std::chrono::steady_clock::now() + kProbeTimeout;
    bool timed_out = false;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd p{fds[0], POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        char buffer[4096];
        ssize_t n = ::read(fds[0], buffer, sizeof buffer);
        if (n <= 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    if (timed_out) ::kill(pid, SIGKILL);
    int wstatus = 0;
    ::waitpid(pid, &wstatus, 0);
    if (timed_out) {
        record.status = PluginStatus::crashed;
        record.reason =
            "the probe did not finish within " + std::to_string(kProbeTimeout.count()) + " s (hang while loading)";
        return;
    }
    if (WIFSIGNALED(wstatus)) {
        record.status = PluginStatus::crashed;
        record.reason = std::string("the plugin crashed while ") +
                        (create_instance ? "loading or creating an instance" : "loading") + " (signal " +
                        std::to_string(WTERMSIG(wstatus)) + ": " + strsignal(WTERMSIG(wstatus)) + ")";
        return;
    }
    nlohmann::json result = nlohmann::json::parse(text, nullptr, false);
    if (result.is_discarded() || !result.is_object()) {
        record.status = PluginStatus::crashed;
        record.reason =
            "the probe process exited with status " + std::to_string(WEXITSTATUS(wstatus)) + " without a report";
        return;
    }
    record.status = static_cast<PluginStatus>(result.value("status", 0));
    record.reason = result.value("reason", "");
    record.score = result.value("score", -1);
    record.name = result.value("name", record.name);
    record.kind = result.value("kind", record.kind);
    record.version = result.value("version", record.version);
    record.abi_major = result.value("abi_major", record.abi_major);
    record.abi_minor = result.value("abi_minor", record.abi_minor);
}

PluginCatalogue::PluginCatalogue(std::vector<fs::path> dirs) : dirs_(std::move(dirs)) {
    for (const auto& dir : dirs_) {
        std::vector<fs::path> libraries;
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(dir, ec)) {
            if (entry.path().extension() == ".so" && entry.is_regular_file()) libraries.push_back(entry.path());
        }
        std::sort(libraries.begin(), libraries.end());
        for (const auto& library : libraries) {
            PluginRecord record;
            record.library = library;
            read_sidecar(record);
            for (const auto& earlier : records_) {
                if (earlier.status != PluginStatus::shadowed && earlier.name == record.name &&
                    earlier.kind == record.kind && !record.kind.empty()) {
                    record.status = PluginStatus::shadowed;
                    record.reason = "a plugin of the same kind and name comes first: " + earlier.library.string();
                }
            }
            records_.push_back(std::move(record));
        }
    }
}

void PluginCatalogue::probe_all(bool isolated, bool create_instance) {
    for (auto& record : records_) {
        if (record.status != PluginStatus::unknown) continue;
        if (isolated) {
            probe_isolated(record, create_instance);
        } else {
            probe_in_process(record, create_instance);
        }
    }
}

std::vector<const PluginRecord*> PluginCatalogue::of_kind(std::string_view kind) const {
    std::vector<const PluginRecord*> out;
    for (const auto& r : records_) {
        if (r.kind == kind && (r.status == PluginStatus::unknown || r.status == PluginStatus::ok)) out.push_back(&r);
    }
    return out;
}

std::vector<const PluginRecord*> PluginCatalogue::providing(std::string_view kind, std::string_view key,
                                                            std::string_view value) const {
    std::vector<const PluginRecord*> out;
    for (const PluginRecord* r : of_kind(kind)) {
        auto it = r->provides().find(key);
        if (it == r->provides().end()) continue;
        bool match = it->is_object() ? it->contains(value)
                                     : it->is_array() && std::find(it->begin(), it->end(), value) != it->end();
        if (match) out.push_back(r);
    }
    return out;
}

const PluginRecord* PluginCatalogue::find(std::string_view name) const {
    for (const auto& r : records_) {
        if (r.name == name || r.library.filename() == name) return &r;
    }
    return nullptr;
}

}  // namespace tfx
