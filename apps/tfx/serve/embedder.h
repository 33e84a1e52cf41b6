// The embedding side of `tfx serve` for base encoder models (/v1/embeddings): one thread that
// owns the model session and runs the queued inputs of every request together, as one
// cache-less ragged batch per forward pass of up to max_step_tokens tokens, pooling each
// input's hidden states to one L2-normalized vector (OpenAI's embeddings are unit length).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/model_session.h"
#include "registry/pipelines.h"

namespace tfx::serve {

struct EmbedderOptions {
    int64_t max_queue = 256;        // inputs waiting; more are refused (HTTP 429)
    int64_t max_step_tokens = 256;  // tokens one forward pass takes (one input may exceed it alone)
    Pooling pooling = Pooling::mean;
};

// The inputs of one request, embedded together.
struct EmbeddingJob {
    std::vector<std::vector<int32_t>> inputs;
    // One vector per input, in order (on the embedder thread).
    std::function<void(std::vector<std::vector<float>> vectors)> on_done;
    std::function<void(const std::string& message)> on_error;
};

class Embedder {
  public:
    struct Stats {
        int64_t queued = 0;   // inputs waiting
        int64_t running = 0;  // inputs in the pass under way
        int64_t steps = 0;    // forward passes
    };

    // Throws sdk::Error when the model is not a base model (its outputs are not hidden states).
    Embedder(ModelSession& session, EmbedderOptions options);
    ~Embedder();  // stops at once: waiting jobs get on_error
    Embedder(const Embedder&) = delete;
    Embedder& operator=(const Embedder&) = delete;

    // Queues a request's inputs; throws QueueFull (engine.h) when the queue has no room.
    void submit(EmbeddingJob job);
    Stats stats() const;
    int64_t dimensions() const { return width_; }

  private:
    struct Pending {
        EmbeddingJob job;
        size_t next = 0;  // the first input not yet taken into a pass
        std::vector<std::vector<float>> vectors;
        std::string error;  // set when a pass with one of its inputs failed
    };
    void run();
    // Takes inputs from the front of the queue up to the token budget (at least one); under the lock.
    std::vector<std::pair<Pending*, size_t>> take_pass_locked();

    ModelSession& session_;
    EmbedderOptions options_;
    int64_t width_;

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::deque<Pending> queue_;
    int64_t queued_inputs_ = 0;
    Stats stats_;
    std::thread thread_;
};

}  // namespace tfx::serve
