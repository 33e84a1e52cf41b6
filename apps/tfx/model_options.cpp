// Options and argument parsing shared by the model commands.
#include <charconv>

#include "apps/tfx/commands.h"
#include "tfx/sdk/error.hpp"

namespace tfx::cli {

void ModelOptions::add_to(CLI::App* cmd) {
    cmd->add_option("--model", model, "Model folder (config.json + safetensors)")->required();
    cmd->add_option("--device", device, "auto, cpu, or a backend plugin name")->capture_default_str();
    cmd->add_option("--attn-implementation", attn_implementation, "Attention plugin (default: config's, else eager)");
    cmd->add_option("--threads", threads, "Compute threads (default: all cores)");
}

std::vector<int32_t> parse_ids(const std::string& text, const std::string& argument) {
    std::vector<int32_t> ids;
    const char* p = text.data();
    const char* end = p + text.size();
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ',')) ++p;
        if (p == end) break;
        int32_t id = 0;
        auto [next, ec] = std::from_chars(p, end, id);
        if (ec != std::errc() || (next < end && *next != ',' && *next != ' ')) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, argument + ": expected comma-separated integer token ids, got '" + text + "'");
        }
        ids.push_back(id);
        p = next;
    }
    if (ids.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, argument + ": no token ids given");
    return ids;
}

}  // namespace tfx::cli
