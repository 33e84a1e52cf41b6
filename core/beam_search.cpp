#include "core/beam_search.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tfx {
namespace {

// Scores of beams that do not exist yet: every beam starts from the prompt, and only beam 0
// may be continued at the first step (transformers' -1e9).
constexpr float kUnborn = -1e9f;

struct Beam {
    std::vector<int32_t> tokens;  // generated so far
    float score = 0.0f;           // sum of processed log-probabilities (f32, as transformers keeps it)
    PagedKvCache::SeqId seq = -1;
};

struct Hypothesis {
    std::vector<int32_t> tokens;  // generated, without the EOS
    double score = 0.0;           // sum / generated_len ** length_penalty
    bool eos = false;
};

// transformers' BeamHypotheses: the best num_beams finished hypotheses.
class Finished {
  public:
    Finished(int64_t num_beams, float length_penalty) : num_beams_(num_beams), length_penalty_(length_penalty) {}

    void add(std::vector<int32_t> tokens, float sum_logprobs, int64_t generated_len, bool eos) {
        const double score =
            static_cast<double>(sum_logprobs) / std::pow(static_cast<double>(generated_len), length_penalty_);
        if (static_cast<int64_t>(hyps_.size()) >= num_beams_ && score <= worst_) return;
        hyps_.push_back({std::move(tokens), score, eos});
        if (static_cast<int64_t>(hyps_.size()) > num_beams_) {
            // Drop the worst (the first of equal worst ones, as Python's sort of (score, index) finds it).
            auto order = ranked();
            hyps_.erase(hyps_.begin() + static_cast<std::ptrdiff_t>(order[0]));
            worst_ = hyps_[ranked()[0]].score;
        } else {
            worst_ = std::min(score, worst_);
        }
    }

    // transformers' is_done(): can no open beam beat the worst finished hypothesis any more?
    bool done(double best_sum, int64_t generated_len, int64_t max_new, GenerationConfig::EarlyStopping mode) const {
        if (static_cast<int64_t>(hyps_.size()) < num_beams_) return false;
        if (mode == GenerationConfig::EarlyStopping::always) return true;
        const int64_t length =
            mode == GenerationConfig::EarlyStopping::never && length_penalty_ > 0.0f ? max_new : generated_len;
        return worst_ >= best_sum / std::pow(static_cast<double>(length), length_penalty_);
    }

    // Indices by ascending score; equal scores keep insertion order.
    std::vector<size_t> ranked() const {
        std::vector<size_t> order(hyps_.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(),
                         [&](size_t a, size_t b) { return hyps_[a].score < hyps_[b].score; });
        return order;
    }
    const std::vector<Hypothesis>& hyps() const { return hyps_; }

  private:
    int64_t num_beams_;
    double length_penalty_;
    std::vector<Hypothesis> hyps_;
    double worst_ = 1e9;
};

struct Row {
    std::vector<int32_t> prompt;          // the decoder's (an encoder-decoder model's: its decoder prompt)
    std::vector<int32_t> encoder_prompt;  // an encoder-decoder model's encoder input, else empty
    const std::vector<float>* input_features = nullptr;  // a speech model's encoder input
    PagedKvCache::SeqId cross_seq = -1;                  // its encoder's keys and values, read by every beam
    int64_t pads = 0;
    std::vector<Beam> beams;
    Finished finished;
    bool done = false;
};

struct Candidate {
    float score;
    int32_t beam;
    int32_t token;
};

}  // namespace

