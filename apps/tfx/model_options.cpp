// Options and argument parsing shared by the model commands.
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <random>
#include <utility>

#include "apps/tfx/commands.h"
#include "core/json_file.h"
#include "core/log.h"
#include "core/tensor_parallel.h"
#include "tfx/sdk/error.hpp"

namespace tfx::cli {

void ModelOptions::add_to(CLI::App* cmd, bool tensor_parallel_option) {
    cmd->add_option("--model", model, "Model folder, or Hub id org/name[@revision]")->required();
    cmd->add_option("--device", device, "auto, cpu, or a backend plugin name (torch, ...)")
        ->envname("TFX_DEVICE")
        ->capture_default_str();
    cmd->add_option("--attn-implementation", attn_implementation, "Attention plugin (default: config's, else eager)");
    cmd->add_option("--threads", threads, "Compute threads (default: all cores)");
    cmd->add_option("--kv-dtype", kv_dtype, "KV cache dtype: f32, bf16 or f16")->capture_default_str();
    cmd->add_option("--weight-format", weight_format,
                    "Pack linear weights into this format (f32, bf16, f16, q8_0, q4_0; default: as stored)");
    cmd->add_option("--quantize", quantize, "Quantize linear weights at load: int8 (q8_0) or int4 (q4_0)")
        ->check(CLI::IsMember({"int8", "int4"}));
    cmd->add_option("--matmul-precision", matmul_precision,
                    "highest: f32 matmul inputs (the reference's accuracy); medium: bf16 weights times "
                    "bf16-rounded activations where the CPU has bf16 dot products (faster prefill)")
        ->check(CLI::IsMember({"highest", "medium"}))
        ->capture_default_str();
    cmd->add_option("--revision", revision, "Hub branch, tag or commit (for a Hub id)");
    cmd->add_flag("--offline", offline, "Never touch the network; use the Hugging Face cache");
    cmd->add_option("--lora", lora,
                    "A PEFT LoRA adapter folder, DIR[=NAME][:SCALE] (SCALE multiplies its lora_alpha scaling); "
                    "repeatable");
    cmd->add_flag("--merge-lora", merge_lora, "Merge the --lora adapters into the weights at load");
    if (!tensor_parallel_option) return;
    cmd->add_option("--tp", tensor_parallel,
                    "Tensor parallelism: shard each layer across the N processes of an MPI job, launched as "
                    "`mpirun -np N tfx ... --tp N` (every rank runs the command; rank 0 prints)")
        ->check(integer_at_least(1))
        ->capture_default_str();
}

LoadOptions ModelOptions::session_options() const {
    LoadOptions so;
    so.plugin_paths = global_options().plugin_paths;
    so.device = device;
    so.attn_implementation = attn_implementation;
    so.num_threads = threads;
    so.kv_dtype = kv_dtype;
    so.weight_format = weight_format;
    so.quantize = quantize;
    so.matmul_precision = matmul_precision;
    if (!revision.empty()) so.revision = revision;
    so.offline = offline;
    for (const std::string& spec : lora) so.lora.push_back(lora::parse_spec(spec, "--lora"));
    so.merge_lora = merge_lora;
    so.tensor_parallel = tensor_parallel;
    join_tensor_parallel(tensor_parallel);
    if (merge_lora && lora.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--merge-lora: no --lora adapter given");
    so.on_download_progress = download_progress_reporter();
    return so;
}

void join_tensor_parallel(int ranks) {
    // Every rank runs the same command; only rank 0 answers on stdout (errors show from all).
    // Commands that share input across ranks join early; the session then finds them joined.
    if (ranks <= 1 || TensorParallelGroup::joined() != nullptr) return;
    if (TensorParallelGroup::join(ranks).rank() != 0) {
        if (std::freopen("/dev/null", "w", stdout) == nullptr) std::cout.setstate(std::ios::badbit);
    }
}

void SamplingOptions::add_to(CLI::App* cmd) {
    max_new_opt_ = cmd->add_option("--max-new-tokens", max_new_tokens, "Tokens to generate");
    cmd->add_flag("--greedy", greedy, "Greedy decoding (argmax)");
    temperature_opt_ = cmd->add_option("--temperature", temperature, "Sampling temperature (finite, >= 1e-6)");
    top_k_opt_ = cmd->add_option("--top-k", top_k, "Keep the k most likely tokens (0: off)");
    top_p_opt_ = cmd->add_option("--top-p", top_p, "Nucleus sampling mass in (0, 1]");
    min_p_opt_ = cmd->add_option("--min-p", min_p, "Drop tokens below min_p x the top probability");
    seed_opt_ =
        cmd->add_option("--seed", seed, "Random seed for sampling (default: a fresh one each run, printed to stderr)");
    penalty_opt_ =
        cmd->add_option("--repetition-penalty", repetition_penalty, "Penalty for tokens already seen (1: off)");
    cmd->add_flag("--ignore-eos", ignore_eos, "Do not stop at end-of-sequence tokens");
    cmd->add_option("--generation-config", generation_config_file,
                    "A generation_config.json to decode with instead of the model's (its special tokens fill in "
                    "what FILE leaves unset), as transformers' generate(generation_config=...)");
}

namespace {

// A generation config's fields that tfx does not act on are named, never silently ignored.
void warn_unsupported(const sdk::Config& file, const std::string& path) {
    const std::vector<std::string> fields = GenerationConfig::unsupported_fields(file);
    if (fields.empty()) return;
    std::string list;
    for (const std::string& f : fields) list += (list.empty() ? "" : ", ") + f;
    log::write(log::Level::warn, "tfx", path + ": ignoring fields tfx does not act on: " + list);
}

}  // namespace

GenerationConfig SamplingOptions::resolve(const ModelSession& session) const {
    std::string generation_config = (session.model_dir() / "generation_config.json").string();
    const std::optional<sdk::Config> model_file = load_optional_json_file(generation_config);
    if (model_file) warn_unsupported(*model_file, generation_config);
    GenerationConfig g = GenerationConfig::from_model(session.config(), model_file);
    if (!generation_config_file.empty()) {
        const sdk::Config file = load_json_file(generation_config_file);
        warn_unsupported(file, generation_config_file);
        g = GenerationConfig::from_file(file, g);
        generation_config = generation_config_file;
    }
    const bool sampling = *temperature_opt_ || *top_k_opt_ || *top_p_opt_ || *min_p_opt_ || *seed_opt_;
    if (greedy && sampling) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "--greedy cannot be combined with sampling options (--temperature, --top-k, --top-p, "
                         "--min-p, --seed)");
    }
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
    if (*seed_opt_) {
        g.seed = seed;
    } else if (g.do_sample) {
        // A fresh seed per run, as transformers and llama.cpp draw one; printed so a run can be repeated.
        std::random_device device;
        g.seed = (static_cast<uint64_t>(device()) << 32) | device();
        // Under --tp every rank samples, and all must draw the same tokens: rank 0's seed.
        if (const TensorParallelGroup* group = TensorParallelGroup::joined()) g.seed = group->share_from_first(g.seed);
    }
    g.ignore_eos = ignore_eos;
    try {
        g.validate();
    } catch (const sdk::Error& e) {
        // validate() starts its message with the field's name: blame the option when it was given,
        // else the model's generation_config.json.
        const std::string message = e.what();
        const std::pair<const char*, CLI::Option*> fields[] = {{"max_new_tokens", max_new_opt_},
                                                               {"temperature", temperature_opt_},
                                                               {"top_k", top_k_opt_},
                                                               {"top_p", top_p_opt_},
                                                               {"min_p", min_p_opt_},
                                                               {"repetition_penalty", penalty_opt_}};
        for (const auto& [field, option] : fields) {
            if (message.rfind(std::string(field) + " ", 0) != 0) continue;
            if (*option) throw sdk::Error(e.code(), option->get_name() + ": " + message);
            throw sdk::Error(e.code(), generation_config + ": " + message);
        }
        throw sdk::Error(e.code(), generation_config + ": " + message);
    }
    // One write, so that the lines of ranks sharing a terminal under --tp do not interleave.
    if (g.do_sample) std::cerr << "seed: " + std::to_string(g.seed) + "\n";
    return g;
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& argument, const std::string& what) {
    std::vector<int64_t> values;
    const char* p = text.data();
    const char* end = p + text.size();
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ',')) ++p;
        if (p == end) break;
        int64_t value = 0;
        auto [next, ec] = std::from_chars(p, end, value);
        if (ec == std::errc::result_out_of_range) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, argument + ": '" + std::string(p, next) +
                                                           "' is out of range for " + what + " in '" + text + "'");
        }
        if (ec != std::errc() || (next < end && *next != ',' && *next != ' ')) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                             argument + ": expected comma-separated " + what + ", got '" + text + "'");
        }
        values.push_back(value);
        p = next;
    }
    if (values.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, argument + ": no " + what + " given");
    return values;
}

std::vector<int32_t> parse_ids(const std::string& text, const std::string& argument) {
    const std::string what = "integer token ids (0 to 2147483647, e.g. 1,2,3)";
    std::vector<int32_t> ids;
    for (int64_t id : parse_int_list(text, argument, what)) {
        if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                             argument + ": " + std::to_string(id) + " is out of range for " + what);
        }
        ids.push_back(static_cast<int32_t>(id));
    }
    return ids;
}

CLI::Validator integer_at_least(int64_t minimum) {
    const std::string expected = minimum == 1   ? "a positive integer"
                                 : minimum == 0 ? "an integer >= 0"
                                                : "an integer >= " + std::to_string(minimum);
    return CLI::Validator(
        [minimum, expected](std::string& input) -> std::string {
            int64_t value = 0;
            const char* end = input.data() + input.size();
            auto [next, ec] = std::from_chars(input.data(), end, value);
            if (ec != std::errc() || next != end || value < minimum)
                return "expected " + expected + ", got '" + input + "'";
            return {};
        },
        "INT>=" + std::to_string(minimum));
}

}  // namespace tfx::cli
