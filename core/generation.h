// Generation over a paged KV cache with continuous batching: a Generator holds the running
// sequences; each step() is one forward over all of them (prefilling those just admitted,
// decoding one token for the others), so sequences join and leave a running batch at any
// step, and a finished sequence's cache blocks are reused by the next. generate() is a batch
// admitted at once and stepped until every sequence is done.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>
#include <vector>

#include "core/forward_call.h"
#include "core/kv_cache.h"
#include "core/logits_processing.h"
#include "core/model_session.h"

namespace tfx {

struct GenerationResult {
    // Per returned sequence (num_return_sequences per prompt, in prompt order, best first for
    // beam search): the new tokens, eos included when hit.
    std::vector<std::vector<int32_t>> new_tokens;
    // Beam search: each sequence's score (sum of log-probabilities / length ** length_penalty).
    std::vector<float> sequences_scores;
    // Asked for with GenerateOptions::output_scores: per sequence, per step, the processed
    // scores' report (not for beam search).
    std::vector<std::vector<StepScores>> scores;
    // Assisted decoding: draft tokens proposed and accepted, and the model's forward passes.
    int64_t draft_proposed = 0, draft_accepted = 0, forwards = 0;
};

// Called for each new token of each sequence as it is chosen (streaming; beam search hands
// over its sequences when it ends).
using TokenCallback = std::function<void(size_t sequence, int32_t token)>;
// Asked after each token; true stops that sequence (stop strings live here).
using StopCondition = std::function<bool(size_t sequence, const std::vector<int32_t>& new_tokens)>;

// What an encoder-decoder model's rows start from besides their prompts.
struct EncoderDecoderInputs {
    // Every row's decoder starts from these tokens (empty: decoder_start_token_id alone), as
    // transformers' decoder_input_ids do (Whisper's <|startoftranscript|><|en|><|transcribe|>
    // <|notimestamps|>); the new tokens follow them.
    std::vector<int32_t> decoder_prompt;
    // A speech model's encoder input, one per row (whose prompt is then empty): f32
    // [input_feature_bins, input_feature_frames], the feature extractor's input_features.
    std::vector<std::shared_ptr<const std::vector<float>>> input_features;
};

struct GenerateOptions {
    TokenCallback on_token;
    StopCondition should_stop;
    // >= 0: report each step's processed scores (GenerationResult::scores) with this many top
    // tokens.
    int32_t output_scores = -1;
    // Teacher forcing (one prompt): each step processes the logits as usual, then takes the
    // next of these tokens instead of choosing one; the run is exactly this long.
    std::vector<int32_t> teacher_force;
    // Assisted (speculative) decoding with a smaller model of the same tokenizer as the
    // draft (see assisted_generation.h; GenerationConfig::prompt_lookup_num_tokens drafts
    // without one).
    ModelSession* assistant_model = nullptr;
    // Constrained decoding (token_constraint.h): every sequence's text matches this automaton's
    // pattern (a JSON schema's, say) when it ends with EOS.
    std::shared_ptr<ConstraintAutomaton> constraint;
    // LoRA applied at run time: the session's active adapters, none, or adapter number i.
    int32_t adapter = lora::kActiveAdapters;
    // Encoder-decoder models: decoder prompts and speech input features.
    EncoderDecoderInputs encoder_decoder;
};

struct GeneratorOptions {
    int32_t block_size = 16;
    // Tokens one step feeds at most, summed over the batch (0: no limit). A running sequence
    // takes one; prompts share the rest in arrival order, a long one in chunks over several
    // steps (chunked prefill), so running sequences keep getting a token every step. The
    // oldest prompt always advances, even past the budget, so none waits for ever.
    int64_t max_step_tokens = 0;
    // Share cached blocks between prompts that begin alike (PagedKvCache's prefix caching).
    bool prefix_caching = false;
    // KV cache blocks the live requests may hold (0: no limit). A step feeds prompt chunks only
    // as far as the blocks left allow; when the running sequences' next tokens do not fit, the
    // newest request is preempted: its blocks are freed, its tokens and sampling state kept,
    // and it is prefilled again (recompute, as vLLM does) once the blocks its context needs are
    // free, before any newer request advances.
    int64_t max_cache_blocks = 0;
};

// What a request to a Generator asks for besides its prompt and config.
struct GenerationRequestOptions {
    int32_t top_logprobs = -1;   // >= 0: Event::logprob and that many top tokens (raw logits)
    int32_t output_scores = -1;  // >= 0: Event::scores with that many top tokens
    // Left pads this prompt would have in transformers' padded batch: lengths count them
    // (min_length, forced EOS, ...), as its processors do.
    int64_t pads = 0;
    std::vector<int32_t> teacher_force;  // tokens to take instead of choosing (see GenerateOptions)
    // Constrained decoding: the output must match this automaton (token_constraint.h).
    std::shared_ptr<ConstraintAutomaton> constraint;
    // LoRA applied at run time: the session's active adapters, none, or adapter number i.
    int32_t adapter = lora::kActiveAdapters;
    // Encoder-decoder models: the decoder's first tokens (empty: decoder_start_token_id), and a
    // speech model's encoder input (f32 [bins, frames]; the prompt is then empty).
    std::vector<int32_t> decoder_prompt;
    std::shared_ptr<const std::vector<float>> input_features;
};

class Generator {
  public:
    using RequestId = size_t;
    // One of the `top` most likely tokens of a step, with its log-probability.
    struct TokenLogprob {
        int32_t token;
        float logprob;
    };
    struct Event {
        RequestId request;
        int32_t token;
        bool finished;     // the request is done (eos, max_new_tokens or a stop) and has left the batch
        bool eos = false;  // it finished on an end-of-sequence token (else on max_new_tokens)
        // Asked for with add(..., top_logprobs >= 0): log-softmax of the model's raw logits (before
        // penalties, temperature and truncation, as vLLM reports them) for the chosen token, and
        // the top_logprobs most likely tokens, best first.
        float logprob = 0.0f;
        std::vector<TokenLogprob> top;
        // Asked for with RequestOptions::output_scores: the step's processed scores.
        std::optional<StepScores> scores;
    };
    using RequestOptions = GenerationRequestOptions;

