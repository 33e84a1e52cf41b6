#include "core/assisted_generation.h"

#include <algorithm>
#include <chrono>

namespace tfx {
namespace {

int32_t argmax(std::span<const float> scores) {
    return static_cast<int32_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
}

// The draft model's side: its own cache holding a prefix of the context, kept in step by
// truncating what the model rejected.
class DraftModel {
  public:
    DraftModel(ModelSession& session, const GenerationConfig& config)
        : processing_(config, session.info().vocab_size),
          cache_(session.make_cache(16, false)),
          call_(session, cache_.get()),
          seq_(cache_->add()) {
        const tfx_model_info& info = session.info();
        if (info.output_kind != TFX_OUTPUT_LOGITS || info.output_size != info.vocab_size)
            throw sdk::Error(TFX_ERR_UNSUPPORTED, "the assistant model " + session.architecture() +
                                                      " has no language-model head to propose tokens with");
    }

    // Its greedy continuation of `context`, `count` tokens; `target_vocab` ends it early at a
    // token the model does not have.
    std::vector<int32_t> propose(const std::vector<int32_t>& context, const TokenContext& where, int64_t count,
                                 int64_t target_vocab) {
        // Keep the cached prefix the context still begins with; at least its last token is fed.
        size_t common = std::mismatch(fed_.begin(), fed_.end(), context.begin(), context.end()).first - fed_.begin();
        common = std::min(common, context.size() - 1);
        cache_->truncate(seq_, static_cast<int64_t>(common));
        fed_.resize(common);
        std::vector<int32_t> proposal;
        std::vector<int32_t> extended = context;
        for (int64_t i = 0; i < count; ++i) {
            const std::span<const int32_t> feed = std::span(extended).subspan(fed_.size());
            call_.run(SequenceInput{.ids = feed, .cache_seq = seq_});
            fed_.insert(fed_.end(), feed.begin(), feed.end());
            const std::span<float> logits = call_.row(0);
            TokenContext ctx = where;
            ctx.ids = extended;
            processing_.process(logits, ctx);
            const int32_t token = argmax(logits);
            if (token >= target_vocab) break;
            proposal.push_back(token);
            extended.push_back(token);
        }
        return proposal;
    }

