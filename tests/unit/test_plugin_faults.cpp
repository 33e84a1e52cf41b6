// Plugins that crash, call exit(), hang or hand out incomplete tables, each a fixture built
// by the tests (tests/fixtures/plugins, test-plugins-faults/<fault>/): the host names the
// plugin (name, path) and what went wrong, through the real binaries and the library.
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "core/plugin_catalogue.h"
#include "error_of.h"
#include "test_data.h"

namespace fs = std::filesystem;
using tfx::PluginStatus;

namespace {

const fs::path kFaults = fs::path(TFX_FIXTURE_PLUGIN_DIR).parent_path() / "test-plugins-faults";
const std::string kTfx = (fs::path(TFX_PLUGINS_BIN).parent_path() / "tfx").string();
const std::string kTfxPlugins = TFX_PLUGINS_BIN;

fs::path fault_dir(const std::string& fault) {
    return kFaults / fault;
}
fs::path fault_library(const std::string& fault, const std::string& kind = "attention") {
    return fault_dir(fault) / ("libtfx-" + kind + "-fault-" + fault + ".so");
}

tfx::PluginRecord record_for(const fs::path& library) {
    tfx::PluginCatalogue catalogue({library.parent_path()});
    for (const auto& r : catalogue.records()) {
        if (r.library.filename() == library.filename()) return r;
    }
    ADD_FAILURE() << "no record for " << library;
    return {};
}

struct CommandResult {
    int exit_code = -1;  // -1 when killed by a signal
    int signal = 0;
    std::string output;  // stdout and stderr
    double seconds = 0;
};

CommandResult run(const std::string& command) {
    CommandResult result;
    auto start = std::chrono::steady_clock::now();
    FILE* pipe = popen(("OMP_WAIT_POLICY=PASSIVE " + command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) return result;
    char buffer[4096];
    while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) result.output.append(buffer, n);
    int status = pclose(pipe);
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // popen runs sh -c; a child killed by a signal shows as 128 + the signal.
    if (WIFEXITED(status)) {
        result.exit_code = WEXITSTATUS(status);
        if (result.exit_code > 128) result.signal = result.exit_code - 128;
    } else if (WIFSIGNALED(status)) {
        result.signal = WTERMSIG(status);
    }
    return result;
}

// `tfx generate` over the shared tinystories model with extra plugin folders first.
std::string generate(const fs::path& model, const fs::path& plugin_dir, const std::string& extra = "") {
    return kTfx + " --plugin-path " + plugin_dir.string() + " generate --model " + model.string() +
           " \"Once upon a time\" --max-new-tokens 2 --greedy " + extra;
}

bool has(const CommandResult& r, const std::string& text) {
    return r.output.find(text) != std::string::npos;
}

}  // namespace

// --- function tables ---------------------------------------------------------------------

TEST(PluginFaults, NullAttendIsALoadErrorNamingTheEntry) {
    tfx::PluginRecord r = record_for(fault_library("null-attend"));
    tfx::probe_in_process(r, true);
    EXPECT_EQ(r.status, PluginStatus::not_a_plugin);
    EXPECT_NE(r.reason.find("lacks attend"), std::string::npos) << r.reason;
    EXPECT_NE(
        tfx::test::error_of([&] { tfx::load_plugin(record_for(fault_library("null-attend"))); }).find("lacks attend"),
        std::string::npos);
}

TEST(PluginFaults, VerifyFailsNullAttend) {
    CommandResult r = run(kTfxPlugins + " --plugin-path " + fault_dir("null-attend").string() + " verify");
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_TRUE(has(r, "FAIL  " + fault_library("null-attend").string() + ": not a plugin")) << r.output;
    EXPECT_TRUE(has(r, "lacks attend")) << r.output;
}

TEST(PluginFaults, GenerateRefusesNullAttendNamingThePlugin) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    CommandResult r = run(generate(model, fault_dir("null-attend"), "--attn-implementation fault"));
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(r.signal, 0) << r.output;
    EXPECT_TRUE(has(r, "plugin 'fault-null-attend' (" + fault_library("null-attend").string() + ")")) << r.output;
    EXPECT_TRUE(has(r, "lacks attend")) << r.output;
}

// --- crashes, exit() and hangs caught by the trial load in a child --------------------------

TEST(PluginFaults, TrialLoadContainsASegfaultInTheEntryPoint) {
    tfx::PluginRecord r = record_for(fault_library("segv-entry"));
    tfx::probe_isolated(r, false);
    EXPECT_EQ(r.status, PluginStatus::crashed);
    EXPECT_NE(r.reason.find("crashed during loading"), std::string::npos) << r.reason;
    EXPECT_NE(r.reason.find("signal 11"), std::string::npos) << r.reason;
    // Loading it into this process is refused after the trial load, and this process lives.
    std::string error = tfx::test::error_of([&] { tfx::load_plugin(record_for(fault_library("segv-entry"))); });
    EXPECT_NE(error.find("'fault-segv-entry' (" + fault_library("segv-entry").string() + ")"), std::string::npos)
        << error;
}

TEST(PluginFaults, TrialLoadReportsExitInConstructor) {
    tfx::PluginRecord r = record_for(fault_library("exit-ctor"));
    tfx::probe_isolated(r, true);
    EXPECT_EQ(r.status, PluginStatus::crashed);
    EXPECT_NE(r.reason.find("called exit(1) during create()"), std::string::npos) << r.reason;
}