    explicit Generator(ModelSession& session, GeneratorOptions options = {});

    // Admits a prompt; it is prefilled from the next step() on. `max_new_tokens` counts from its
    // prompt; the config's other settings (sampling, eos, seed) are its own. top_logprobs >= 0
    // asks for its Event::logprob and that many top tokens.
    RequestId add(std::vector<int32_t> prompt, const GenerationConfig& config, int64_t max_new_tokens,
                  int32_t top_logprobs = -1);
    RequestId add(std::vector<int32_t> prompt, const GenerationConfig& config, int64_t max_new_tokens,
                  const RequestOptions& options);
    // Admits one prompt for several requests (n choices, each with its own config and seed): the
    // prompt is prefilled once, then the others fork its cache (its blocks shared; a shared last
    // block is copied when first written) and sample their own first tokens from the same
    // logits. Each gets what add() alone would give it.
    std::vector<RequestId> add_group(std::vector<int32_t> prompt, std::span<const GenerationConfig> configs,
                                     int64_t max_new_tokens, const RequestOptions& options = {});
    // Stops a request now (its blocks are freed); no-op for a finished one.
    void cancel(RequestId request);
    // One forward over every live request: one new token each, except prompts still being fed
    // in chunks (they give none until their last chunk).
    std::vector<Event> step();
    bool idle() const { return live_.empty() && paused_.empty(); }
    size_t live() const { return live_.size(); }
    // Requests preempted and waiting for cache blocks to be recomputed.
    size_t paused() const { return paused_.size(); }
    // Preemptions so far.
    int64_t preemptions() const { return preemptions_; }
    // Blocks the live requests hold, each shared block (a common prefix, n choices of one
    // prompt) once, plus those their contexts still need (admitted prompts not prefilled yet):
    // what an admission must leave room beside.
    int64_t blocks_committed() const;

    // Logits of the last step's row for `request` (for tests and logit processors' reports).
    std::span<const float> last_logits(RequestId request) const;
    const PagedKvCache& cache() const { return *cache_; }

