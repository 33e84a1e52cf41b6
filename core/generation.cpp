#include "core/generation.h"

#include <algorithm>

#include "core/forward_call.h"

namespace tfx {

GenerationResult generate(ModelSession& session, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config, const TokenCallback& on_token,
                          const StopCondition& should_stop) {
    config.validate();
    const tfx_model_info& info = session.info();
    if (info.output_kind != TFX_OUTPUT_LOGITS) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, "generation needs a language-model head; " + session.architecture() +
                                                  " outputs hidden states");
    }
    const auto batch = static_cast<int32_t>(prompts.size());
    GenerationResult result;
    result.new_tokens.resize(prompts.size());
    if (batch == 0) return result;
    int64_t prompt_len = 0;
    for (const auto& p : prompts) {
        if (p.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "a prompt has no tokens");
        for (int32_t id : p) {
            if (id < 0 || id >= info.vocab_size) {
                throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "input id " + std::to_string(id) +
                                                               " is outside the vocabulary (size " +
                                                               std::to_string(info.vocab_size) + ")");
            }
        }
        prompt_len = std::max<int64_t>(prompt_len, static_cast<int64_t>(p.size()));
    }
    int64_t max_new = config.max_new_tokens;
    if (config.max_length) max_new = std::max<int64_t>(0, *config.max_length - prompt_len);
    if (max_new == 0) return result;
    const int64_t capacity = prompt_len + max_new;
    if (info.max_positions > 0 && capacity > info.max_positions) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "prompt (" + std::to_string(prompt_len) + ") + new tokens (" +
                                                       std::to_string(max_new) +
                                                       ") exceed the model's max_position_embeddings (" +
                                                       std::to_string(info.max_positions) + ")");
    }
    const int32_t pad = config.pad_token_id && *config.pad_token_id >= 0 && *config.pad_token_id < info.vocab_size
                            ? *config.pad_token_id
                            : 0;

    // Left padding: real tokens end at the same column; padded keys are masked out and
    // positions count real tokens only (transformers: cumsum(mask) - 1).
    std::vector<int32_t> ids(static_cast<size_t>(batch * prompt_len), pad);
    std::vector<int64_t> positions(ids.size(), 1);
    std::vector<uint8_t> mask_row(static_cast<size_t>(batch * capacity), 0);
    std::vector<int64_t> next_position(prompts.size());
    for (int32_t b = 0; b < batch; ++b) {
        const auto& p = prompts[b];
        const int64_t offset = prompt_len - static_cast<int64_t>(p.size());
        for (size_t i = 0; i < p.size(); ++i) {
            ids[b * prompt_len + offset + i] = p[i];
            positions[b * prompt_len + offset + i] = static_cast<int64_t>(i);
            mask_row[b * capacity + offset + i] = 1;
        }
        next_position[b] = static_cast<int64_t>(p.size());
    }

    KvCache cache = session.make_cache(batch, capacity);
    ForwardCall call(session);
    std::vector<uint8_t> key_mask;
    std::vector<std::vector<int32_t>> context(prompts.begin(), prompts.end());
    std::vector<bool> done(prompts.size(), false);
    std::mt19937_64 rng(config.seed);

    int64_t past = 0;
    int64_t tokens = prompt_len;
    for (int64_t step = 0; step < max_new; ++step) {
        const int64_t keys = past + tokens;
        key_mask.resize(static_cast<size_t>(batch * keys));
        for (int32_t b = 0; b < batch; ++b) {
            std::copy_n(mask_row.begin() + b * capacity, keys, key_mask.begin() + b * keys);
        }
        call.run({.batch = batch,
                  .tokens = tokens,
                  .ids = ids,
                  .positions = positions,
                  .key_mask = key_mask,
                  .past_len = past,
                  .cache = &cache,
                  .last_token_only = true});

        past = keys;
        tokens = 1;
        ids.assign(static_cast<size_t>(batch), pad);
        positions.assign(static_cast<size_t>(batch), 1);
        bool all_done = true;
        for (int32_t b = 0; b < batch; ++b) {
            mask_row[b * capacity + past] = done[b] ? 0 : 1;
            if (done[b]) continue;
            const int32_t token = choose_next_token(call.row(b), context[b], config, rng);
            context[b].push_back(token);
            result.new_tokens[b].push_back(token);
            if (on_token) on_token(static_cast<size_t>(b), token);
            const bool eos = !config.ignore_eos && std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(),
                                                             token) != config.eos_token_ids.end();
            done[b] = eos || (should_stop && should_stop(static_cast<size_t>(b), result.new_tokens[b]));
            ids[b] = token;
            positions[b] = next_position[b]++;
            all_done = all_done && done[b];
        }
        if (all_done) break;
    }
    return result;
}

}  // namespace tfx
