#include "core/generation.h"

#include "core/assisted_generation.h"
#include "core/beam_search.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <numeric>

namespace tfx {

void check_prompt(const tfx_model_info& info, std::span<const int32_t> prompt, int64_t max_new_tokens) {
    if (prompt.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "a prompt has no tokens");
    for (int32_t id : prompt) {
        if (id < 0 || id >= info.vocab_size) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "input id " + std::to_string(id) +
                                                           " is outside the vocabulary (size " +
                                                           std::to_string(info.vocab_size) + ")");
        }
    }
    const auto length = static_cast<int64_t>(prompt.size());
    if (info.max_positions > 0 && length + max_new_tokens > info.max_positions) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "prompt (" + std::to_string(length) + ") + new tokens (" +
                                                       std::to_string(max_new_tokens) +
                                                       ") exceed the model's max_position_embeddings (" +
                                                       std::to_string(info.max_positions) + ")");
    }
}

Generator::Generator(ModelSession& session, GeneratorOptions options)
    : session_(session),
      options_(options),
      cache_(session.make_cache(options.block_size, options.prefix_caching)),
      cross_cache_(session.make_cross_cache(options.block_size)),
      call_(session, cache_.get(), cross_cache_.get()),
      encode_call_(session, cache_.get(), cross_cache_.get()) {
    const tfx_model_info& info = session.info();
    if (info.output_kind != TFX_OUTPUT_LOGITS || info.output_size != info.vocab_size) {
        // Hidden states, class logits, or per-token label / span logits (token classification,
        // question answering): nothing to choose a next token from.
        throw sdk::Error(
            TFX_ERR_UNSUPPORTED,
            "generation needs a language-model head; " + session.architecture() + " outputs " +
                (info.output_kind == TFX_OUTPUT_LOGITS ? std::to_string(info.output_size) + " logits per token, not " +
                                                             std::to_string(info.vocab_size) + " vocabulary logits"
                                                       : std::string("no vocabulary logits")));
    }
    if (options.max_step_tokens < 0)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "max_step_tokens must be >= 0 (0: no limit), got " + std::to_string(options.max_step_tokens));
}

void check_encoder_decoder_inputs(const tfx_model_info& info, const std::vector<std::vector<int32_t>>& prompts,
                                  const EncoderDecoderInputs& inputs) {
    if (info.num_cross_layers == 0 && (!inputs.decoder_prompt.empty() || !inputs.input_features.empty()))
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "a decoder prompt or input features need an encoder-decoder model");
    if (!inputs.input_features.empty() && info.input_feature_tokens <= 0)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "input features need a speech model; this model's encoder "
                         "takes token ids");
    if (!inputs.input_features.empty() && inputs.input_features.size() != prompts.size())
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "input features: one per prompt (" + std::to_string(prompts.size()) +
                                                       "), got " + std::to_string(inputs.input_features.size()));
    for (const auto& features : inputs.input_features) {
        if (!features) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "input features: a row has none");
    }
    if (info.input_feature_tokens > 0 && inputs.input_features.empty() && !prompts.empty())
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "a speech model generates from input features (one per row)");
    if (info.input_feature_tokens > 0 &&
        std::any_of(prompts.begin(), prompts.end(), [](const auto& p) { return !p.empty(); }))
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "a speech model's encoder takes input features, not prompt tokens (its prompts are empty)");
}

void check_config_for_model(const tfx_model_info& info, const GenerationConfig& config) {
    // transformers refuses it too: a decoder-only model has no encoder input to take n-grams from.
    if (config.encoder_no_repeat_ngram_size > 0 && info.num_cross_layers == 0)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "encoder_no_repeat_ngram_size needs an encoder-decoder model; use no_repeat_ngram_size");
}

Generator::RequestId Generator::add(std::vector<int32_t> prompt, const GenerationConfig& config, int64_t max_new_tokens,
                                    int32_t top_logprobs) {
    return add(std::move(prompt), config, max_new_tokens, RequestOptions{.top_logprobs = top_logprobs});
}