TEST(PluginFaults, GenerateNamesAPluginThatSegfaultsInItsEntryPoint) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    CommandResult r = run(generate(model, fault_dir("segv-entry"), "--attn-implementation fault"));
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(r.signal, 0) << r.output;
    EXPECT_TRUE(has(r, "plugin 'fault-segv-entry' (" + fault_library("segv-entry").string() + ")")) << r.output;
    EXPECT_TRUE(has(r, "crashed during loading")) << r.output;
}

TEST(PluginFaults, GenerateSurvivesABackendThatSegfaultsInScore) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    CommandResult r = run(generate(model, fault_dir("segv-score")));
    EXPECT_EQ(r.exit_code, 0) << r.output;  // the in-tree cpu backend runs it
    EXPECT_TRUE(has(r, "plugin 'fault-segv-score' (" + fault_library("segv-score", "backend").string() + ")"))
        << r.output;
    EXPECT_TRUE(has(r, "crashed during score() (signal 11")) << r.output;
}

TEST(PluginFaults, GenerateNamesAPluginThatCallsExitInItsConstructor) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    CommandResult r = run(generate(model, fault_dir("exit-ctor"), "--attn-implementation fault"));
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_TRUE(has(r, "plugin 'fault-exit-ctor' (" + fault_library("exit-ctor").string() + ")")) << r.output;
    EXPECT_TRUE(has(r, "called exit(1) during create()")) << r.output;
}

TEST(PluginFaults, GenerateNamesAShadowingPluginWhoseCreateCrashes) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    const fs::path shadow = fault_dir("shadow-eager") / "libtfx-attention-eager.so";
    CommandResult r = run(generate(model, fault_dir("shadow-eager")));
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(r.signal, 0) << r.output;
    EXPECT_TRUE(has(r, "plugin 'eager' (" + shadow.string() + ")")) << r.output;
    EXPECT_TRUE(has(r, "crashed during create() (signal 11")) << r.output;
}

TEST(PluginsCommand, HangInScoreIsKilledAfterTheProbeTimeout) {
    const std::string bin = kTfxPlugins + " --plugin-path " + fault_dir("hang-score").string();
    CommandResult list = run("TFX_PLUGIN_PROBE_TIMEOUT=1 " + bin + " list");
    EXPECT_EQ(list.exit_code, 0) << list.output;
    EXPECT_LT(list.seconds, 8.0) << list.output;
    EXPECT_TRUE(has(list, "crashed: the plugin did not finish within 1 s (hung during score()")) << list.output;

    CommandResult verify = run(bin + " --probe-timeout 0.5 verify");
    EXPECT_NE(verify.exit_code, 0) << verify.output;
    EXPECT_LT(verify.seconds, 8.0) << verify.output;
    EXPECT_TRUE(has(verify, "FAIL  " + fault_library("hang-score").string() + ": crashed")) << verify.output;
    EXPECT_TRUE(has(verify, "within 0.5 s")) << verify.output;
}

// --- the in-process last resort: faults after loading, or with the trial load off ----------

TEST(PluginFaults, SegfaultInAttendNamesThePluginBeforeDying) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    CommandResult r = run(generate(model, fault_dir("segv-attend"), "--attn-implementation fault"));
    EXPECT_EQ(r.signal, 11) << r.output;
    EXPECT_TRUE(has(r, "tfx: plugin fault-segv-attend (" + fault_library("segv-attend").string() +
                           ") crashed (signal 11: Segmentation fault) during attend()"))
        << r.output;
}

TEST(PluginFaults, ExitInAttendNamesThePlugin) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    CommandResult r = run(generate(model, fault_dir("exit-attend"), "--attn-implementation fault"));
    EXPECT_EQ(r.exit_code, 3) << r.output;
    EXPECT_TRUE(has(r, "tfx: plugin fault-exit-attend (" + fault_library("exit-attend").string() +
                           ") called exit() during attend()"))
        << r.output;
}

TEST(PluginFaults, WithoutTrialLoadACrashInCreateNamesPluginAndPhase) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    const fs::path shadow = fault_dir("shadow-eager") / "libtfx-attention-eager.so";
    CommandResult r = run("TFX_LOG_LEVEL=debug TFX_PLUGIN_PROBE=off " + generate(model, fault_dir("shadow-eager")));
    EXPECT_EQ(r.signal, 11) << r.output;
    EXPECT_TRUE(
        has(r, "tfx: plugin eager (" + shadow.string() + ") crashed (signal 11: Segmentation fault) during create()"))
        << r.output;
}

TEST(PluginFaults, WithoutTrialLoadExitInConstructorNamesPluginAndPhase) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    CommandResult r =
        run("TFX_PLUGIN_PROBE=off " + generate(model, fault_dir("exit-ctor"), "--attn-implementation fault"));
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_TRUE(has(
        r, "tfx: plugin fault-exit-ctor (" + fault_library("exit-ctor").string() + ") called exit() during create()"))
        << r.output;
}

// --- search path -----------------------------------------------------------------------------

TEST(PluginsCommand, NonexistentPluginPathIsAnError) {
    const fs::path missing = fs::temp_directory_path() / ("tfx-no-such-folder-" + std::to_string(getpid()));
    CommandResult list = run(kTfxPlugins + " --plugin-path " + missing.string() + " list");
    EXPECT_EQ(list.exit_code, 1) << list.output;
    EXPECT_TRUE(has(list, "--plugin-path " + missing.string() + ": no such folder")) << list.output;

    CommandResult env = run(kTfx + " --plugin-path " + missing.string() + " env");
    EXPECT_NE(env.exit_code, 0) << env.output;
    EXPECT_TRUE(has(env, "--plugin-path " + missing.string() + ": no such folder")) << env.output;
}
