// Options and argument parsing shared by the model commands.
#include <charconv>

#include "apps/tfx/commands.h"
#include "core/json_file.h"
#include "tfx/sdk/error.hpp"

namespace tfx::cli {

void ModelOptions::add_to(CLI::App* cmd) {
    cmd->add_option("--model", model, "Model folder, or Hub id org/name[@revision]")->required();
    cmd->add_option("--device", device, "auto, cpu, or a backend plugin name")->capture_default_str();
    cmd->add_option("--attn-implementation", attn_implementation, "Attention plugin (default: config's, else eager)");
    cmd->add_option("--threads", threads, "Compute threads (default: all cores)");
    cmd->add_option("--kv-dtype", kv_dtype, "KV cache dtype: f32, bf16 or f16")->capture_default_str();
    cmd->add_option("--weight-format", weight_format,
                    "Pack linear weights into this format (f32, bf16, f16; default: as stored)");
    cmd->add_option("--revision", revision, "Hub branch, tag or commit (for a Hub id)");
    cmd->add_flag("--offline", offline, "Never touch the network; use the Hugging Face cache");
}

LoadOptions ModelOptions::session_options() const {
    LoadOptions so;
    so.plugin_paths = global_options().plugin_paths;
    so.device = device;
    so.attn_implementation = attn_implementation;
    so.num_threads = threads;
    so.kv_dtype = kv_dtype;
    so.weight_format = weight_format;
    if (!revision.empty()) so.revision = revision;
    so.offline = offline;
    so.on_download_progress = download_progress_reporter();
    return so;
}

void SamplingOptions::add_to(CLI::App* cmd) {
    max_new_opt_ = cmd->add_option("--max-new-tokens", max_new_tokens, "Tokens to generate");
    cmd->add_flag("--greedy", greedy, "Greedy decoding (argmax)");
    temperature_opt_ = cmd->add_option("--temperature", temperature, "Sampling temperature (> 0)");
    top_k_opt_ = cmd->add_option("--top-k", top_k, "Keep the k most likely tokens (0: off)");
    top_p_opt_ = cmd->add_option("--top-p", top_p, "Nucleus sampling mass in (0, 1]");
    min_p_opt_ = cmd->add_option("--min-p", min_p, "Drop tokens below min_p x the top probability");
    seed_opt_ = cmd->add_option("--seed", seed, "Random seed for sampling");
    penalty_opt_ =
        cmd->add_option("--repetition-penalty", repetition_penalty, "Penalty for tokens already seen (1: off)");
    cmd->add_flag("--ignore-eos", ignore_eos, "Do not stop at end-of-sequence tokens");
}

GenerationConfig SamplingOptions::resolve(const ModelSession& session) const {
    GenerationConfig g = GenerationConfig::from_model(
        session.config(), load_optional_json_file(session.model_dir() / "generation_config.json"));
    const bool sampling = *temperature_opt_ || *top_k_opt_ || *top_p_opt_ || *min_p_opt_ || *seed_opt_;
    if (greedy && sampling)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--greedy cannot be combined with sampling options");
    if (greedy) g.do_sample = false;
    if (sampling) g.do_sample = true;
    if (*max_new_opt_) {
        g.max_new_tokens = max_new_tokens;
        g.max_length.reset();
    }
    if (*temperature_opt_) g.temperature = temperature;
    if (*top_k_opt_) g.top_k = top_k;
    if (*top_p_opt_) g.top_p = top_p;
    if (*min_p_opt_) g.min_p = min_p;
    if (*penalty_opt_) g.repetition_penalty = repetition_penalty;
    if (*seed_opt_) g.seed = seed;
    g.ignore_eos = ignore_eos;
    return g;
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
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                             argument + ": expected comma-separated integer token ids, got '" + text + "'");
        }
        ids.push_back(id);
        p = next;
    }
    if (ids.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, argument + ": no token ids given");
    return ids;
}

}  // namespace tfx::cli
