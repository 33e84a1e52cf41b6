// Loader outcomes, each from a real fixture plugin built by the tests.
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "core/plugin_catalogue.h"

namespace fs = std::filesystem;
using tfx::PluginStatus;

namespace {

const fs::path kFixtures = TFX_FIXTURE_PLUGIN_DIR;

tfx::PluginRecord record_for(const fs::path& library) {
    tfx::PluginCatalogue catalogue({library.parent_path()});
    for (const auto& r : catalogue.records()) {
        if (r.library.filename() == library.filename()) return r;
    }
    ADD_FAILURE() << "no record for " << library;
    return {};
}

tfx::PluginRecord probe(const std::string& file, bool isolated, bool create) {
    tfx::PluginRecord r = record_for(kFixtures / file);
    if (isolated) {
        tfx::probe_isolated(r, create);
    } else {
        tfx::probe_in_process(r, create);
    }
    return r;
}

struct CommandResult {
    int exit_code;
    std::string output;
};

CommandResult run(const std::string& command) {
    CommandResult result{-1, ""};
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) return result;
    char buffer[4096];
    while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) result.output.append(buffer, n);
    int status = pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

// A scratch folder holding every fixture plus a copy of the good plugin whose sidecar
// claims ABI major 99.
fs::path make_mixed_plugin_dir() {
    fs::path dir = fs::temp_directory_path() / ("tfx-mixed-plugins-" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const auto& entry : fs::directory_iterator(kFixtures)) {
        fs::copy_file(entry.path(), dir / entry.path().filename());
    }
    fs::copy_file(kFixtures / "libtfx-attention-fixture-good.so", dir / "libtfx-attention-fixture-future.so");
    std::ifstream in(kFixtures / "libtfx-attention-fixture-good.json");
    nlohmann::json sidecar = nlohmann::json::parse(in);
    sidecar["name"] = "fixture-future";
    sidecar["abi"] = {{"major", 99}, {"minor", 0}};
    std::ofstream(dir / "libtfx-attention-fixture-future.json") << sidecar.dump();
    return dir;
}

}  // namespace

TEST(Catalogue, ReadsSidecarsWithoutLoading) {
    tfx::PluginCatalogue catalogue({kFixtures});
    const tfx::PluginRecord* good = catalogue.find("fixture-good");
    ASSERT_NE(good, nullptr);
    EXPECT_EQ(good->kind, "attention");
    EXPECT_EQ(good->version, "1.0.0");
    EXPECT_EQ(good->abi_major, TFX_ABI_MAJOR);
    EXPECT_EQ(good->status, PluginStatus::unknown);
    EXPECT_EQ(catalogue.providing("attention", "attn_implementations", "fixture").size(), 5u);
}

TEST(Catalogue, GoodPluginLoadsAndCreates) {
    auto r = probe("libtfx-attention-fixture-good.so", false, true);
    EXPECT_EQ(r.status, PluginStatus::ok) << r.reason;
    EXPECT_EQ(r.score, 100);
    tfx::LoadedPlugin plugin = tfx::load_plugin(r);
    EXPECT_STREQ(plugin.descriptor->name, "fixture-good");
    EXPECT_EQ(static_cast<const tfx_attention_table*>(plugin.table)->struct_size, sizeof(tfx_attention_table));
}

TEST(Catalogue, SharedLibraryWithoutDescriptorIsNotAPlugin) {
    auto r = probe("libfixture-not-a-plugin.so", false, false);
    EXPECT_EQ(r.status, PluginStatus::not_a_plugin);
    EXPECT_NE(r.reason.find("tfx_plugin_entry"), std::string::npos) << r.reason;
}