Generator::Request Generator::make_request(std::vector<int32_t> prompt, const GenerationConfig& config,
                                           int64_t max_new_tokens, const RequestOptions& options) const {
    const tfx_model_info& info = session_.info();
    if (config.num_beams > 1)
        throw sdk::Error(TFX_ERR_UNSUPPORTED, "the Generator decodes one sequence per request; num_beams " +
                                                  std::to_string(config.num_beams) + " needs beam_search()");
    check_config_for_model(info, config);
    // An encoder-decoder model's prompt is its encoder's input: its positions are the encoder's.
    const bool speech = info.input_feature_tokens > 0;
    if (speech) {
        if (!prompt.empty() || !options.input_features) {
            throw sdk::Error(
                TFX_ERR_INVALID_ARGUMENT,
                session_.architecture() + " is a speech model: its encoder takes input features" +
                    (prompt.empty() ? std::string(", and the request brings none") : ", not prompt tokens"));
        }
    } else {
        if (options.input_features)
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, session_.architecture() + " takes no input features");
        check_prompt(info, prompt, cross_cache_ != nullptr ? 0 : max_new_tokens);
    }
    if (options.adapter != lora::kActiveAdapters &&
        (options.adapter < lora::kNoAdapter ||
         options.adapter >= static_cast<int32_t>(session_.lora_adapters().size()))) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "LoRA adapter number " + std::to_string(options.adapter) +
                                                       " is not one of the session's run-time adapters");
    }
    Request r;
    r.processing = std::make_shared<const LogitsProcessing>(config, info.vocab_size);
    if (cross_cache_ != nullptr) {
        // An encoder-decoder model: the prompt is the encoder's; the decoder starts from the
        // decoder prompt, else decoder_start_token_id, as transformers' generate() does.
        if (options.decoder_prompt.empty() && !config.decoder_start_token_id) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                             session_.architecture() +
                                 " is an encoder-decoder model: generation needs "
                                 "decoder_start_token_id (generation_config.json or config.json)");
        }
        r.encoder_ids = std::move(prompt);
        prompt = options.decoder_prompt.empty() ? std::vector<int32_t>{*config.decoder_start_token_id}
                                                : options.decoder_prompt;
        check_prompt(info, prompt, max_new_tokens);
    } else if (!options.decoder_prompt.empty()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "a decoder prompt needs an encoder-decoder model; " + session_.architecture() + " is not one");
    }
    r.prompt_length = prompt.size();
    r.context = std::move(prompt);
    r.max_new = options.teacher_force.empty() ? max_new_tokens : static_cast<int64_t>(options.teacher_force.size());
    r.options = options;
    if (options.constraint) r.constraint.emplace(options.constraint);
    r.rng.seed(config.seed);
    return r;
}

Generator::RequestId Generator::add(std::vector<int32_t> prompt, const GenerationConfig& config, int64_t max_new_tokens,
                                    const RequestOptions& options) {
    Request r = make_request(std::move(prompt), config, max_new_tokens, options);
    const RequestId id = next_id_++;
    if (r.max_new <= 0) return id;  // nothing to generate: done before it starts
    add_to_caches(r);
    requests_.emplace(id, std::move(r));
    live_.push_back(id);
    return id;
}

std::vector<Generator::RequestId> Generator::add_group(std::vector<int32_t> prompt,
                                                       std::span<const GenerationConfig> configs,
                                                       int64_t max_new_tokens, const RequestOptions& options) {
    if (configs.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "a group of requests needs at least one config");
    std::vector<Request> followers;
    for (size_t i = 1; i < configs.size(); ++i)
        followers.push_back(make_request(prompt, configs[i], max_new_tokens, options));
    std::vector<RequestId> ids = {add(prompt, configs[0], max_new_tokens, options)};
    const bool leader_waits = requests_.contains(ids[0]);  // false when nothing is to be generated
    for (Request& r : followers) {
        ids.push_back(next_id_++);
        if (!leader_waits) continue;
        requests_.emplace(ids.back(), std::move(r));
        followers_[ids[0]].push_back(ids.back());
    }
    return ids;
}

