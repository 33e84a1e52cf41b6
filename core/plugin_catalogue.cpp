#include "core/plugin_catalogue.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "core/log.h"
#include "core/paths.h"
#include "core/plugin_guard.h"
#include "tfx/sdk/error.hpp"

namespace tfx {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(PluginStatus status, const std::string& reason) {
    throw sdk::Error(TFX_ERR_ABI, std::string(to_string(status)) + ": " + reason);
}

std::atomic<long> g_probe_timeout_ms{-1};  // -1: TFX_PLUGIN_PROBE_TIMEOUT or the default

std::chrono::milliseconds probe_timeout() {
    long ms = g_probe_timeout_ms.load();
    if (ms >= 0) return std::chrono::milliseconds(ms);
    if (const char* env = std::getenv("TFX_PLUGIN_PROBE_TIMEOUT"); env != nullptr && *env != '\0') {
        char* end = nullptr;
        double seconds = std::strtod(env, &end);
        if (end != env && *end == '\0' && seconds > 0)
            return std::chrono::milliseconds(static_cast<long>(seconds * 1000));
        log::write(log::Level::warn, "plugins",
                   std::string("TFX_PLUGIN_PROBE_TIMEOUT='") + env + "' is not a number of seconds; using " +
                       std::to_string(kDefaultProbeTimeout.count() / 1000) + " s");
    }
    return kDefaultProbeTimeout;
}

std::string seconds_text(std::chrono::milliseconds ms) {
    std::ostringstream out;
    out << static_cast<double>(ms.count()) / 1000.0;
    return out.str();
}

// In a probe child, the fd of the pipe to the parent: each phase is announced on it, so the
// parent can say what the plugin was doing when it died.
int g_probe_report_fd = -1;

// A phase of a host call into a plugin: reported to the probe parent, and marked for the
// in-process crash reporters.
class Phase {
  public:
    Phase(const std::string& name, const fs::path& library, const char* phase) : scope_(name, library, phase) {
        if (g_probe_report_fd >= 0) {
            std::string line = std::string("phase ") + phase + "\n";
            [[maybe_unused]] ssize_t n = ::write(g_probe_report_fd, line.data(), line.size());
        }
    }

