// What generate() is asked to do: lengths, logits processors, sampling, beam search and special
// tokens, as transformers' GenerationConfig reads them from generation_config.json (else
// config.json). Field names and defaults are transformers'.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tfx/sdk/config.hpp"

namespace tfx {

struct GenerationConfig {
    // Lengths. max_length counts the prompt and is used when max_new_tokens is not given.
    int64_t max_new_tokens = 20;
    std::optional<int64_t> max_length;
    int64_t min_length = 0;  // prompt + new tokens before an EOS is allowed
    int64_t min_new_tokens = 0;
    std::optional<double> max_time;  // seconds: a sequence stops once generate() has run this long

    // Decoding.
    bool do_sample = false;
    int64_t num_beams = 1;
    float length_penalty = 1.0f;
    enum class EarlyStopping {
        heuristic,
        always,
        never
    } early_stopping = EarlyStopping::heuristic;  // False/True/"never"
    int64_t num_return_sequences = 1;

    // Processors, in transformers' order of application.
    std::vector<std::pair<std::vector<int32_t>, float>> sequence_bias;  // token sequence -> bias on its last token
    // Favours (> 1) the encoder's input tokens (a decoder-only model's: the prompt's), as a
    // repetition penalty of 1 / encoder_repetition_penalty.
    float encoder_repetition_penalty = 1.0f;
    float repetition_penalty = 1.0f;
    // OpenAI's penalties (not transformers'), over the generated tokens only: each token's logit
    // less frequency_penalty x its count, less presence_penalty once it has appeared.
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    int64_t no_repeat_ngram_size = 0;
    int64_t encoder_no_repeat_ngram_size = 0;  // encoder-decoder models: no n-gram of the encoder's input
    std::vector<std::vector<int32_t>> bad_words_ids;
    std::optional<int32_t> forced_bos_token_id;
    std::vector<int32_t> forced_eos_token_ids;
    bool remove_invalid_values = false;
    std::optional<std::pair<int64_t, float>> exponential_decay_length_penalty;  // (start index, decay factor)
    std::vector<int32_t> suppress_tokens;
    std::vector<int32_t> begin_suppress_tokens;
    bool renormalize_logits = false;

    // Warpers (sampling only), in transformers' order.
    float temperature = 1.0f;
    int64_t top_k = 50;
    double top_p = 1.0;  // double, as 1 - top_p is computed in transformers
    float min_p = 0.0f;
    float typical_p = 1.0f;
    float epsilon_cutoff = 0.0f;
    float eta_cutoff = 0.0f;

    // Assisted decoding (greedy): draft tokens per round from an assistant model at first (then
    // +2 after a round that accepted them all, -1 otherwise: transformers' "heuristic"
    // schedule), or, with prompt_lookup_num_tokens > 0 and no assistant model, up to that many
    // tokens that followed the latest n-gram (n <= max_matching_ngram_size) earlier on.
    int64_t num_assistant_tokens = 5;
    int64_t prompt_lookup_num_tokens = 0;
    int64_t max_matching_ngram_size = 2;

    // Stopping.
    std::vector<std::string> stop_strings;  // needs the model's tokenizer (see StopStrings)
    bool ignore_eos = false;

    // Special tokens.
    std::vector<int32_t> eos_token_ids;
    std::optional<int32_t> pad_token_id;
    std::optional<int32_t> bos_token_id;
    std::optional<int32_t> decoder_start_token_id;

    uint64_t seed = 0;

    // Defaults from generation_config.json (else config.json's token ids), as transformers
    // reads them; fields that fail validation name the file. Fields tfx does not act on are
    // named in a warning (see unsupported_fields).
    static GenerationConfig from_model(const sdk::Config& config, const std::optional<sdk::Config>& generation_config);
    // A generation config passed to generate() (transformers' generate(generation_config=...)):
    // transformers' defaults, then `file`'s fields; special tokens it leaves unset come from
    // `model_defaults`, as generate() fills them in from the model's own generation config.
    static GenerationConfig from_file(const sdk::Config& file, const GenerationConfig& model_defaults);
    // The fields of `file` that tfx reads as transformers does; the rest are named by
    // unsupported_fields.
    void read(const sdk::Config& file);
    // eos / pad / bos / decoder_start token ids only (all config.json gives).
    void read_special_tokens(const sdk::Config& file);
    // Fields of a generation config that tfx does not act on (unknown, or transformers features
    // tfx lacks such as num_beam_groups); bookkeeping fields (transformers_version, output_*)
    // are not listed.
    static std::vector<std::string> unsupported_fields(const sdk::Config& file);

    // New tokens allowed after a prompt of `prompt_length` (a padded batch's longest):
    // max_length less the prompt when max_length is what was given, else max_new_tokens.
    int64_t new_tokens_after(int64_t prompt_length) const {
        return max_length ? std::max<int64_t>(0, *max_length - prompt_length) : max_new_tokens;
    }

    // Smallest temperature accepted when sampling: below it logits / temperature overflows.
    static constexpr float kMinTemperature = 1e-6f;
    // Throws when a value is out of range or not finite (temperature < kMinTemperature while
    // sampling, top_p outside (0, 1], ...); the message starts with the field's name.
    void validate() const;
    // validate(), and every token id it names is inside a vocabulary of `vocab_size`.
    void validate(int64_t vocab_size) const;
};

}  // namespace tfx