  private:
    struct Request {
        std::vector<int32_t> context;  // prompt + generated
        size_t prompt_length = 0;
        size_t fed = 0;  // tokens of the context the cache holds
        std::vector<int32_t> new_tokens;
        std::shared_ptr<const LogitsProcessing> processing;
        int64_t max_new = 0;
        RequestOptions options;
        std::optional<TokenConstraint> constraint;
        PagedKvCache::SeqId seq = -1;
        std::mt19937_64 rng;
        // Encoder-decoder models: the prompt is the encoder's input (the context starts at
        // decoder_start_token_id or the decoder prompt), encoded on the request's first step
        // into cross_seq; a speech model's is options.input_features.
        std::vector<int32_t> encoder_ids;
        PagedKvCache::SeqId cross_seq = -1;
    };
    void finish(RequestId id);
    // Chooses `r`'s next token from its step's logits (processed in place) and records it.
    Event sample(RequestId id, Request& r, std::span<float> logits);
    // The requests waiting on `leader`'s prompt join the batch on forks of its cache, each with
    // its own first token from the leader's raw `logits`.
    void fork_followers(RequestId leader, ForwardCall& call, std::span<const float> logits, int64_t row,
                        std::vector<Event>& events);
    // Makes `id` live again, in arrival order, on a new cache sequence (prefix hits included).
    void make_live(RequestId id);
    // Chooses what each live request feeds this step within the token and block budgets;
    // false when the running sequences' next tokens (or the oldest prompt) cannot get blocks.
    bool plan(std::vector<RequestId>& stepped, std::vector<size_t>& feeding) const;
    // Frees the newest live request's blocks; it waits in paused_ with its tokens.
    void preempt_newest();
    // Re-admits paused requests, oldest first, while the blocks of their contexts are free.
    void resume_paused();
    int64_t blocks_for(size_t positions) const;
    // A request's state before its prompt is fed (add() and add_group()'s followers).
    Request make_request(std::vector<int32_t> prompt, const GenerationConfig& config, int64_t max_new_tokens,
                         const RequestOptions& options) const;
    // The chosen token's log-probability and the best `count` tokens, from raw logits.
    static void fill_logprobs(std::span<const float> logits, int32_t chosen, int32_t count, Event& event);

    // New cache sequences for `r` (and its cross-cache sequence); releases them.
    void add_to_caches(Request& r);
    void release_caches(Request& r);
    // A step's forward: the requests encoding their prompt this step (encoder-decoder models)
    // run in a call of their own, as a call encodes every sequence or none.
    ForwardCall& call_for(const Request& r);

    ModelSession& session_;
    GeneratorOptions options_;
    std::unique_ptr<PagedKvCache> cache_;
    std::unique_ptr<PagedKvCache> cross_cache_;  // encoder-decoder models: the encoders' keys and values
    ForwardCall call_, encode_call_;
    // Live requests only: a finished one is forgotten, so a long-running server holds nothing
    // per request once it is done.
    std::unordered_map<RequestId, Request> requests_;
    RequestId next_id_ = 0;
    std::vector<RequestId> live_;    // in arrival order
    std::vector<RequestId> paused_;  // preempted, in arrival order
    // add_group()'s requests waiting for their leader's prompt, by leader.
    std::unordered_map<RequestId, std::vector<RequestId>> followers_;
    std::vector<float> follower_logits_;
    int64_t preemptions_ = 0;
    // The call and output row of each request the last step sampled.
    std::unordered_map<RequestId, std::pair<ForwardCall*, int64_t>> last_rows_;
    std::vector<SequenceInput> inputs_, encode_inputs_;
    std::vector<float> raw_logits_;
};

// Generates for each prompt; max_new_tokens (or max_length, counted from the longest prompt as
// transformers does for a padded batch) bounds every sequence.
// Throws naming the first id outside the model's vocabulary, an empty prompt, or a prompt that
// with max_new_tokens would outgrow the model's context (max_position_embeddings).
void check_prompt(const tfx_model_info& info, std::span<const int32_t> prompt, int64_t max_new_tokens);
// Throws unless `inputs` suit the model and a batch of `prompts` (features only for a speech
// model, one per row, whose prompts are then empty; a decoder prompt only for an
// encoder-decoder model).
void check_encoder_decoder_inputs(const tfx_model_info& info, const std::vector<std::vector<int32_t>>& prompts,
                                  const EncoderDecoderInputs& inputs);
// Throws when `config` asks for what the model cannot do (encoder processors without an encoder).
void check_config_for_model(const tfx_model_info& info, const GenerationConfig& config);

// A batch is padded as transformers pads it (lengths count each row's left pads). Sampling with
// num_return_sequences > 1 draws that many sequences per prompt, each from its own seed
// (seed, seed + 1, ...); num_beams > 1 runs beam_search().
GenerationResult generate(ModelSession& session, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config, const GenerateOptions& options);
GenerationResult generate(ModelSession& session, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config, const TokenCallback& on_token = {},
                          const StopCondition& should_stop = {});

}  // namespace tfx