  private:
    plugin_guard::CallScope scope_;
};

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

// Sidecars are parsed once per process (a catalogue is built more than once per run), keyed
// by path, size and modification time.
struct SidecarEntry {
    std::uintmax_t size = 0;
    fs::file_time_type mtime;
    nlohmann::json json;  // discarded when not valid JSON
};

std::optional<nlohmann::json> parse_sidecar(const fs::path& sidecar, std::uintmax_t size, fs::file_time_type mtime) {
    static std::mutex mutex;
    static std::map<fs::path, SidecarEntry> cache;
    {
        std::lock_guard lock(mutex);
        auto it = cache.find(sidecar);
        if (it != cache.end() && it->second.size == size && it->second.mtime == mtime) return it->second.json;
    }
    std::ifstream in(sidecar, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream text;
    text << in.rdbuf();
    SidecarEntry entry{size, mtime, nlohmann::json::parse(text.str(), nullptr, false)};
    std::lock_guard lock(mutex);
    cache[sidecar] = entry;
    return entry.json;
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
    std::error_code ec;
    if (!fs::exists(sidecar, ec)) return;
    const std::uintmax_t size = fs::file_size(sidecar, ec);
    const fs::file_time_type mtime = fs::last_write_time(sidecar, ec);
    if (!ec && size > kMaxSidecarBytes) {
        record.status = PluginStatus::bad_manifest;
        record.reason = sidecar.filename().string() + " is " + std::to_string(size) + " bytes, over the limit of " +
                        std::to_string(kMaxSidecarBytes) + " bytes (1 MiB) for a manifest; not read";
        return;
    }
    std::optional<nlohmann::json> parsed = ec ? std::nullopt : parse_sidecar(sidecar, size, mtime);
    if (!parsed) {
        record.status = PluginStatus::bad_manifest;
        record.reason = sidecar.filename().string() + " cannot be read";
        return;
    }
    const nlohmann::json& j = *parsed;
    if (j.is_discarded() || !j.is_object()) {
        record.status = PluginStatus::bad_manifest;
        record.reason = sidecar.filename().string() + " is not valid JSON";
        return;
    }
    record.manifest = j;
    auto text = [&](const char* key, const std::string& fallback) {
        auto it = j.find(key);
        return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
    };
    record.name = text("name", record.name);
    record.kind = text("kind", record.kind);
    record.version = text("version", "");
    if (auto abi = j.find("abi"); abi != j.end() && abi->is_object()) {
        auto number = [&](const char* key) {
            auto it = abi->find(key);
            return it != abi->end() && it->is_number_integer() ? it->get<int>() : -1;
        };
        record.abi_major = number("major");
        record.abi_minor = number("minor");
    }
    if (record.abi_major != TFX_ABI_MAJOR) {
        record.status = PluginStatus::abi_mismatch;
        record.reason = "built for tfx ABI " + std::to_string(record.abi_major) + "." +
                        std::to_string(record.abi_minor) + " (sidecar), this host speaks ABI " +
                        std::to_string(TFX_ABI_MAJOR) + "." + std::to_string(TFX_ABI_MINOR) +
                        "; not loaded. Rebuild the plugin against this SDK";
    }
}

// The table entries the ABI requires of each kind (NULL, or beyond the table's struct_size,
// is a load error); the rest are optional and checked by their callers.
#define TFX_REQUIRE_ENTRY(type, field)                                  \
    if (!TFX_HAS_FIELD(static_cast<const type*>(table), type, field) || \
        static_cast<const type*>(table)->field == nullptr) {            \
        missing += std::string(missing.empty() ? "" : ", ") + #field;   \
    }

std::string missing_entries(int32_t kind, const void* table) {
    std::string missing;
    switch (kind) {
        case TFX_KIND_ATTENTION:
            TFX_REQUIRE_ENTRY(tfx_attention_table, attend)
            break;
        case TFX_KIND_MODEL:
            TFX_REQUIRE_ENTRY(tfx_model_table, load)
            TFX_REQUIRE_ENTRY(tfx_model_table, get_info)
            TFX_REQUIRE_ENTRY(tfx_model_table, forward)
            break;
        case TFX_KIND_TOKENIZER:
            TFX_REQUIRE_ENTRY(tfx_tokenizer_table, load)
            TFX_REQUIRE_ENTRY(tfx_tokenizer_table, encode)
            TFX_REQUIRE_ENTRY(tfx_tokenizer_table, decode)
            TFX_REQUIRE_ENTRY(tfx_tokenizer_table, token_to_id)
            TFX_REQUIRE_ENTRY(tfx_tokenizer_table, id_to_token)
            TFX_REQUIRE_ENTRY(tfx_tokenizer_table, vocab_size)
            break;
        case TFX_KIND_BACKEND:
            TFX_REQUIRE_ENTRY(tfx_backend_ops, alloc)
            TFX_REQUIRE_ENTRY(tfx_backend_ops, release)
            TFX_REQUIRE_ENTRY(tfx_backend_ops, map_host)
            TFX_REQUIRE_ENTRY(tfx_backend_ops, upload)
            TFX_REQUIRE_ENTRY(tfx_backend_ops, download)
            TFX_REQUIRE_ENTRY(tfx_backend_ops, run_kernel)
            break;
        case TFX_KIND_QUANTIZER:
            TFX_REQUIRE_ENTRY(tfx_quantizer_table, row_bytes)
            TFX_REQUIRE_ENTRY(tfx_quantizer_table, quantize)
            TFX_REQUIRE_ENTRY(tfx_quantizer_table, dequantize)
            break;
        default:
            break;
    }
    return missing;
}
#undef TFX_REQUIRE_ENTRY

// dlopen, descriptor and table checks, in this process (the libraries stay loaded until it
// exits: plugins may have handed out function pointers and static data that outlive any one
// user, and their dependencies (OpenMP, oneDNN) may still run threads during exit).
LoadedPlugin load_in_process(const PluginRecord& record) {
    if (record.status == PluginStatus::abi_mismatch || record.status == PluginStatus::bad_manifest) {
        fail(record.status, record.reason);
    }
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    plugin_guard::install();

    void* handle = nullptr;
    const tfx_plugin_descriptor* d = nullptr;
    {
        Phase phase(record.name, record.library, "loading (static constructors, tfx_plugin_entry)");
        ::dlerror();
        handle = ::dlopen(record.library.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) {
            const char* error = ::dlerror();
            std::string message = error != nullptr ? error : record.library.string() + ": cannot be loaded";
            fail(classify_load_failure(message, record.library), message);
        }
        plugin_guard::register_library(handle, record.name, record.library);
        void* symbol = ::dlsym(handle, TFX_PLUGIN_ENTRY_SYMBOL);
        if (symbol == nullptr) {
            ::dlclose(handle);
            fail(PluginStatus::not_a_plugin, "no '" TFX_PLUGIN_ENTRY_SYMBOL "' symbol in " + record.library.string());
        }
        d = reinterpret_cast<tfx_plugin_entry_fn>(symbol)();
    }
    auto refuse = [&](PluginStatus status, const std::string& reason) {
        ::dlclose(handle);
        fail(status, reason);
    };
    if (d == nullptr || d->magic != TFX_PLUGIN_MAGIC) {
        refuse(PluginStatus::not_a_plugin, "the descriptor's magic number is wrong");
    }
    if (d->abi_major != TFX_ABI_MAJOR) {
        refuse(PluginStatus::abi_mismatch, "built for tfx ABI " + std::to_string(d->abi_major) + "." +
                                               std::to_string(d->abi_minor) + " (descriptor), this host speaks ABI " +
                                               std::to_string(TFX_ABI_MAJOR) + "." + std::to_string(TFX_ABI_MINOR));
    }
    if (d->struct_size < offsetof(tfx_plugin_descriptor, get_table) + sizeof(d->get_table) || d->name == nullptr ||
        d->version == nullptr || d->manifest_json == nullptr || d->create == nullptr || d->destroy == nullptr ||
        d->get_table == nullptr || kind_name(d->kind).empty()) {
        refuse(PluginStatus::not_a_plugin,
               "the descriptor is incomplete (size " + std::to_string(d->struct_size) + ")");
    }
    if (record.manifest.is_object()) {
        nlohmann::json embedded = nlohmann::json::parse(d->manifest_json, nullptr, false);
        if (embedded != record.manifest) {
            refuse(PluginStatus::bad_manifest,
                   "the sidecar differs from the manifest embedded in " + record.library.filename().string());
        }
    }
    const void* table = nullptr;
    {
        Phase phase(record.name, record.library, "get_table()");
        table = d->get_table();
    }
    if (table == nullptr || *static_cast<const uint32_t*>(table) < sizeof(uint32_t)) {
        refuse(PluginStatus::not_a_plugin, "the function table is missing");
    }
    if (std::string missing = missing_entries(d->kind, table); !missing.empty()) {
        refuse(PluginStatus::not_a_plugin, "the " + std::string(kind_name(d->kind)) + " table of " +
                                               record.library.filename().string() + " lacks " + missing +
                                               ", which the ABI requires (NULL or beyond its struct_size " +
                                               std::to_string(*static_cast<const uint32_t*>(table)) + ")");
    }
    return LoadedPlugin{d, table, record.library};
}

enum class ProbePolicy { outside_install, all, none };

ProbePolicy probe_policy() {
    const char* env = std::getenv("TFX_PLUGIN_PROBE");
    const std::string value = env != nullptr ? env : "";
    if (value == "all" || value == "always") return ProbePolicy::all;
    if (value == "off" || value == "never" || value == "0") return ProbePolicy::none;
    if (!value.empty() && value != "auto") {
        log::write(log::Level::warn, "plugins", "TFX_PLUGIN_PROBE='" + value + "' is not auto, all or off; using auto");
    }
    return ProbePolicy::outside_install;
}

// Before a plugin from outside the install's own plugin folder is first loaded into this
// process, a child process loads it, scores it and creates an instance under a time limit;
// a crash, exit() or hang there refuses the plugin, naming it, instead of taking the run down.
void vet_before_loading(const PluginRecord& record) {
    if (plugin_guard::is_probe_child()) return;
    const ProbePolicy policy = probe_policy();
    if (policy == ProbePolicy::none) return;
    if (policy == ProbePolicy::outside_install) {
        static const fs::path own = [] {
            std::error_code ec;
            fs::path dir = fs::canonical(paths::library_dir() / "tfx" / "plugins", ec);
            return ec ? fs::path() : dir;
        }();
        std::error_code ec;
        fs::path folder = fs::canonical(record.library, ec).parent_path();
        if (!own.empty() && !ec && folder == own) return;
    }
    struct Verdict {
        std::uintmax_t size;
        fs::file_time_type mtime;
        PluginStatus status;
        std::string reason;
    };
    static std::mutex mutex;
    static std::map<fs::path, Verdict> verdicts;
    std::error_code ec;
    const std::uintmax_t size = fs::file_size(record.library, ec);
    const fs::file_time_type mtime = fs::last_write_time(record.library, ec);
    std::optional<Verdict> verdict;
    {
        std::lock_guard lock(mutex);
        auto it = verdicts.find(record.library);
        if (it != verdicts.end() && it->second.size == size && it->second.mtime == mtime) verdict = it->second;
    }
    if (!verdict) {
        PluginRecord trial = record;
        trial.status = PluginStatus::unknown;
        probe_isolated(trial, /*create_instance=*/true);
        verdict = Verdict{size, mtime, trial.status, trial.reason};
        log::write(log::Level::debug, "plugins",
                   "trial load of " + record.library.string() + " in a child process: " +
                       std::string(to_string(trial.status)) + (trial.reason.empty() ? "" : ": " + trial.reason));
        std::lock_guard lock(mutex);
        verdicts[record.library] = *verdict;
    }
    if (verdict->status == PluginStatus::crashed) {
        std::string message = "plugin '" + record.name + "' (" + record.library.string() + "): " + verdict->reason +
                              " when loaded on trial in a child process; it was not loaded into this one";
        log::write(log::Level::warn, "plugins", message);
        fail(PluginStatus::crashed, message);
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

void set_probe_timeout(std::chrono::milliseconds timeout) {
    g_probe_timeout_ms.store(static_cast<long>(timeout.count()));
}

LoadedPlugin load_plugin(const PluginRecord& record) {
    if (record.status == PluginStatus::abi_mismatch || record.status == PluginStatus::bad_manifest) {
        fail(record.status, record.reason);
    }
    vet_before_loading(record);
    return load_in_process(record);
}

std::string unavailable_reason(const tfx_plugin_descriptor& descriptor) {
    constexpr size_t kMaxReasonBytes = 300;
    const bool offered = descriptor.struct_size >= offsetof(tfx_plugin_descriptor, unavailable_reason) +
                                                       sizeof(descriptor.unavailable_reason) &&
                         descriptor.unavailable_reason != nullptr;
    const char* said = offered ? descriptor.unavailable_reason() : nullptr;
    std::string reason;
    for (size_t i = 0; said != nullptr && said[i] != '\0' && reason.size() < kMaxReasonBytes; ++i) {
        const auto c = static_cast<unsigned char>(said[i]);
        reason += c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c);
    }
    if (reason.empty()) return "the plugin reports it cannot run on this machine (score 0)";
    return reason + " (score 0)";
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
        if (d->score != nullptr) {
            Phase phase(record.name, record.library, "score()");
            record.score = d->score();
        } else {
            record.score = 100;
        }
        if (record.score <= 0) {
            record.status = PluginStatus::unavailable;
            Phase phase(record.name, record.library, "unavailable_reason()");
            record.reason = unavailable_reason(*d);
            return;
        }
        // A model instance needs a model session (config and weights), so its table (checked
        // by load_plugin) is all that is verified. Other kinds get a minimal host.
        if (create_instance && d->kind != TFX_KIND_MODEL) {
            tfx_host_services host{};
            host.struct_size = sizeof(host);
            host.abi_major = TFX_ABI_MAJOR;
            host.abi_minor = TFX_ABI_MINOR;
            host.log = [](void*, int32_t, const char*) {};
            host.config_json = [](void*) { return "{}"; };
            host.has_weight = [](void*, const char*) -> int32_t { return 0; };
            host.option = [](void*, const char*) -> const char* { return nullptr; };
            void* instance = nullptr;
            tfx_error error = sdk::empty_error();
            int32_t status = TFX_OK;
            {
                Phase phase(record.name, record.library, "create()");
                status = d->create(&host, &instance, &error);
            }
            if (status != TFX_OK) {
                record.status = PluginStatus::unavailable;
                record.reason = std::string("create failed: ") + error.message;
                return;
            }
            Phase phase(record.name, record.library, "destroy()");
            d->destroy(instance);
        }
        record.status = PluginStatus::ok;
        record.reason.clear();
    } catch (const std::exception& e) {
        std::string message = e.what();
        record.status = PluginStatus::not_a_plugin;
        for (auto s : {PluginStatus::abi_mismatch, PluginStatus::missing_dependency, PluginStatus::bad_manifest,
                       PluginStatus::crashed, PluginStatus::not_a_plugin}) {
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
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        probe_in_process(record, create_instance);
        return;
    }
    // Whatever this process has buffered must not be written twice (by a child's exit()).
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        plugin_guard::set_probe_child();
        ::dup2(STDERR_FILENO, STDOUT_FILENO);  // a plugin's chatter never reaches our stdout
        g_probe_report_fd = fds[1];
        probe_in_process(record, create_instance);
        nlohmann::json out = {{"status", static_cast<int>(record.status)},
                              {"reason", record.reason},
                              {"score", record.score},
                              {"name", record.name},
                              {"kind", record.kind},
                              {"version", record.version},
                              {"abi_major", record.abi_major},
                              {"abi_minor", record.abi_minor}};
        std::string text = "result " + out.dump() + "\n";
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
    const std::chrono::milliseconds timeout = probe_timeout();
    std::string text;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool timed_out = false;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd p{fds[0], POLLIN, 0};
        int ready = ::poll(&p, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno != EINTR) break;
        if (ready <= 0) continue;
        char buffer[4096];
        ssize_t n = ::read(fds[0], buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    // The pipe closes when the child exits (or when it closes its end): wait for the exit
    // itself under the same deadline.
    int wstatus = 0;
    if (!timed_out) {
        for (;;) {
            pid_t done = ::waitpid(pid, &wstatus, WNOHANG);
            if (done == pid || (done < 0 && errno != EINTR)) break;
            if (std::chrono::steady_clock::now() >= deadline) {
                timed_out = true;
                break;
            }
            ::usleep(2000);
        }
    }
    if (timed_out) {
        ::kill(pid, SIGKILL);
        while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
        }
    }
    std::string phase, result;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("phase ", 0) == 0) phase = line.substr(6);
        if (line.rfind("result ", 0) == 0) result = line.substr(7);
    }
    const std::string during = phase.empty() ? "" : " during " + phase;
    if (timed_out) {
        record.status = PluginStatus::crashed;
        record.reason = "the plugin did not finish within " + seconds_text(timeout) + " s (hung" + during +
                        "; the limit is TFX_PLUGIN_PROBE_TIMEOUT)";
        return;
    }
    if (WIFSIGNALED(wstatus)) {
        record.status = PluginStatus::crashed;
        record.reason = "the plugin crashed" + during + " (signal " + std::to_string(WTERMSIG(wstatus)) + ": " +
                        strsignal(WTERMSIG(wstatus)) + ")";
        return;
    }
    nlohmann::json parsed = nlohmann::json::parse(result, nullptr, false);
    if (result.empty() || parsed.is_discarded() || !parsed.is_object()) {
        record.status = PluginStatus::crashed;
        record.reason = "the plugin called exit(" + std::to_string(WEXITSTATUS(wstatus)) + ")" + during +
                        " (the probe process ended without a report)";
        return;
    }
    record.status = static_cast<PluginStatus>(parsed.value("status", 0));
    record.reason = parsed.value("reason", "");
    record.score = parsed.value("score", -1);
    record.name = parsed.value("name", record.name);
    record.kind = parsed.value("kind", record.kind);
    record.version = parsed.value("version", record.version);
    record.abi_major = parsed.value("abi_major", record.abi_major);
    record.abi_minor = parsed.value("abi_minor", record.abi_minor);
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
