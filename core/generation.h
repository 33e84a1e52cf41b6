// Generation over a paged KV cache with continuous batching: a Generator holds the running
// sequences; each step() is one forward over all of them (prefilling those just admitted,
// decoding one token for the others), so sequences join and leave a running batch at any
// step, and a finished sequence's cache blocks are reused by the next. generate() is a batch
// admitted at once and stepped until every sequence is done.
#pragma once

#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "core/forward_call.h"
#include "core/kv_cache.h"
#include "core/model_session.h"
#include "core/sampling.h"

namespace tfx {

struct GenerationResult {
    std::vector<std::vector<int32_t>> new_tokens;  // per sequence, eos included when hit
};

// Called for each new token of each sequence as it is chosen (streaming).
using TokenCallback = std::function<void(size_t sequence, int32_t token)>;
// Asked after each token; true stops that sequence (stop strings live here).
using StopCondition = std::function<bool(size_t sequence, const std::vector<int32_t>& new_tokens)>;

class Generator {
  public:
    using RequestId = size_t;
    struct Event {
        RequestId request;
        int32_t token;
        bool finished;  // the request is done (eos, max_new_tokens or a stop) and has left the batch
    };

    explicit Generator(ModelSession& session, int32_t block_size = 16);

    // Admits a prompt; it is prefilled at the next step(). `max_new_tokens` counts from its
    // prompt; the config's other settings (sampling, eos, seed) are its own.
    RequestId add(std::vector<int32_t> prompt, const GenerationConfig& config, int64_t max_new_tokens);
    // Stops a request now (its blocks are freed); no-op for a finished one.
    void cancel(RequestId request);
    // One forward over every live request: one new token each.
    std::vector<Event> step();
    bool idle() const { return live_.empty(); }

    // Logits of the last step's row for `request` (for tests and logit processors' reports).
    std::span<const float> last_logits(RequestId request) const;
    const PagedKvCache& cache() const { return *cache_; }

  private:
    struct Request {
        std::vector<int32_t> context;  // prompt + generated
        std::vector<int32_t> new_tokens;
        GenerationConfig config;
        int64_t max_new = 0;
        PagedKvCache::SeqId seq = -1;
        bool prefilled = false;
        int64_t row = -1;  // its output row in the last step
        std::mt19937_64 rng;
    };
    void finish(RequestId id);

    ModelSession& session_;
    std::unique_ptr<PagedKvCache> cache_;
    ForwardCall call_;
    std::vector<Request> requests_;
    std::vector<RequestId> live_;
    std::vector<SequenceInput> inputs_;
};

// Generates for each prompt; max_new_tokens (or max_length, counted from the longest prompt as
// transformers does for a padded batch) bounds every sequence.
GenerationResult generate(ModelSession& session, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config, const TokenCallback& on_token = {},
                          const StopCondition& should_stop = {});

}  // namespace tfx
