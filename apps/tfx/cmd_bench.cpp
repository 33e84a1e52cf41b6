// `tfx bench`, in the manner of llama-bench: prefill tokens/s for a p-token prompt and decode
// tokens/s over n generated tokens, per thread count; median and spread over repetitions
// after one warm-up run. Beside each rate, what it means for the hardware: decode streams
// every weight once per token (GB/s = weight bytes x tok/s), prefill does 2 flops per
// multiply-add of the linear layers per token, plus the output projection once for the last
// position's logits (GFLOP/s; embeddings are lookups and attention is left out); --roofline measures this machine's
// read bandwidth and FMA peak on the same thread count and prints each figure as a share of it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <optional>
#include <random>

#include <nlohmann/json.hpp>

#include "apps/tfx/commands.h"
#include "apps/tfx/roofline.h"
#include "core/forward_call.h"
#include "core/model_session.h"
#include "core/process_memory.h"

namespace tfx::cli {
namespace {

struct BenchOptions {
    std::string model;
    std::string device = "auto";
    std::string attn_implementation;
    std::string kv_dtype = "f32";
    std::string weight_format;
    std::string quantize;
    std::vector<std::string> lora;  // DIR[=NAME][:SCALE] each
    bool merge_lora = false;
    int tensor_parallel = 1;
    std::string matmul_precision = "highest";
    int64_t prompt = 128;
    int64_t generate = 64;
    std::string threads = "1,2";
    int repetitions = 5;
    bool json = false;
    bool roofline = false;
};

using Clock = std::chrono::steady_clock;

struct Timing {
    double prefill_s;
    double decode_s;
};

// One repetition: prefill the prompt into a fresh cache, then decode n tokens greedily.
Timing run_once(ModelSession& s, const std::vector<int32_t>& prompt, int64_t n) {
    const std::unique_ptr<PagedKvCache> cache = s.make_cache();
    const PagedKvCache::SeqId seq = cache->add();
    ForwardCall call(s, cache.get());
    auto t0 = Clock::now();
    std::span<const float> logits = call.run({.ids = prompt, .cache_seq = seq});
    auto t1 = Clock::now();
    for (int64_t i = 0; i < n; ++i) {
        const auto token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        logits = call.run({.ids = std::span(&token, 1), .cache_seq = seq});
    }
    auto t2 = Clock::now();
    return {std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t2 - t1).count()};
}

struct Stats {
    double median, min, max;
};

Stats stats(std::vector<double> rates) {
    std::sort(rates.begin(), rates.end());
    const size_t n = rates.size();
    const double median = n % 2 ? rates[n / 2] : 0.5 * (rates[n / 2 - 1] + rates[n / 2]);
    return {median, rates.front(), rates.back()};
}

void run_bench(const BenchOptions& o) {
    join_tensor_parallel(o.tensor_parallel);
    nlohmann::json rows = nlohmann::json::array();
    const std::string what = "positive thread counts (e.g. 1,2,4)";
    std::vector<int32_t> thread_counts;
    for (int64_t threads : parse_int_list(o.threads, "-t", what)) {
        if (threads <= 0 || threads > 4096) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                             "-t: expected " + what + " up to 4096, got " + std::to_string(threads));
        }
        thread_counts.push_back(static_cast<int32_t>(threads));
    }
    std::optional<uint64_t> resident;
    uint64_t weight_bytes = 0;
    for (int32_t threads : thread_counts) {
        LoadOptions so;
        so.plugin_paths = global_options().plugin_paths;
        so.device = o.device;
        so.attn_implementation = o.attn_implementation;
        so.num_threads = threads;
        so.kv_dtype = o.kv_dtype;
        so.weight_format = o.weight_format;
        so.quantize = o.quantize;
        so.matmul_precision = o.matmul_precision;
        for (const std::string& spec : o.lora) so.lora.push_back(lora::parse_spec(spec, "--lora"));
        so.merge_lora = o.merge_lora;
        so.tensor_parallel = o.tensor_parallel;
        so.on_download_progress = download_progress_reporter();
        auto session = AutoModel::from_pretrained(o.model, so);
        const tfx_model_info& info = session->info();
        if (info.output_kind != TFX_OUTPUT_LOGITS || info.num_layers == 0 || info.vocab_size <= 0) {
            throw sdk::Error(TFX_ERR_UNSUPPORTED, "--model " + o.model + ": bench needs a causal LM (such as " +
                                                      "LlamaForCausalLM), but this model is a " +
                                                      session->architecture() +
                                                      (info.num_layers == 0 ? ", which keeps no KV cache" : ""));
        }
        const WeightStore::Usage weights = session->weight_usage();
        const ModelSession::MatmulWork work = session->matmul_work();
        std::optional<Roofline> roofline;
        if (o.roofline) roofline = measure_roofline(threads);
        if (!o.json && threads == thread_counts.front()) {
            std::cout << "| model | threads | test | t/s (median) | min | max | reps | GB/s or GFLOP/s |"
                      << (o.roofline ? " roofline | % of it |\n" : "\n") << "|---|---|---|---|---|---|---|---|"
                      << (o.roofline ? "---|---|\n" : "\n");
        }
        std::mt19937 rng(1234);
        std::uniform_int_distribution<int32_t> pick(0, session->info().vocab_size - 1);
        std::vector<int32_t> prompt(static_cast<size_t>(o.prompt));
        for (auto& id : prompt) id = pick(rng);
        run_once(*session, prompt, std::min<int64_t>(o.generate, 4));  // warm-up: page in weights, build primitives
        std::vector<double> prefill, decode;
        for (int r = 0; r < o.repetitions; ++r) {
            Timing t = run_once(*session, prompt, o.generate);
            prefill.push_back(static_cast<double>(o.prompt) / t.prefill_s);
            if (o.generate > 0) decode.push_back(static_cast<double>(o.generate) / t.decode_s);
        }
        // With the model loaded and run: packed weights, caches, scratch (the checkpoint's mapped
        // pages that loading read are given back once the weights are packed).
        resident = resident_bytes();
        weight_bytes = weights.bytes;
        for (auto [test, rates] :
             {std::pair{"pp" + std::to_string(o.prompt), prefill}, {"tg" + std::to_string(o.generate), decode}}) {
            if (rates.empty()) continue;
            Stats st = stats(rates);
            const bool decode_test = test[0] == 't';
            // Decode: GB/s of weights streamed; prefill: GFLOP/s of the matmuls.
            const double prompt_macs = static_cast<double>(work.per_token) * static_cast<double>(o.prompt) +
                                       static_cast<double>(work.per_output_row);
            const double rate = decode_test ? static_cast<double>(weights.bytes) * st.median / 1e9
                                            : 2.0 * prompt_macs / static_cast<double>(o.prompt) * st.median / 1e9;
            const char* unit = decode_test ? "GB/s" : "GFLOP/s";
            nlohmann::json row = {{"model", o.model},
                                  {"threads", threads},
                                  {"test", test},
                                  {"tokens_per_s_median", st.median},
                                  {"tokens_per_s_min", st.min},
                                  {"tokens_per_s_max", st.max},
                                  {"repetitions", o.repetitions},
                                  {"weight_bytes", weights.bytes},
                                  {"parameters", weights.elements},
                                  {"linear_macs_per_token", work.per_token},
                                  {decode_test ? "weight_gb_per_s" : "matmul_gflop_per_s", rate},
                                  {"plugins", session->plugin_summary()}};
            if (resident) row["resident_bytes"] = *resident;
            double limit = 0;
            if (roofline) {
                limit = decode_test ? roofline->read_gb_per_s : roofline->fma_gflop_per_s;
                row[decode_test ? "read_gb_per_s" : "fma_gflop_per_s"] = limit;
                row["percent_of_roofline"] = 100.0 * rate / limit;
                row["roofline_simd"] = roofline->simd_target;
            }
            rows.push_back(row);
            if (!o.json) {
                std::cout << std::fixed << std::setprecision(2) << "| " << o.model << " | " << threads << " | " << test
                          << " | " << st.median << " | " << st.min << " | " << st.max << " | " << o.repetitions << " | "
                          << std::setprecision(1) << rate << " " << unit << " |";
                if (roofline) std::cout << " " << limit << " " << unit << " | " << 100.0 * rate / limit << "% |";
                std::cout << "\n";
            }
        }
    }
    if (o.json) {
        std::cout << rows.dump(2) << '\n';
    } else if (resident) {
        constexpr double kMiB = 1024.0 * 1024.0;
        std::cout << std::fixed << std::setprecision(1) << "resident memory: " << static_cast<double>(*resident) / kMiB
                  << " MiB (weights read per token: " << static_cast<double>(weight_bytes) / kMiB << " MiB)\n";
    }
}

}  // namespace

