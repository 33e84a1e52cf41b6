// The batching side of `tfx serve`: one thread that owns the model session and steps a
// Generator over every running sequence (continuous batching). Sequences wait in a queue
// until the running batch has room for them in sequences (--max-batch) and in KV cache
// blocks: one is admitted when the blocks of its prompt fit beside the contexts of those
// running, and none is admitted while a preempted one waits. Sequences grow into the cache
// as they generate; when the budget runs out, the Generator preempts the newest and
// recomputes it later, so the cache never overflows and no step fails for want of blocks.
// Tokens go back through each sequence's callback, on the engine thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/generation.h"

namespace tfx::serve {

struct EngineOptions {
    int64_t max_batch = 32;         // sequences in the running batch
    int64_t max_queue = 256;        // sequences waiting; more are refused (HTTP 429)
    int64_t max_step_tokens = 256;  // tokens one step feeds (chunked prefill; 0: no limit)
    int64_t kv_cache_bytes = 0;     // KV cache the running batch may hold (0: no limit)
    int32_t block_size = 16;
    bool prefix_caching = true;  // prompts that begin alike share KV blocks (PagedKvCache)
};

// One sequence to generate.
struct SequenceJob {
    std::vector<int32_t> prompt;
    GenerationConfig config;
    int64_t max_new_tokens = 16;
    int32_t top_logprobs = -1;                        // >= 0: report log-probabilities (Generator::add)
    std::shared_ptr<ConstraintAutomaton> constraint;  // constrained decoding (shared by a request's choices)
    int32_t adapter = lora::kActiveAdapters;          // the LoRA adapter the request's model names
    // Each token as it is chosen (on the engine thread); Event::finished ends the sequence.
    std::function<void(const Generator::Event&)> on_token;
    // The sequence could not run (its step failed, or the engine stopped first).
    std::function<void(const std::string& message)> on_error;
    // Given the step's logits before each token's event (GET /health checks they are finite).
    std::function<void(std::span<const float> logits)> on_logits;
};

class QueueFull : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class Engine {
  public:
    using Ticket = uint64_t;
    struct Stats {
        int64_t queued = 0, running = 0;
        int64_t kv_blocks_in_use = 0, kv_blocks_allocated = 0, kv_block_bytes = 0;
        int64_t steps = 0, preemptions = 0;
        PagedKvCache::PrefixStats prefix;
    };

    Engine(ModelSession& session, EngineOptions options);
    ~Engine();  // stops at once: running and queued sequences get on_error
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Queues the sequences of one request together (all or none): throws QueueFull when the
    // queue has no room for them, or sdk::Error when one can never fit the KV budget.
    std::vector<Ticket> submit(std::vector<SequenceJob> jobs);
    // Drops a queued or running sequence (its blocks are freed before the next step).
    void cancel(Ticket ticket);
    Stats stats() const;
    // Blocks needed for `positions` cached positions.
    int64_t blocks_for(int64_t positions) const;
    // The KV budget in blocks (0: no limit).
    int64_t kv_blocks() const { return kv_blocks_; }

  private:
    struct Running {
        SequenceJob job;
        Generator::RequestId request;
    };
    void run();
    // Moves cancelled sequences out and queued ones in; under the lock. The n choices of one
    // request (same prompt) go in as one Generator group, so their prompt is computed once.
    void admit_locked();
    // Queued jobs from the head on that form one group (at most `limit`).
    size_t head_group_size(size_t limit) const;
    void refresh_stats_locked();

    ModelSession& session_;
    EngineOptions options_;
    int64_t kv_blocks_ = 0;
    Generator generator_;

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    Ticket next_ticket_ = 0;
    struct Queued {
        Ticket ticket;
        uint64_t submission;  // jobs of one submit() share it
        SequenceJob job;
    };
    std::deque<Queued> queue_;
    uint64_t next_submission_ = 0;
    std::unordered_set<Ticket> cancelled_;
    // The engine thread's own; stats() reads the counters under the lock.
    std::unordered_map<Ticket, Running> running_;
    std::unordered_map<Generator::RequestId, Ticket> ticket_of_;
    Stats stats_;
    std::thread thread_;
};

}  // namespace tfx::serve
