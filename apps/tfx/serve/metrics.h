// The server's counters for GET /metrics, in Prometheus' text format (version 0.0.4): requests
// by route and status, prompt and generated tokens, time-to-first-token and per-token latency
// histograms; the engine's queue, batch and KV cache gauges are read at scrape time.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "apps/tfx/serve/engine.h"

namespace tfx::serve {

class Histogram {
  public:
    explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
    void observe(double value);
    // The metric's bucket, sum and count lines.
    std::string render(const std::string& name, const std::string& help) const;

  private:
    std::vector<double> bounds_;
    std::vector<uint64_t> counts_;  // per bucket (not cumulative); the last is +Inf
    double sum_ = 0.0;
    uint64_t count_ = 0;
};

// Updated from the I/O thread only; render() runs there too.
class Metrics {
  public:
    Metrics();
    void request_done(const std::string& route, int status);
    void tokens(int64_t prompt, int64_t generated);
    void time_to_first_token(double seconds) { ttft_.observe(seconds); }
    void inter_token_latency(double seconds) { itl_.observe(seconds); }
    std::string render(const Engine::Stats& engine) const;

  private:
    std::map<std::pair<std::string, int>, uint64_t> requests_;
    uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
    Histogram ttft_, itl_;
};

}  // namespace tfx::serve
