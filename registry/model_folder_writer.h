// Writing a model folder (tfx quantize, tfx convert, tfx merge-lora) so that a failure never
// leaves half of one: everything goes into a hidden scratch folder beside the output, which is
// renamed onto it only when complete. A watchdog process removes the scratch folder if this
// process is killed (SIGKILL included) before that.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace tfx {

// Files of a model folder that hold weights (a written checkpoint replaces them).
bool is_weight_file(const std::filesystem::path& file);
// The source folder's config.json with its keys in file order (a writer rewrites it); throws
// naming the file when it is not a JSON object.
nlohmann::ordered_json read_source_config(const std::filesystem::path& config_path);

class ModelFolderWriter {
  public:
    // `out` must be absent or an empty folder, in an existing parent; throws sdk::Error naming
    // `option` (the command's argument) otherwise. Scratch folders left by writers that were
    // killed (their process is gone) are removed first.
    ModelFolderWriter(std::filesystem::path out, const std::string& option);
    ~ModelFolderWriter();
    ModelFolderWriter(const ModelFolderWriter&) = delete;
    ModelFolderWriter& operator=(const ModelFolderWriter&) = delete;

    // Where files go until commit().
    const std::filesystem::path& scratch() const { return scratch_; }
    // Copies the source folder's regular files that are not weights and not in `skip`
    // (config.json when the writer rewrites it): tokenizer, generation and other files.
    void copy_model_files(const std::filesystem::path& source, const std::set<std::string>& skip) const;
    // Moves the scratch folder onto the output; without it the destructor removes the scratch.
    void commit();

  private:
    // Starts /bin/sh reading a pipe from this process: it removes the scratch folder unless it
    // reads "commit" before the pipe closes (this process ended, however).
    void start_watchdog();
    void stop_watchdog();

    std::filesystem::path out_, scratch_;
    bool committed_ = false;
    int watchdog_pipe_ = -1;  // write end
    pid_t watchdog_pid_ = 0;
};

}  // namespace tfx