TEST(Catalogue, GarbageFileIsNotAPlugin) {
    fs::path dir = fs::temp_directory_path() / ("tfx-garbage-" + std::to_string(getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "libtfx-model-garbage.so") << "this is not an ELF file";
    tfx::PluginRecord r = record_for(dir / "libtfx-model-garbage.so");
    tfx::probe_in_process(r, false);
    EXPECT_EQ(r.status, PluginStatus::not_a_plugin);
    EXPECT_NE(r.reason.find("libtfx-model-garbage.so"), std::string::npos) << r.reason;
    fs::remove_all(dir);
}

TEST(Catalogue, NonElfLibraryQuotesTheLoaderWithoutAStrayErrno) {
    fs::path dir = fs::temp_directory_path() / ("tfx-non-elf-" + std::to_string(getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "libtfx-model-garbage.so") << std::string(4096, 'x');
    tfx::PluginRecord r = record_for(dir / "libtfx-model-garbage.so");
    tfx::probe_in_process(r, false);
    EXPECT_EQ(r.status, PluginStatus::not_a_plugin);
    EXPECT_NE(r.reason.find("invalid ELF header"), std::string::npos) << r.reason;
    EXPECT_EQ(r.reason.find("Bad file descriptor"), std::string::npos) << r.reason;
    fs::remove_all(dir);
}

TEST(Catalogue, OversizedSidecarIsRefusedWithoutBeingRead) {
    fs::path dir = fs::temp_directory_path() / ("tfx-big-sidecar-" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy_file(kFixtures / "libtfx-attention-fixture-good.so", dir / "libtfx-attention-fixture-good.so");
    std::ifstream in(kFixtures / "libtfx-attention-fixture-good.json");
    nlohmann::json sidecar = nlohmann::json::parse(in);
    sidecar["padding"] = std::string(2 * 1024 * 1024, 'x');  // valid JSON, just too large
    std::ofstream(dir / "libtfx-attention-fixture-good.json") << sidecar.dump();
    auto start = std::chrono::steady_clock::now();
    tfx::PluginCatalogue catalogue({dir});
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
    ASSERT_EQ(catalogue.records().size(), 1u);
    const tfx::PluginRecord& r = catalogue.records()[0];
    EXPECT_EQ(r.status, PluginStatus::bad_manifest);
    EXPECT_NE(r.reason.find("over the limit of 1048576 bytes (1 MiB)"), std::string::npos) << r.reason;
    EXPECT_TRUE(catalogue.of_kind("attention").empty());
    EXPECT_THROW(tfx::load_plugin(r), std::exception);
    fs::remove_all(dir);
}

TEST(Catalogue, SidecarIsParsedOncePerProcess) {
    fs::path dir = fs::temp_directory_path() / ("tfx-sidecar-once-" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path sidecar = dir / "libtfx-attention-once.json";
    std::ofstream(dir / "libtfx-attention-once.so") << "not loaded by this test";
    std::ofstream(sidecar) << R"({"name": "first", "kind": "attention", "abi": {"major": 2, "minor": 0}})";
    const auto mtime = fs::last_write_time(sidecar);
    EXPECT_EQ(tfx::PluginCatalogue({dir}).records().at(0).name, "first");
    // Same size and modification time: the second catalogue reuses the parse, not the file.
    std::ofstream(sidecar) << R"({"name": "xxxxx", "kind": "attention", "abi": {"major": 2, "minor": 0}})";
    fs::last_write_time(sidecar, mtime);
    EXPECT_EQ(tfx::PluginCatalogue({dir}).records().at(0).name, "first");
    // A changed file is read again.
    std::ofstream(sidecar) << R"({"name": "second", "kind": "attention", "abi": {"major": 2, "minor": 0}})";
    EXPECT_EQ(tfx::PluginCatalogue({dir}).records().at(0).name, "second");
    fs::remove_all(dir);
}

TEST(Catalogue, DescriptorWithOtherAbiMajorIsRefusedNamingBoth) {
    auto r = probe("libtfx-attention-fixture-abi99.so", false, false);
    EXPECT_EQ(r.status, PluginStatus::abi_mismatch);
    EXPECT_NE(r.reason.find("ABI 99.0"), std::string::npos) << r.reason;
    EXPECT_NE(r.reason.find("ABI " + std::to_string(TFX_ABI_MAJOR) + "." + std::to_string(TFX_ABI_MINOR)),
              std::string::npos)
        << r.reason;
}

TEST(Catalogue, SidecarWithOtherAbiMajorIsRefusedBeforeLoading) {
    fs::path dir = make_mixed_plugin_dir();
    tfx::PluginRecord r = record_for(dir / "libtfx-attention-fixture-future.so");
    EXPECT_EQ(r.status, PluginStatus::abi_mismatch);
    EXPECT_NE(r.reason.find("99.0 (sidecar)"), std::string::npos) << r.reason;
    EXPECT_THROW(tfx::load_plugin(r), std::exception);
    fs::remove_all(dir);
}

TEST(Catalogue, SidecarThatDiffersFromTheEmbeddedManifestIsReported) {
    fs::path dir = fs::temp_directory_path() / ("tfx-edited-sidecar-" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy_file(kFixtures / "libtfx-attention-fixture-good.so", dir / "libtfx-attention-fixture-good.so");
    std::ifstream in(kFixtures / "libtfx-attention-fixture-good.json");
    nlohmann::json sidecar = nlohmann::json::parse(in);
    sidecar["provides"]["attn_implementations"] = {"something-else"};
    std::ofstream(dir / "libtfx-attention-fixture-good.json") << sidecar.dump();
    tfx::PluginRecord r = record_for(dir / "libtfx-attention-fixture-good.so");
    tfx::probe_isolated(r, true);
    EXPECT_EQ(r.status, PluginStatus::bad_manifest);
    EXPECT_NE(r.reason.find("sidecar differs from the manifest embedded"), std::string::npos) << r.reason;
    fs::remove_all(dir);
}

TEST(Catalogue, MissingDependencyQuotesTheLoader) {
    auto r = probe("libtfx-attention-fixture-missingdep.so", false, false);
    EXPECT_EQ(r.status, PluginStatus::missing_dependency);
    EXPECT_NE(r.reason.find("libtfx_fixture_dependency.so"), std::string::npos) << r.reason;
}

TEST(Catalogue, ZeroScoreIsUnavailableInThePluginsOwnWords) {
    auto r = probe("libtfx-attention-fixture-unavailable.so", false, false);
    EXPECT_EQ(r.status, PluginStatus::unavailable);
    EXPECT_EQ(r.score, 0);
    EXPECT_EQ(r.reason, "no fixture accelerator on this machine (score 0)");
}

// A 2.9 descriptor ends before unavailable_reason; a reason's control characters cannot reach
// the terminal, and a runaway one is cut.
TEST(Catalogue, UnavailableReasonIsReadOnlyWhereTheDescriptorHasItAndIsSanitised) {
    static std::string said;
    tfx_plugin_descriptor d{};
    d.struct_size = sizeof(d);
    d.unavailable_reason = [] { return said.c_str(); };
    const std::string generic = "the plugin reports it cannot run on this machine (score 0)";
    said = "no widget";
    EXPECT_EQ(tfx::unavailable_reason(d), "no widget (score 0)");
    said = "";
    EXPECT_EQ(tfx::unavailable_reason(d), generic);
    said = "bell\a and\nnewline \x1b[31mred";
    EXPECT_EQ(tfx::unavailable_reason(d), "bell? and?newline ?[31mred (score 0)");
    said = std::string(5000, 'x');
    EXPECT_EQ(tfx::unavailable_reason(d), std::string(300, 'x') + " (score 0)");
    d.unavailable_reason = [] { return static_cast<const char*>(nullptr); };
    EXPECT_EQ(tfx::unavailable_reason(d), generic);
    d.unavailable_reason = [] { return "never read"; };
    d.struct_size = offsetof(tfx_plugin_descriptor, unavailable_reason);  // a 2.9 plugin
    EXPECT_EQ(tfx::unavailable_reason(d), generic);
}

TEST(Catalogue, CrashInCreateIsContainedByIsolatedProbe) {
    auto r = probe("libtfx-attention-fixture-crash.so", true, true);
    EXPECT_EQ(r.status, PluginStatus::crashed);
    EXPECT_NE(r.reason.find("signal 11"), std::string::npos) << r.reason;
    // Loading alone is fine: the crash is in create().
    auto listed = probe("libtfx-attention-fixture-crash.so", true, false);
    EXPECT_EQ(listed.status, PluginStatus::ok) << listed.reason;
}

TEST(Catalogue, SecondPluginWithSameNameIsShadowed) {
    fs::path dir = make_mixed_plugin_dir();
    tfx::PluginCatalogue catalogue({kFixtures, dir});
    int shadowed = 0;
    for (const auto& r : catalogue.records()) shadowed += r.status == PluginStatus::shadowed;
    EXPECT_EQ(shadowed, 5);  // every fixture plugin of dir but the renamed ABI-99 copy
    fs::remove_all(dir);
}

TEST(PluginsCommand, ListAndVerifySurviveEveryFault) {
    fs::path dir = make_mixed_plugin_dir();
    const std::string bin = std::string(TFX_PLUGINS_BIN) + " --plugin-path " + dir.string();

    CommandResult list = run(bin + " list");
    EXPECT_EQ(list.exit_code, 0) << list.output;
    for (const char* expected : {"fixture-good", "not a plugin", "ABI mismatch: built for tfx ABI 99.0 (sidecar)",
                                 "ABI mismatch: built for tfx ABI 99.0 (descriptor)", "missing dependency",
                                 "libtfx_fixture_dependency.so", "unavailable here"}) {
        EXPECT_NE(list.output.find(expected), std::string::npos) << expected << "\n" << list.output;
    }

    CommandResult verify = run(bin + " verify");
    EXPECT_NE(verify.exit_code, 0) << verify.output;
    EXPECT_NE(verify.output.find("crashed"), std::string::npos) << verify.output;
    EXPECT_NE(verify.output.find("PASS  " + (dir / "libtfx-attention-fixture-good.so").string()), std::string::npos)
        << verify.output;

    CommandResult json = run(bin + " list --json");
    EXPECT_EQ(json.exit_code, 0);
    auto parsed = nlohmann::json::parse(json.output, nullptr, false);
    ASSERT_TRUE(parsed.is_array()) << json.output;

    CommandResult info = run(bin + " info fixture-good");
    EXPECT_EQ(info.exit_code, 0);
    EXPECT_NE(info.output.find("\"built_with_abi\""), std::string::npos) << info.output;
    fs::remove_all(dir);
}
