#include "apps/tfx/serve/metrics.h"

#include <algorithm>
#include <sstream>

namespace tfx::serve {

void Histogram::observe(double value) {
    const auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
    ++counts_[static_cast<size_t>(bucket)];
    sum_ += value;
    ++count_;
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
    std::ostringstream out;
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " histogram\n";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
        cumulative += counts_[i];
        out << name << "_bucket{le=\"" << bounds_[i] << "\"} " << cumulative << '\n';
    }
    out << name << "_bucket{le=\"+Inf\"} " << count_ << '\n';
    out << name << "_sum " << sum_ << '\n' << name << "_count " << count_ << '\n';
    return out.str();
}

Metrics::Metrics()
    // vLLM's time-to-first-token buckets: fine between 10 and 100 ms, where load changes it.
    : ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80}),
      itl_({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}) {}

void Metrics::request_done(const std::string& route, int status) {
    ++requests_[{route, status}];
}

void Metrics::tokens(int64_t prompt, int64_t generated) {
    prompt_tokens_ += static_cast<uint64_t>(prompt);
    generated_tokens_ += static_cast<uint64_t>(generated);
}

std::string Metrics::render(const Engine::Stats& engine) const {
    std::ostringstream out;
    out << "# HELP tfx_requests_total Requests answered, by route and HTTP status.\n"
           "# TYPE tfx_requests_total counter\n";
    for (const auto& [key, count] : requests_)
        out << "tfx_requests_total{route=\"" << key.first << "\",status=\"" << key.second << "\"} " << count << '\n';
    auto line = [&](const char* name, const char* type, const char* help, auto value) {
        out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
            << name << ' ' << value << '\n';
    };
    line("tfx_prompt_tokens_total", "counter", "Prompt tokens of admitted sequences.", prompt_tokens_);
    line("tfx_generation_tokens_total", "counter", "Tokens generated.", generated_tokens_);
    line("tfx_queue_depth", "gauge", "Sequences waiting for the running batch.", engine.queued);
    line("tfx_running_sequences", "gauge", "Sequences in the running batch.", engine.running);
    line("tfx_kv_blocks_in_use", "gauge", "KV cache blocks held by running sequences.", engine.kv_blocks_in_use);
    line("tfx_kv_blocks_allocated", "gauge", "KV cache blocks allocated.", engine.kv_blocks_allocated);
    line("tfx_kv_block_bytes", "gauge", "Bytes of one KV cache block over all layers.", engine.kv_block_bytes);
    line("tfx_prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.",
         engine.prefix.queried_tokens);
    line("tfx_prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache (not computed).",
         engine.prefix.hit_tokens);
    line("tfx_prefix_cache_blocks", "gauge", "KV cache blocks indexed for prefix sharing (held or reusable).",
         engine.prefix.cached_blocks);
    line("tfx_preemptions_total", "counter",
         "Sequences preempted when the KV cache budget ran out (freed, recomputed later).", engine.preemptions);
    line("tfx_engine_steps_total", "counter", "Forward steps of the running batch.", engine.steps);
    out << ttft_.render("tfx_time_to_first_token_seconds", "Time from a request's arrival to its first token.");
    out << itl_.render("tfx_inter_token_latency_seconds", "Time between consecutive tokens of a sequence.");
    return out.str();
}

}  // namespace tfx::serve
