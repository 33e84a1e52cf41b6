#include "core/generation.h"

#include <algorithm>

namespace tfx {

Generator::Generator(ModelSession& session, int32_t block_size)
    : session_(session), cache_(session.make_cache(block_size)), call_(session, cache_.get()) {
    if (session.info().output_kind != TFX_OUTPUT_LOGITS) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, "generation needs a language-model head; " + session.architecture() +
                                                  " outputs hidden states");
    }
}

Generator::RequestId Generator::add(std::vector<int32_t> prompt, const GenerationConfig& config,
                                    int64_t max_new_tokens) {
    config.validate();
    const tfx_model_info& info = session_.info();
    if (prompt.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "a prompt has no tokens");
    for (int32_t id : prompt) {
        if (id < 0 || id >= info.vocab_size) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "input id " + std::to_string(id) +
                                                           " is outside the vocabulary (size " +
                                                           std::to_string(info.vocab_size) + ")");
        }
    }
    const auto prompt_len = static_cast<int64_t>(prompt.size());
    if (info.max_positions > 0 && prompt_len + max_new_tokens > info.max_positions) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "prompt (" + std::to_string(prompt_len) + ") + new tokens (" +
                                                       std::to_string(max_new_tokens) +
                                                       ") exceed the model's max_position_embeddings (" +
                                                       std::to_string(info.max_positions) + ")");
    }
    Request r;
    r.context = std::move(prompt);
    r.config = config;
    r.max_new = max_new_tokens;
    r.rng.seed(config.seed);
    const RequestId id = requests_.size();
    requests_.push_back(std::move(r));
    if (max_new_tokens > 0) {
        requests_[id].seq = cache_->add();
        live_.push_back(id);
    }
    return id;
}

void Generator::finish(RequestId id) {
    Request& r = requests_[id];
    if (r.seq >= 0) cache_->release(r.seq);
    r.seq = -1;
    live_.erase(std::remove(live_.begin(), live_.end(), id), live_.end());
}

void Generator::cancel(RequestId id) {
    if (id < requests_.size() && requests_[id].seq >= 0) finish(id);
}

std::vector<Generator::Event> Generator::step() {
    std::vector<Event> events;
    if (live_.empty()) return events;
    inputs_.clear();
    for (RequestId id : live_) {
        Request& r = requests_[id];
        SequenceInput in;
        in.ids = r.prefilled ? std::span<const int32_t>(&r.context.back(), 1) : std::span<const int32_t>(r.context);
        in.cache_seq = r.seq;
        inputs_.push_back(in);
    }
    call_.run(inputs_);
    const std::vector<RequestId> stepped = live_;
    for (size_t i = 0; i < stepped.size(); ++i) {
        Request& r = requests_[stepped[i]];
        r.prefilled = true;
        r.row = static_cast<int64_t>(i);
        const int32_t token = choose_next_token(call_.row(r.row), r.context, r.config, r.rng);
        r.context.push_back(token);
        r.new_tokens.push_back(token);
        const auto& eos = r.config.eos_token_ids;
        const bool done = (!r.config.ignore_eos && std::find(eos.begin(), eos.end(), token) != eos.end()) ||
                          static_cast<int64_t>(r.new_tokens.size()) >= r.max_new;
        events.push_back({stepped[i], token, done});
        if (done) finish(stepped[i]);
    }
    return events;
}

std::span<const float> Generator::last_logits(RequestId id) const {
    const int64_t row = requests_.at(id).row;
    if (row < 0) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "request " + std::to_string(id) + " has not run yet");
    return const_cast<ForwardCall&>(call_).row(row);
}

GenerationResult generate(ModelSession& session, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config, const TokenCallback& on_token,
                          const StopCondition& should_stop) {
    config.validate();
    GenerationResult result;
    result.new_tokens.resize(prompts.size());
    if (prompts.empty()) return result;
    Generator generator(session);
    int64_t longest = 0;
    for (const auto& p : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
    const int64_t max_new =
        config.max_length ? std::max<int64_t>(0, *config.max_length - longest) : config.max_new_tokens;
    for (const auto& p : prompts) generator.add(p, config, max_new);
    while (!generator.idle()) {
        for (const Generator::Event& e : generator.step()) {
            result.new_tokens[e.request].push_back(e.token);
            if (on_token) on_token(e.request, e.token);
            if (!e.finished && should_stop && should_stop(e.request, result.new_tokens[e.request])) {
                generator.cancel(e.request);
            }
        }
    }
    return result;
}

}  // namespace tfx