GenerationResult beam_search(ModelSession& session, const std::vector<std::vector<int32_t>>& prompts,
                             const GenerationConfig& config, const EncoderDecoderInputs& encoder_decoder_inputs) {
    config.validate();
    const tfx_model_info& info = session.info();
    check_config_for_model(info, config);
    check_encoder_decoder_inputs(info, prompts, encoder_decoder_inputs);
    const std::vector<int32_t>& decoder_prompt = encoder_decoder_inputs.decoder_prompt;
    const bool speech = info.input_feature_tokens > 0;
    const LogitsProcessing processing(config, info.vocab_size);
    const auto vocab = static_cast<size_t>(info.vocab_size);
    const int64_t num_beams = config.num_beams;
    GenerationResult result;
    if (prompts.empty()) return result;
    // An encoder-decoder model: the prompts are the encoder's; every beam's decoder starts from
    // the decoder prompt, else decoder_start_token_id, as transformers' generate() does.
    const bool encoder_decoder = info.num_cross_layers > 0;
    if (encoder_decoder && decoder_prompt.empty() && !config.decoder_start_token_id)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         session.architecture() +
                             " is an encoder-decoder model: generation needs "
                             "decoder_start_token_id (generation_config.json or config.json)");
    int64_t longest = encoder_decoder ? std::max<int64_t>(1, static_cast<int64_t>(decoder_prompt.size())) : 0;
    for (const auto& p : prompts) {
        if (!encoder_decoder) longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
    }
    const int64_t max_new = config.new_tokens_after(longest);
    const std::vector<int32_t>& eos = config.eos_token_ids;
    const auto is_eos = [&](int32_t t) { return std::find(eos.begin(), eos.end(), t) != eos.end(); };
    // Candidates per row and step: enough that num_beams survive even if the best are all EOS.
    const auto candidates = static_cast<size_t>(std::max<int64_t>(2, 1 + static_cast<int64_t>(eos.size())) * num_beams);

    std::unique_ptr<PagedKvCache> cache = session.make_cache(16, false);
    std::unique_ptr<PagedKvCache> cross_cache = encoder_decoder ? session.make_cross_cache(16) : nullptr;
    ForwardCall call(session, cache.get(), cross_cache.get());
    std::vector<Row> rows;
    for (size_t r = 0; r < prompts.size(); ++r) {
        const std::vector<int32_t>& p = prompts[r];
        Row row{.finished = Finished(num_beams, config.length_penalty)};
        if (encoder_decoder) {
            if (speech) {
                row.input_features = encoder_decoder_inputs.input_features[r].get();
            } else {
                check_prompt(info, p, 0);
            }
            row.encoder_prompt = p;
            row.prompt = decoder_prompt.empty() ? std::vector<int32_t>{*config.decoder_start_token_id} : decoder_prompt;
            row.cross_seq = cross_cache->add();
        } else {
            row.prompt = p;
            row.pads = longest - static_cast<int64_t>(p.size());
        }
        check_prompt(info, row.prompt, max_new);
        rows.push_back(std::move(row));
    }

    std::vector<SequenceInput> inputs;
    std::vector<float> logprobs(vocab);
    std::vector<int32_t> context;
    for (int64_t step = 0; step < max_new; ++step) {
        // One forward: each prompt at the first step, then every open beam's last token.
        inputs.clear();
        for (Row& row : rows) {
            if (row.done) continue;
            if (step == 0) {
                const PagedKvCache::SeqId seq = cache->add();
                row.beams.push_back({{}, 0.0f, seq});
                for (int64_t b = 1; b < num_beams; ++b) row.beams.push_back({{}, kUnborn, seq});
                // The first call encodes every row (an encoder-decoder model's), later ones read the cross cache.
                inputs.push_back({.ids = row.prompt,
                                  .cache_seq = seq,
                                  .encoder_ids = row.encoder_prompt,
                                  .cross_seq = row.cross_seq,
                                  .input_features = row.input_features != nullptr
                                                        ? std::span<const float>(*row.input_features)
                                                        : std::span<const float>()});
                continue;
            }
            for (const Beam& beam : row.beams) {
                inputs.push_back(
                    {.ids = std::span(beam.tokens).last(1), .cache_seq = beam.seq, .cross_seq = row.cross_seq});
            }
        }
        if (inputs.empty()) break;
        call.run(inputs);
        int64_t output = 0;
        for (Row& row : rows) {
            if (row.done) continue;
            // Each beam's processed log-probabilities plus its score, as candidates.
            std::vector<Candidate> ranked;
            for (size_t b = 0; b < row.beams.size(); ++b) {
                const Beam& beam = row.beams[b];
                const std::span<const float> logits = call.row(step == 0 ? output : output + static_cast<int64_t>(b));
                const float max = *std::max_element(logits.begin(), logits.end());
                double sum = 0.0;
                for (float v : logits) sum += std::exp(static_cast<double>(v - max));
                const auto log_norm = static_cast<float>(std::log(sum));
                for (size_t v = 0; v < vocab; ++v) logprobs[v] = logits[v] - max - log_norm;
                context.assign(row.prompt.begin(), row.prompt.end());
                context.insert(context.end(), beam.tokens.begin(), beam.tokens.end());
                processing.process(logprobs, {context, row.pads, longest, longest + max_new, row.encoder_prompt});
                for (size_t v = 0; v < vocab; ++v)
                    ranked.push_back({logprobs[v] + beam.score, static_cast<int32_t>(b), static_cast<int32_t>(v)});
            }
            output += step == 0 ? 1 : static_cast<int64_t>(row.beams.size());
            const size_t k = std::min(candidates, ranked.size());
            std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(k), ranked.end(),
                              [](const Candidate& a, const Candidate& b) {
                                  if (a.score != b.score) return a.score > b.score;
                                  return a.beam != b.beam ? a.beam < b.beam : a.token < b.token;
                              });
            std::vector<Beam> next;
            for (size_t rank = 0; rank < k && static_cast<int64_t>(next.size()) < num_beams; ++rank) {
                const Candidate& c = ranked[rank];
                const Beam& parent = row.beams[static_cast<size_t>(c.beam)];
                if (!config.ignore_eos && is_eos(c.token)) {
                    if (rank >= static_cast<size_t>(num_beams)) continue;
                    row.finished.add(parent.tokens, c.score, step + 1, /*eos=*/true);
                    continue;
                }
                Beam child{parent.tokens, c.score, cache->fork(parent.seq)};
                child.tokens.push_back(c.token);
                next.push_back(std::move(child));
            }
            if (static_cast<int64_t>(next.size()) < num_beams)
                throw sdk::Error(TFX_ERR_INTERNAL, "beam search found fewer continuations than num_beams");
            // Free the old beams' cache sequences (the prompt's once, at the first step).
            if (step == 0) {
                cache->release(row.beams[0].seq);
            } else {
                for (const Beam& beam : row.beams) cache->release(beam.seq);
            }
            row.beams = std::move(next);
            row.done = row.finished.done(ranked[0].score, step + 1, max_new, config.early_stopping);
            if (row.done && cross_cache) cross_cache->release(row.cross_seq);
        }
    }
    // Open beams of unfinished rows compete with the finished hypotheses; the best are returned.
    const auto per_prompt = static_cast<size_t>(config.num_return_sequences);
    for (Row& row : rows) {
        if (!row.done) {
            for (const Beam& beam : row.beams)
                row.finished.add(beam.tokens, beam.score, static_cast<int64_t>(beam.tokens.size()), /*eos=*/false);
        }
        for (const Beam& beam : row.beams) cache->release(beam.seq);
        if (!row.done && cross_cache) cross_cache->release(row.cross_seq);
        std::vector<size_t> order = row.finished.ranked();
        for (size_t i = 0; i < per_prompt; ++i) {
            if (order.empty()) {  // max_new_tokens 0: nothing was generated
                result.new_tokens.emplace_back();
                result.sequences_scores.push_back(0.0f);
                continue;
            }
            const Hypothesis& h = row.finished.hyps()[order.back()];
            order.pop_back();
            std::vector<int32_t> tokens = h.tokens;
            if (h.eos) tokens.push_back(eos.front());
            result.new_tokens.push_back(std::move(tokens));
            result.sequences_scores.push_back(static_cast<float>(h.score));
        }
    }
    return result;
}

}  // namespace tfx
