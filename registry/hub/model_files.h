// Which files of a repo a model needs, asked of a source that is either the Hub or the cache
// alone: config.json, the weights (model.safetensors, else model.safetensors.index.json and
// the shards its weight_map names), then generation and tokenizer files.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "registry/hub/file_fetch.h"

namespace tfx::hub {

// include/exclude fnmatch patterns; '*' also matches '/', as in huggingface_hub.
class FileFilter {
  public:
    FileFilter(std::vector<std::string> include, std::vector<std::string> exclude);
    bool active() const { return !include_.empty() || !exclude_.empty(); }
    bool allows(const std::string& file) const;
    // Include patterns without wildcards: files to fetch beyond the model's own.
    std::vector<std::string> named_files() const;

  private:
    std::vector<std::string> include_, exclude_;
};

class FileSource {
  public:
    virtual ~FileSource() = default;
    virtual FileState get(const std::string& file) = 0;
    virtual std::filesystem::path path(const std::string& file) const = 0;  // of a Present file
};

struct ModelFiles {
    std::vector<std::string> present;
    std::vector<std::string> absent;              // the source says the repo lacks them
    std::optional<std::string> unknown_required;  // first required file the source cannot tell about
    std::vector<std::string> unknown_optional;
};

// Without filter patterns config.json and the weights are required: throws
// HubError(FileNotFound) when the source says the repo lacks them. `label` is "org/name@rev".
ModelFiles collect_model_files(FileSource& source, const FileFilter& filter, const std::string& label);

}  // namespace tfx::hub