void Generator::add_to_caches(Request& r) {
    uint64_t salt = session_.lora_cache_salt(r.options.adapter);
    if (cross_cache_ != nullptr) {
        // A decoder's keys past its first layer depend on the encoder's input: prefix-cached
        // blocks are shared only between requests of the same one.
        for (int32_t id : r.encoder_ids) salt = salt * 1000003u ^ static_cast<uint32_t>(id);
        if (r.options.input_features) {
            for (float v : *r.options.input_features) salt = salt * 1000003u ^ std::bit_cast<uint32_t>(v);
        }
        r.cross_seq = cross_cache_->add();
    }
    r.seq = cache_->add(r.context, salt);
    r.fed = static_cast<size_t>(cache_->length(r.seq));  // positions found in the prefix cache
}

void Generator::release_caches(Request& r) {
    if (r.seq >= 0) cache_->release(r.seq);
    if (r.cross_seq >= 0) cross_cache_->release(r.cross_seq);
    r.seq = r.cross_seq = -1;
}

ForwardCall& Generator::call_for(const Request& r) {
    return r.cross_seq >= 0 && cross_cache_->length(r.cross_seq) == 0 ? encode_call_ : call_;
}

void Generator::make_live(RequestId id) {
    add_to_caches(requests_.at(id));
    live_.insert(std::upper_bound(live_.begin(), live_.end(), id), id);
}

void Generator::finish(RequestId id) {
    const auto it = requests_.find(id);
    if (it == requests_.end()) return;
    release_caches(it->second);
    requests_.erase(it);
    std::erase(live_, id);
    std::erase(paused_, id);
    for (auto& [leader, waiting] : followers_) std::erase(waiting, id);
    // A leader that leaves before its prompt is done hands its followers to the first of them.
    if (const auto group = followers_.find(id); group != followers_.end()) {
        std::vector<RequestId> rest = std::move(group->second);
        followers_.erase(group);
        if (rest.empty()) return;
        make_live(rest.front());
        if (rest.size() > 1) followers_[rest.front()].assign(rest.begin() + 1, rest.end());
    }
}

int64_t Generator::blocks_for(size_t positions) const {
    const auto bs = static_cast<size_t>(options_.block_size);
    return static_cast<int64_t>((positions + bs - 1) / bs);
}

int64_t Generator::blocks_committed() const {
    int64_t pending = 0;
    for (RequestId id : live_) {
        const Request& r = requests_.at(id);
        const auto held = static_cast<int64_t>(cache_->blocks(r.seq).size());
        pending += std::max<int64_t>(0, blocks_for(r.context.size()) - held);
    }
    return cache_->blocks_in_use() + pending;
}

void Generator::preempt_newest() {
    if (live_.size() <= 1) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "a sequence needs more KV cache blocks than max_cache_blocks (" +
                                                       std::to_string(options_.max_cache_blocks) + ") on its own");
    }
    const RequestId id = live_.back();
    live_.pop_back();
    Request& r = requests_.at(id);
    release_caches(r);  // with prefix caching its full blocks stay indexed, and may come back
    r.fed = 0;
    paused_.insert(std::upper_bound(paused_.begin(), paused_.end(), id), id);
    ++preemptions_;
}

void Generator::resume_paused() {
    while (!paused_.empty()) {
        const Request& r = requests_.at(paused_.front());
        const bool fits = options_.max_cache_blocks <= 0 ||
                          cache_->blocks_in_use() + blocks_for(r.context.size()) <= options_.max_cache_blocks;
        if (!fits && !live_.empty()) return;
        // Back in its place by arrival, so it is not the first to be preempted again.
        make_live(paused_.front());
        paused_.erase(paused_.begin());
    }
}

void Generator::cancel(RequestId id) {
    finish(id);
}

