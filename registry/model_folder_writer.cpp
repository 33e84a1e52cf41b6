#include "registry/model_folder_writer.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "core/json_file.h"
#include "tfx/sdk/error.hpp"

namespace tfx {
namespace fs = std::filesystem;

namespace {

constexpr const char* kScratchTag = ".tmp-";

// ".NAME.tmp-PID" for output NAME.
std::string scratch_name(const fs::path& out, pid_t pid) {
    return "." + out.filename().string() + kScratchTag + std::to_string(pid);
}

// Scratch folders of this output whose writer process no longer exists (killed mid-write).
void remove_abandoned_scratch(const fs::path& parent, const fs::path& out) {
    const std::string prefix = "." + out.filename().string() + kScratchTag;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(parent, ec)) {
        const std::string name = entry.path().filename().string();
        if (!name.starts_with(prefix)) continue;
        const std::string pid_text = name.substr(prefix.size());
        if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
        const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
        const bool alive = ::kill(pid, 0) == 0 || errno == EPERM;
        if (!alive) fs::remove_all(entry.path(), ec);
    }
}

}  // namespace

bool is_weight_file(const fs::path& file) {
    const std::string name = file.filename().string();
    for (const char* ending : {".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json", ".pt", ".pth",
                               ".gguf", ".h5", ".msgpack", ".onnx", ".ckpt"}) {
        if (name.ends_with(ending)) return true;
    }
    return false;
}

nlohmann::ordered_json read_source_config(const fs::path& config_path) {
    nlohmann::ordered_json config = nlohmann::ordered_json::parse(read_text_file(config_path), nullptr, false);
    if (config.is_discarded() || !config.is_object()) {
        throw sdk::Error(TFX_ERR_FORMAT, config_path.string() + ": not a JSON object");
    }
    return config;
}

ModelFolderWriter::ModelFolderWriter(fs::path out, const std::string& option) : out_(std::move(out)) {
    std::error_code ec;
    if (out_.filename().empty()) out_ = out_.parent_path();  // "dir/" names "dir"
    if (fs::exists(out_, ec) && (!fs::is_directory(out_, ec) || !fs::is_empty(out_, ec))) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         option + ": " + out_.string() + " already exists and is not an empty folder; name a new one");
    }
    const fs::path parent = fs::absolute(out_).parent_path();
    if (!fs::is_directory(parent, ec)) {
        throw sdk::Error(TFX_ERR_NOT_FOUND, option + ": the folder " + parent.string() + " does not exist");
    }
    remove_abandoned_scratch(parent, out_);
    scratch_ = parent / scratch_name(out_, ::getpid());
    fs::remove_all(scratch_, ec);
    // The watchdog first: a SIGKILL right after the folder appears must find it on guard.
    start_watchdog();
    if (!fs::create_directory(scratch_, ec)) {
        stop_watchdog();
        throw sdk::Error(TFX_ERR_IO, option + ": cannot create " + scratch_.string() + ": " + ec.message());
    }
}

void ModelFolderWriter::start_watchdog() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;  // no watchdog: a later writer still clears what a kill leaves
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO);
    // Ignores the terminal's Ctrl-C (this process cleans up after it itself) and waits for the verdict.
    const char* script = "trap '' INT TERM HUP; read verdict; [ \"$verdict\" = commit ] || rm -rf -- \"$1\"";
    const std::string scratch = scratch_.string();
    const char* argv[] = {"sh", "-c", script, "tfx-scratch-watchdog", scratch.c_str(), nullptr};
    pid_t pid = 0;
    const int spawned = posix_spawn(&pid, "/bin/sh", &actions, nullptr, const_cast<char* const*>(argv), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[0]);
    if (spawned != 0) {
        ::close(fds[1]);
        return;
    }
    watchdog_pipe_ = fds[1];
    watchdog_pid_ = pid;
}

void ModelFolderWriter::stop_watchdog() {
    if (watchdog_pipe_ < 0) return;
    ::close(watchdog_pipe_);  // EOF without "commit": the watchdog removes what is left, if anything
    ::waitpid(watchdog_pid_, nullptr, 0);
    watchdog_pipe_ = -1;
}

ModelFolderWriter::~ModelFolderWriter() {
    std::error_code ec;
    if (!committed_) fs::remove_all(scratch_, ec);
    stop_watchdog();
}

void ModelFolderWriter::copy_model_files(const fs::path& source, const std::set<std::string>& skip) const {
    for (const auto& file : fs::directory_iterator(source)) {
        const std::string name = file.path().filename().string();
        if (skip.contains(name) || is_weight_file(file.path()) || !file.is_regular_file()) continue;
        fs::copy_file(file.path(), scratch_ / name);
        // A copy of a read-only source (a Hub cache snapshot) is the user's to edit, as a written file is.
        fs::permissions(scratch_ / name, fs::perms::owner_write, fs::perm_options::add);
    }
}

void ModelFolderWriter::commit() {
    std::error_code ec;
    fs::remove(out_, ec);  // an empty folder the rename would not replace
    fs::rename(scratch_, out_);
    committed_ = true;
    if (watchdog_pipe_ >= 0) {
        const char verdict[] = "commit\n";
        if (::write(watchdog_pipe_, verdict, sizeof verdict - 1) < 0) {
            // The watchdog is gone; the scratch folder it guarded is already renamed.
        }
    }
}

}  // namespace tfx
