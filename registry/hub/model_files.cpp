#include "registry/hub/model_files.h"

#include <fnmatch.h>

#include <algorithm>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "registry/hub/hub.h"
#include "registry/hub/names.h"

namespace tfx::hub {
namespace {

constexpr const char* kConfig = "config.json";
constexpr const char* kSingleWeights = "model.safetensors";
constexpr const char* kWeightsIndex = "model.safetensors.index.json";
constexpr const char* kOptionalFiles[] = {"generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                          "special_tokens_map.json"};

bool matches_any(const std::vector<std::string>& patterns, const std::string& file) {
    return std::any_of(patterns.begin(), patterns.end(),
                       [&](const std::string& p) { return ::fnmatch(p.c_str(), file.c_str(), 0) == 0; });
}

// The shard names of an index's weight_map, checked: they become paths in the snapshot.
std::vector<std::string> read_shards(const std::filesystem::path& index_path, const std::string& label) {
    const std::string where = label + ": " + kWeightsIndex;
    std::ifstream in(index_path);
    nlohmann::json index = nlohmann::json::parse(in, nullptr, false);
    if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") ||
        !index["weight_map"].is_object()) {
        throw HubError(ErrorKind::Protocol, where + " is not a safetensors index (a JSON object with a weight_map)");
    }
    std::set<std::string> shards;
    for (const auto& [tensor, shard] : index["weight_map"].items()) {
        if (!shard.is_string())
            throw HubError(ErrorKind::Protocol, where + ": weight_map[\"" + tensor + "\"] is not a file name");
        const std::string name = shard.get<std::string>();
        check_repo_file(name, where);
        if (!name.ends_with(".safetensors")) {
            throw HubError(ErrorKind::Protocol, where + ": shard '" + name + "' is not a .safetensors file");
        }
        shards.insert(name);
    }
    if (shards.empty()) throw HubError(ErrorKind::Protocol, where + " names no shards");
    return {shards.begin(), shards.end()};
}

class Walk {
  public:
    Walk(FileSource& source, const FileFilter& filter, const std::string& label)
        : source_(source), filter_(filter), label_(label) {}

    void visit(const std::string& file, bool required) {
        if (!filter_.allows(file) || seen_.count(file) != 0) return;
        seen_.insert(file);
        record(file, source_.get(file), required);
    }

    void visit_weights(bool required) {
        const bool single_allowed = filter_.allows(kSingleWeights);
        const bool index_allowed = filter_.allows(kWeightsIndex);
        if (!single_allowed && !index_allowed) return;
        seen_.insert({kSingleWeights, kWeightsIndex});
        const FileState single = single_allowed ? source_.get(kSingleWeights) : FileState::Absent;
        if (single == FileState::Present) {
            files_.present.push_back(kSingleWeights);
            return;
        }
        const FileState index = index_allowed ? source_.get(kWeightsIndex) : FileState::Absent;
        if (index == FileState::Present) {
            files_.present.push_back(kWeightsIndex);
            for (const std::string& shard : read_shards(source_.path(kWeightsIndex), label_)) visit(shard, required);
            return;
        }
        const bool unknown = single == FileState::Unknown || index == FileState::Unknown;
        if (!unknown && required) {
            throw HubError(ErrorKind::FileNotFound, label_ + " has neither " + kSingleWeights + " nor " +
                                                        kWeightsIndex + " (tfx reads safetensors weights only)");
        }
        record(single_allowed ? kSingleWeights : kWeightsIndex, unknown ? FileState::Unknown : FileState::Absent,
               required);
    }

    ModelFiles take() { return std::move(files_); }

  private:
    void record(const std::string& file, FileState state, bool required) {
        switch (state) {
            case FileState::Present:
                files_.present.push_back(file);
                break;
            case FileState::Absent:
                if (required) throw HubError(ErrorKind::FileNotFound, "file " + file + " not found in " + label_);
                files_.absent.push_back(file);
                break;
            case FileState::Unknown:
                if (!required) {
                    files_.unknown_optional.push_back(file);
                } else if (!files_.unknown_required) {
                    files_.unknown_required = file;
                }
                break;
        }
    }

    FileSource& source_;
    const FileFilter& filter_;
    const std::string& label_;
    std::set<std::string> seen_;
    ModelFiles files_;
};

}  // namespace

FileFilter::FileFilter(std::vector<std::string> include, std::vector<std::string> exclude)
    : include_(std::move(include)), exclude_(std::move(exclude)) {
    for (const auto* patterns : {&include_, &exclude_}) {
        for (const std::string& p : *patterns) {
            if (p.empty()) throw HubError(ErrorKind::InvalidArgument, "empty --include/--exclude pattern");
        }
    }
    for (const std::string& file : named_files()) check_repo_file(file, "--include");
}

bool FileFilter::allows(const std::string& file) const {
    return (include_.empty() || matches_any(include_, file)) && !matches_any(exclude_, file);
}

std::vector<std::string> FileFilter::named_files() const {
    std::vector<std::string> files;
    for (const std::string& p : include_) {
        if (p.find_first_of("*?[") == std::string::npos) files.push_back(p);
    }
    return files;
}

ModelFiles collect_model_files(FileSource& source, const FileFilter& filter, const std::string& label) {
    const bool required = !filter.active();
    Walk walk(source, filter, label);
    walk.visit(kConfig, required);
    walk.visit_weights(required);
    for (const char* file : kOptionalFiles) walk.visit(file, false);
    for (const std::string& file : filter.named_files()) walk.visit(file, false);
    return walk.take();
}

}  // namespace tfx::hub