void Generator::fill_logprobs(std::span<const float> logits, int32_t chosen, int32_t count, Event& event) {
    const float max = *std::max_element(logits.begin(), logits.end());
    double sum = 0.0;
    for (float v : logits) sum += std::exp(static_cast<double>(v - max));
    const auto log_norm = static_cast<float>(static_cast<double>(max) + std::log(sum));
    event.logprob = logits[static_cast<size_t>(chosen)] - log_norm;
    if (count <= 0) return;
    std::vector<int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    const auto k = std::min<size_t>(static_cast<size_t>(count), order.size());
    std::partial_sort(
        order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
        [&](int32_t a, int32_t b) { return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)]; });
    for (size_t i = 0; i < k; ++i) event.top.push_back({order[i], logits[static_cast<size_t>(order[i])] - log_norm});
}

bool Generator::plan(std::vector<RequestId>& stepped, std::vector<size_t>& feeding) const {
    stepped.clear();
    feeding.clear();
    int64_t budget = options_.max_step_tokens > 0 ? options_.max_step_tokens : INT64_MAX;
    int64_t room = options_.max_cache_blocks > 0 ? options_.max_cache_blocks - cache_->blocks_in_use() : INT64_MAX;
    // Running sequences first (one token each), then prompts in arrival order from what is left.
    for (RequestId id : live_) {
        const Request& r = requests_.at(id);
        if (r.context.size() - r.fed != 1) continue;
        --budget;
        room -= cache_->blocks_needed(r.seq, 1);
        stepped.push_back(id);
        feeding.push_back(1);
    }
    if (room < 0) return false;
    bool prompt_advanced = false;
    for (RequestId id : live_) {
        const Request& r = requests_.at(id);
        auto count = static_cast<int64_t>(r.context.size() - r.fed);
        if (count <= 1) continue;
        // The oldest prompt advances even past the token budget, so none waits for ever.
        if (budget <= 0 && prompt_advanced) continue;
        count = std::max<int64_t>(1, std::min(count, budget));
        if (room != INT64_MAX) {  // as far as the free positions of its last block and `room` blocks go
            const int64_t held = static_cast<int64_t>(cache_->blocks(r.seq).size()) * options_.block_size;
            count = std::min(count, held - cache_->length(r.seq) + room * options_.block_size);
            if (count <= 0 || cache_->blocks_needed(r.seq, count) > room) {
                if (!prompt_advanced && stepped.empty()) return false;  // nothing could run at all
                continue;
            }
            room -= cache_->blocks_needed(r.seq, count);
        }
        budget -= count;
        prompt_advanced = true;
        stepped.push_back(id);
        feeding.push_back(static_cast<size_t>(count));
    }
    return !stepped.empty();
}

std::vector<Generator::Event> Generator::step() {
    std::vector<Event> events;
    last_rows_.clear();
    resume_paused();
    if (live_.empty()) return events;
    std::vector<RequestId> stepped;
    std::vector<size_t> feeding;  // tokens each stepped request feeds
    while (!plan(stepped, feeding)) preempt_newest();
    inputs_.clear();
    encode_inputs_.clear();
    std::vector<ForwardCall*> call_of(stepped.size());  // each stepped request's call
    std::vector<bool> outputs(stepped.size());
    for (size_t i = 0; i < stepped.size(); ++i) {
        const Request& r = requests_.at(stepped[i]);
        SequenceInput in;
        in.ids = std::span<const int32_t>(r.context).subspan(r.fed, feeding[i]);
        in.cache_seq = r.seq;
        in.adapter = r.options.adapter;
        in.output = r.fed + feeding[i] == r.context.size() ? SequenceInput::Output::last : SequenceInput::Output::none;
        in.cross_seq = r.cross_seq;
        outputs[i] = in.output != SequenceInput::Output::none;
        call_of[i] = &call_for(r);
        if (call_of[i] == &encode_call_) {
            in.encoder_ids = r.encoder_ids;
            if (r.options.input_features) in.input_features = *r.options.input_features;
            encode_inputs_.push_back(in);
        } else {
            inputs_.push_back(in);
        }
    }
    if (!inputs_.empty()) call_.run(inputs_);
    if (!encode_inputs_.empty()) encode_call_.run(encode_inputs_);
    int64_t rows[2] = {0, 0};  // the next output row of call_ and encode_call_
    for (size_t i = 0; i < stepped.size(); ++i) {
        Request& r = requests_.at(stepped[i]);
        r.fed += feeding[i];
        cache_->publish(r.seq, r.context);
        if (!outputs[i]) continue;
        ForwardCall& call = *call_of[i];
        const int64_t row = rows[&call == &encode_call_]++;
        last_rows_[stepped[i]] = {&call, row};
        std::span<float> logits = call.row(row);
        if (followers_.contains(stepped[i])) fork_followers(stepped[i], call, logits, row, events);
        events.push_back(sample(stepped[i], r, logits));
        if (events.back().finished) finish(stepped[i]);
    }
    return events;
}