  private:
    LogitsProcessing processing_;
    std::unique_ptr<PagedKvCache> cache_;
    ForwardCall call_;
    PagedKvCache::SeqId seq_;
    std::vector<int32_t> fed_;  // the tokens its cache holds
};

// Prompt lookup (transformers' PromptLookupCandidateGenerator): the tokens that followed the
// earliest earlier occurrence of the context's last n tokens, n from `max_ngram` down to 1.
std::vector<int32_t> look_up(const std::vector<int32_t>& context, int64_t count, int64_t max_ngram) {
    for (auto n = static_cast<size_t>(max_ngram); n >= 1; --n) {
        if (context.size() <= n) continue;
        const auto tail = context.end() - static_cast<std::ptrdiff_t>(n);
        for (size_t i = 0; i + n < context.size(); ++i) {
            if (!std::equal(tail, context.end(), context.begin() + static_cast<std::ptrdiff_t>(i))) continue;
            const size_t start = i + n;
            const size_t end = std::min(context.size(), start + static_cast<size_t>(count));
            return {context.begin() + static_cast<std::ptrdiff_t>(start),
                    context.begin() + static_cast<std::ptrdiff_t>(end)};
        }
    }
    return {};
}

}  // namespace

GenerationResult assisted_generate(ModelSession& session, const std::vector<std::vector<int32_t>>& prompts,
                                   const GenerationConfig& config, const GenerateOptions& options) {
    if (config.num_beams > 1 || config.num_return_sequences > 1)
        throw sdk::Error(TFX_ERR_UNSUPPORTED,
                         "assisted decoding (an assistant model or prompt lookup) runs one "
                         "sequence per prompt: num_beams and num_return_sequences must be 1");
    if (!options.teacher_force.empty())
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "teacher forcing cannot be combined with assisted decoding");
    config.validate();
    const tfx_model_info& info = session.info();
    check_config_for_model(info, config);
    const LogitsProcessing processing(config, info.vocab_size);
    GenerationResult result;
    result.new_tokens.resize(prompts.size());
    if (options.output_scores >= 0) result.scores.resize(prompts.size());
    using Clock = std::chrono::steady_clock;
    const auto deadline =
        config.max_time ? Clock::now() + std::chrono::duration<double>(*config.max_time) : Clock::time_point::max();
    for (size_t row = 0; row < prompts.size(); ++row) {
        const std::vector<int32_t>& prompt = prompts[row];
        const int64_t max_new = config.new_tokens_after(static_cast<int64_t>(prompt.size()));
        check_prompt(info, prompt, max_new);
        std::unique_ptr<PagedKvCache> cache = session.make_cache(16, false);
        ForwardCall call(session, cache.get());
        const PagedKvCache::SeqId seq = cache->add();
        std::optional<DraftModel> draft;
        if (options.assistant_model) draft.emplace(*options.assistant_model, config);
        std::vector<int32_t> context = prompt;
        std::vector<int32_t>& tokens = result.new_tokens[row];
        const TokenContext where{
            {}, 0, static_cast<int64_t>(prompt.size()), static_cast<int64_t>(prompt.size()) + max_new};
        int64_t draft_tokens = config.num_assistant_tokens;
        std::mt19937_64 rng(config.seed);  // one draw per token taken, in order: plain sampling's draws
        bool done = max_new <= 0;
        // Takes the model's choice from one output row; false once the sequence is finished.
        auto take = [&](std::span<float> logits) {
            TokenContext ctx = where;
            ctx.ids = context;
            const int32_t token = processing.choose(logits, ctx, rng);
            if (options.output_scores >= 0)
                result.scores[row].push_back(step_scores(logits, token, options.output_scores));
            context.push_back(token);
            tokens.push_back(token);
            if (options.on_token) options.on_token(row, token);
            const auto& eos = config.eos_token_ids;
            done = (!config.ignore_eos && std::find(eos.begin(), eos.end(), token) != eos.end()) ||
                   static_cast<int64_t>(tokens.size()) >= max_new ||
                   (options.should_stop && options.should_stop(row, tokens)) || Clock::now() > deadline;
            return !done;
        };
        // The prompt first; then rounds of [last token, proposals...], the cache holding all
        // of the context but its last token between rounds.
        if (!done) {
            call.run(SequenceInput{.ids = prompt, .cache_seq = seq});
            ++result.forwards;
            take(call.row(0));
        }
        while (!done) {
            // Room for the model's own token after the proposals.
            const int64_t room = max_new - static_cast<int64_t>(tokens.size()) - 1;
            std::vector<int32_t> proposal;
            if (room > 0 && draft) {
                proposal = draft->propose(context, where, std::min(room, draft_tokens), info.vocab_size);
            } else if (room > 0) {
                proposal =
                    look_up(context, std::min(room, config.prompt_lookup_num_tokens), config.max_matching_ngram_size);
            }
            std::vector<int32_t> feed = {context.back()};
            feed.insert(feed.end(), proposal.begin(), proposal.end());
            call.run(SequenceInput{.ids = feed, .cache_seq = seq, .output = SequenceInput::Output::all});
            ++result.forwards;
            size_t accepted = 0;
            for (size_t i = 0; i < feed.size(); ++i) {
                if (!take(call.row(static_cast<int64_t>(i)))) break;
                if (i >= proposal.size() || context.back() != proposal[i]) break;
                ++accepted;
            }
            result.draft_proposed += static_cast<int64_t>(proposal.size());
            result.draft_accepted += static_cast<int64_t>(accepted);
            if (!proposal.empty())
                draft_tokens = accepted == proposal.size() ? draft_tokens + 2 : std::max<int64_t>(1, draft_tokens - 1);
            // Rejected proposals leave the cache: it holds the context but its last token.
            cache->truncate(seq, std::min(cache->length(seq), static_cast<int64_t>(context.size()) - 1));
        }
        cache->release(seq);
    }
    return result;
}

}  // namespace tfx
