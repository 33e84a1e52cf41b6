// The plugin catalogue: finds plugin libraries on the search path, reads their sidecar
// manifests without loading them (each parsed once per process, at most 1 MiB), and loads
// them on demand (dlopen RTLD_NOW | RTLD_LOCAL, never unloaded). Every plugin that cannot be
// used gets one of a few distinct statuses with a reason a user can act on.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfx/tfx.h"

namespace tfx {

enum class PluginStatus {
    unknown,  // not probed yet
    ok,
    not_a_plugin,        // not a shared library, or no valid tfx descriptor
    abi_mismatch,        // built for another ABI major (from the sidecar or the descriptor)
    missing_dependency,  // the dynamic loader could not resolve a dependency
    unavailable,         // loads, but reports score 0 on this machine
    bad_manifest,        // sidecar unreadable, or different from the embedded manifest
    crashed,             // the probe process died (only from isolated probes)
    shadowed             // same kind and name found earlier on the search path
};

// A sidecar larger than this is refused (bad manifest) without being read.
inline constexpr std::uintmax_t kMaxSidecarBytes = 1024 * 1024;
// How long a probe child may take (load, score, create) before it is killed and the plugin
// reported as crashed (hung). TFX_PLUGIN_PROBE_TIMEOUT (seconds) overrides the default;
// set_probe_timeout overrides both.
inline constexpr std::chrono::milliseconds kDefaultProbeTimeout{10000};
void set_probe_timeout(std::chrono::milliseconds timeout);

std::string_view to_string(PluginStatus status);
std::string_view kind_name(int32_t kind);

struct PluginRecord {
    std::filesystem::path library;
    std::string name;  // from the sidecar, else from the file name
    std::string kind;
    std::string version;
    int abi_major = -1;
    int abi_minor = -1;
    nlohmann::json manifest;  // the sidecar, or null
    PluginStatus status = PluginStatus::unknown;
    std::string reason;
    int32_t score = -1;

    const nlohmann::json& provides() const;
};

struct LoadedPlugin {
    const tfx_plugin_descriptor* descriptor = nullptr;
    const void* table = nullptr;
    std::filesystem::path library;
};

// Loads the library into this process (kept loaded for the process's life) and validates
// its descriptor and its function table (every entry the ABI requires of its kind must be
// there). A plugin from outside the install's own plugin folder is first loaded on trial in
// a child process (probe_isolated, once per process and file; TFX_PLUGIN_PROBE=auto|all|off):
// if that crashes, calls exit() or hangs, it is refused as crashed, naming it. Throws
// sdk::Error whose message starts with the status name.
LoadedPlugin load_plugin(const PluginRecord& record);

class PluginCatalogue {
  public:
    // Scans the folders in order and reads sidecars; loads nothing.
    explicit PluginCatalogue(std::vector<std::filesystem::path> dirs);

    const std::vector<std::filesystem::path>& dirs() const { return dirs_; }
    std::vector<PluginRecord>& records() { return records_; }
    const std::vector<PluginRecord>& records() const { return records_; }

    // Probes every not-yet-failed record: loads it (in a child process when isolated, so a
    // plugin that crashes cannot take the caller down) and, when create_instance is set,
    // creates and destroys an instance too.
    void probe_all(bool isolated, bool create_instance);

    // Records of a kind whose manifest "provides.<key>" contains value (an array or an
    // object's keys), in search-path order, not yet known to be unusable.
    std::vector<const PluginRecord*> providing(std::string_view kind, std::string_view key,
                                               std::string_view value) const;
    std::vector<const PluginRecord*> of_kind(std::string_view kind) const;
    const PluginRecord* find(std::string_view name) const;

  private:
    std::vector<std::filesystem::path> dirs_;
    std::vector<PluginRecord> records_;
};

// Probes one record in this process: load, validate, score (and create/destroy). Updates
// status and reason; never throws.
void probe_in_process(PluginRecord& record, bool create_instance);
// The same in a forked child; a crash, an exit() or a hang (timeout) becomes status crashed,
// with the phase (loading, score(), create(), ...) it happened in.
void probe_isolated(PluginRecord& record, bool create_instance);

// Why a plugin whose score() is 0 cannot run, for "unavailable here: ...": its own words where
// its descriptor gives them (ABI 2.10 unavailable_reason; control characters replaced, at most
// a few hundred bytes), else a generic sentence.
std::string unavailable_reason(const tfx_plugin_descriptor& descriptor);

}  // namespace tfx