Generator::Event Generator::sample(RequestId id, Request& r, std::span<float> logits) {
    Event event{id, 0, false};
    const RequestOptions& o = r.options;
    if (o.top_logprobs >= 0) raw_logits_.assign(logits.begin(), logits.end());
    const auto input_length = o.pads + static_cast<int64_t>(r.prompt_length);
    const TokenContext context{r.context, o.pads, input_length, input_length + r.max_new, r.encoder_ids};
    const TokenConstraint* constraint = r.constraint ? &*r.constraint : nullptr;
    if (o.teacher_force.empty()) {
        event.token = r.processing->choose(logits, context, r.rng, constraint);
    } else {
        r.processing->process(logits, context);
        if (constraint) constraint->mask(logits);
        r.processing->warp(logits);
        event.token = o.teacher_force[r.new_tokens.size()];
    }
    if (o.output_scores >= 0) event.scores = step_scores(logits, event.token, o.output_scores);
    if (o.top_logprobs >= 0) fill_logprobs(raw_logits_, event.token, o.top_logprobs, event);
    if (r.constraint) r.constraint->advance(event.token);
    r.context.push_back(event.token);
    r.new_tokens.push_back(event.token);
    const GenerationConfig& config = r.processing->config();
    const auto& eos = config.eos_token_ids;
    event.eos =
        !config.ignore_eos && o.teacher_force.empty() && std::find(eos.begin(), eos.end(), event.token) != eos.end();
    event.finished = event.eos || static_cast<int64_t>(r.new_tokens.size()) >= r.max_new;
    return event;
}

void Generator::fork_followers(RequestId leader, ForwardCall& call, std::span<const float> logits, int64_t row,
                               std::vector<Event>& events) {
    const std::vector<RequestId> waiting = std::move(followers_.at(leader));
    followers_.erase(leader);
    const Request& lead = requests_.at(leader);
    for (RequestId id : waiting) {
        Request& r = requests_.at(id);
        r.seq = cache_->fork(lead.seq);
        if (lead.cross_seq >= 0) r.cross_seq = cross_cache_->fork(lead.cross_seq);
        r.fed = lead.fed;
        live_.insert(std::upper_bound(live_.begin(), live_.end(), id), id);
        last_rows_[id] = {&call, row};
        follower_logits_.assign(logits.begin(), logits.end());
        events.push_back(sample(id, r, follower_logits_));
        if (events.back().finished) finish(id);
    }
}

std::span<const float> Generator::last_logits(RequestId id) const {
    const auto it = last_rows_.find(id);
    if (it == last_rows_.end())
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "request " + std::to_string(id) + " gave no token in the last step");
    return it->second.first->row(it->second.second);
}