void add_bench_command(CLI::App& app) {
    auto o = std::make_shared<BenchOptions>();
    auto* cmd = app.add_subcommand("bench", "Prefill and decode throughput (llama-bench style)");
    cmd->add_option("--model", o->model, "Model folder")->required();
    cmd->add_option("--device", o->device, "auto, cpu, or a backend plugin name (torch, ...)")
        ->envname("TFX_DEVICE")
        ->capture_default_str();
    cmd->add_option("--attn-implementation", o->attn_implementation, "Attention plugin");
    cmd->add_option("--kv-dtype", o->kv_dtype, "KV cache dtype: f32, bf16 or f16")->capture_default_str();
    cmd->add_option("--weight-format", o->weight_format, "Pack linear weights into this format (as for generate)");
    cmd->add_option("--quantize", o->quantize, "Quantize linear weights at load: int8 or int4")
        ->check(CLI::IsMember({"int8", "int4"}));
    cmd->add_option("--lora", o->lora, "PEFT LoRA adapters, DIR[=NAME][:SCALE] (as for generate): their run-time cost");
    cmd->add_flag("--merge-lora", o->merge_lora, "Merge the --lora adapters at load");
    cmd->add_option("--tp", o->tensor_parallel, "Tensor-parallel ranks (under mpirun -np N, as for generate)")
        ->check(integer_at_least(1))
        ->capture_default_str();
    cmd->add_option("--matmul-precision", o->matmul_precision, "highest or medium (as for generate)")
        ->check(CLI::IsMember({"highest", "medium"}))
        ->capture_default_str();
    cmd->add_option("-p,--prompt-tokens", o->prompt, "Prompt length for the prefill test")
        ->capture_default_str()
        ->check(integer_at_least(1));
    cmd->add_option("-n,--gen-tokens", o->generate, "Tokens to decode")
        ->capture_default_str()
        ->check(integer_at_least(0));
    cmd->add_option("-t,--threads", o->threads, "Comma-separated thread counts")->capture_default_str();
    cmd->add_option("-r,--repetitions", o->repetitions, "Timed repetitions per test")
        ->capture_default_str()
        ->check(integer_at_least(1));
    cmd->add_flag("--json", o->json, "Print JSON rows");
    cmd->add_flag("--roofline", o->roofline,
                  "Measure this machine's read bandwidth and FMA peak per thread count (vectorised loops, ~10 s) "
                  "and print each figure as a share of it");
    cmd->callback([o] { run_bench(*o); });
}

}  // namespace tfx::cli