GenerationResult generate(ModelSession& session, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config, const GenerateOptions& options) {
    config.validate();
    if (options.constraint && (config.num_beams > 1 || options.assistant_model || config.prompt_lookup_num_tokens > 0))
        throw sdk::Error(
            TFX_ERR_UNSUPPORTED,
            "constrained decoding runs with greedy or sampled decoding, not with beams or assisted decoding");
    if (options.adapter != lora::kActiveAdapters &&
        (config.num_beams > 1 || options.assistant_model || config.prompt_lookup_num_tokens > 0))
        throw sdk::Error(TFX_ERR_UNSUPPORTED,
                         "a LoRA adapter per call runs with greedy or sampled decoding; beams and assisted decoding "
                         "use the session's active adapters (set_active_lora)");
    if (session.info().num_cross_layers > 0 && (options.assistant_model || config.prompt_lookup_num_tokens > 0))
        throw sdk::Error(TFX_ERR_UNSUPPORTED, session.architecture() +
                                                  " is an encoder-decoder model: it generates with greedy, sampled or "
                                                  "beam decoding for now, not with assisted decoding");
    if (options.assistant_model || config.prompt_lookup_num_tokens > 0)
        return assisted_generate(session, prompts, config, options);
    if (config.num_beams > 1) {
        // Beams are known only at the end: their tokens are handed over then.
        GenerationResult result = beam_search(session, prompts, config, options.encoder_decoder);
        for (size_t row = 0; row < result.new_tokens.size() && options.on_token; ++row) {
            for (int32_t token : result.new_tokens[row]) options.on_token(row, token);
        }
        return result;
    }
    if (!options.teacher_force.empty() && prompts.size() != 1)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "teacher forcing takes one prompt, got " + std::to_string(prompts.size()));
    const auto per_prompt = static_cast<size_t>(config.num_return_sequences);
    GenerationResult result;
    result.new_tokens.resize(prompts.size() * per_prompt);
    if (options.output_scores >= 0) result.scores.resize(result.new_tokens.size());
    if (prompts.empty()) return result;
    const EncoderDecoderInputs& seq2seq = options.encoder_decoder;
    check_encoder_decoder_inputs(session.info(), prompts, seq2seq);
    Generator generator(session);
    // An encoder-decoder model's decoder prompts are all alike (decoder_start_token_id, or the
    // caller's decoder prompt).
    const bool encoder_decoder = session.info().num_cross_layers > 0;
    int64_t longest = encoder_decoder ? std::max<int64_t>(1, static_cast<int64_t>(seq2seq.decoder_prompt.size())) : 0;
    for (const auto& p : prompts) {
        if (!encoder_decoder) longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
    }
    // As transformers pads a batch: max_length counts from the longest prompt, and each row's
    // lengths count its left pads.
    const int64_t max_new = config.new_tokens_after(longest);
    std::unordered_map<Generator::RequestId, size_t> row_of;
    for (size_t p = 0; p < prompts.size(); ++p) {
        Generator::RequestOptions request_options{
            .output_scores = options.output_scores,
            .pads = encoder_decoder ? 0 : longest - static_cast<int64_t>(prompts[p].size()),
            .teacher_force = options.teacher_force,
            .constraint = options.constraint,
            .adapter = options.adapter,
            .decoder_prompt = seq2seq.decoder_prompt,
            .input_features = seq2seq.input_features.empty() ? nullptr : seq2seq.input_features[p]};
        std::vector<GenerationConfig> configs(per_prompt, config);
        for (size_t i = 0; i < per_prompt; ++i) configs[i].seed = config.seed + i;
        const auto ids = generator.add_group(prompts[p], configs, max_new, request_options);
        for (size_t i = 0; i < ids.size(); ++i) row_of[ids[i]] = p * per_prompt + i;
    }
    using Clock = std::chrono::steady_clock;
    const auto deadline =
        config.max_time ? Clock::now() + std::chrono::duration<double>(*config.max_time) : Clock::time_point::max();
    while (!generator.idle()) {
        for (Generator::Event& e : generator.step()) {
            const size_t row = row_of.at(e.request);
            result.new_tokens[row].push_back(e.token);
            if (e.scores) result.scores[row].push_back(std::move(*e.scores));
            if (options.on_token) options.on_token(row, e.token);
            if (!e.finished && options.should_stop && options.should_stop(row, result.new_tokens[row])) {
                generator.cancel(e.request);
            }
        }
        if (Clock::now() > deadline) {  // transformers' MaxTimeCriteria: every sequence stops
            for (const auto& [id, row] : row_of) generator.cancel(id);
        }
    }
    return result;
}

GenerationResult generate(ModelSession& session, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config, const TokenCallback& on_token,
                          const StopCondition& should_stop) {
    return generate(session, prompts, config, GenerateOptions{.on_token = on_token, .should_stop = should_stop});
}

}  // namespace tfx
