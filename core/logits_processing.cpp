#include "core/logits_processing.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

namespace tfx {
namespace {

constexpr float kRemoved = -std::numeric_limits<float>::infinity();

// The id transformers pads a batch's shorter rows with: pad_token_id, else the first EOS.
int32_t pad_id(const GenerationConfig& g) {
    return g.pad_token_id.value_or(g.eos_token_ids.empty() ? 0 : g.eos_token_ids[0]);
}

bool ends_with(std::span<const int32_t> ids, std::span<const int32_t> suffix) {
    return suffix.size() <= ids.size() && std::equal(suffix.begin(), suffix.end(), ids.end() - suffix.size());
}

// softmax in f32, as torch computes it; removed entries get 0.
std::vector<float> softmax(std::span<const float> scores) {
    const float max = *std::max_element(scores.begin(), scores.end());
    std::vector<float> p(scores.size());
    double sum = 0.0;
    for (size_t i = 0; i < scores.size(); ++i) sum += (p[i] = std::exp(scores[i] - max));
    for (float& v : p) v = static_cast<float>(v / sum);
    return p;
}

std::vector<float> log_softmax(std::span<const float> scores) {
    const float max = *std::max_element(scores.begin(), scores.end());
    double sum = 0.0;
    for (float v : scores) sum += std::exp(static_cast<double>(v) - max);
    const double log_norm = max + std::log(sum);
    std::vector<float> out(scores.size());
    for (size_t i = 0; i < scores.size(); ++i) out[i] = static_cast<float>(scores[i] - log_norm);
    return out;
}

// A float's bits as an unsigned integer in the same order (negatives flipped whole, positives
// with the sign bit set).
uint32_t sortable(float v) {
    const auto bits = std::bit_cast<uint32_t>(v);
    return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

// Token ids ordered by key, ascending (equal keys in id order): an LSD radix sort, four 8-bit
// passes, several times faster than a comparison sort over a whole vocabulary.
std::vector<int32_t> ascending(std::span<const float> keys) {
    const size_t n = keys.size();
    std::vector<uint32_t> key(n), key_tmp(n);
    std::vector<int32_t> order(n), order_tmp(n);
    for (size_t i = 0; i < n; ++i) {
        key[i] = sortable(keys[i]);
        order[i] = static_cast<int32_t>(i);
    }
    for (int shift = 0; shift < 32; shift += 8) {
        std::array<size_t, 257> start{};
        for (uint32_t k : key) ++start[((k >> shift) & 0xFF) + 1];
        for (size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
        for (size_t i = 0; i < n; ++i) {
            const size_t at = start[(key[i] >> shift) & 0xFF]++;
            key_tmp[at] = key[i];
            order_tmp[at] = order[i];
        }
        key.swap(key_tmp);
        order.swap(order_tmp);
    }
    return order;
}

void top_k(std::span<float> scores, int64_t k) {
    k = std::clamp<int64_t>(k, 1, static_cast<int64_t>(scores.size()));
    std::vector<float> sorted(scores.begin(), scores.end());
    std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<>());
    const float kth = sorted[static_cast<size_t>(k - 1)];
    for (float& v : scores) {
        if (v < kth) v = kRemoved;  // ties with the k-th are all kept
    }
}

// Drops the least likely tokens whose probabilities sum to at most 1 - top_p (summed from the
// least likely up, as transformers does); the most likely one always stays. torch's cumsum
// accumulates f32 in double on the CPU.
void top_p(std::span<float> scores, double p) {
    const std::vector<int32_t> order = ascending(scores);
    const std::vector<float> probs = softmax(scores);
    const auto drop_at_most = static_cast<float>(1.0 - p);
    double cumulative = 0.0;
    for (size_t i = 0; i + 1 < order.size(); ++i) {
        cumulative += probs[order[i]];
        if (static_cast<float>(cumulative) <= drop_at_most) scores[order[i]] = kRemoved;
    }
}

void min_p(std::span<float> scores, float m) {
    const std::vector<float> probs = softmax(scores);
    const float threshold = m * *std::max_element(probs.begin(), probs.end());
    const auto best = std::max_element(scores.begin(), scores.end()) - scores.begin();
    for (size_t i = 0; i < scores.size(); ++i) {
        if (probs[i] < threshold && static_cast<std::ptrdiff_t>(i) != best) scores[i] = kRemoved;
    }
}

// Locally typical sampling: keep the tokens whose surprisal is closest to the entropy until
// their mass reaches `mass` (the token that crosses it included).
void typical(std::span<float> scores, double mass) {
    const std::vector<float> logp = log_softmax(scores);
    float entropy = 0.0f;
    for (float lp : logp) {
        if (std::isfinite(lp)) entropy -= lp * std::exp(lp);  // nansum: removed tokens add nothing
    }
    std::vector<float> shift(scores.size());
    for (size_t i = 0; i < scores.size(); ++i) shift[i] = std::abs(-logp[i] - entropy);
    const std::vector<int32_t> order = ascending(shift);
    const std::vector<float> probs = softmax(scores);
    size_t last = 0;
    double cumulative = 0.0;
    for (int32_t id : order) {
        cumulative += probs[id];
        if (static_cast<float>(cumulative) < static_cast<float>(mass)) ++last;
    }
    last = std::min(last, scores.size() - 1);
    const float limit = shift[order[last]];
    for (size_t i = 0; i < scores.size(); ++i) {  // the most typical token always stays
        if (shift[i] > limit && static_cast<int32_t>(i) != order[0]) scores[i] = kRemoved;
    }
}

// Epsilon / eta sampling: drop tokens below a probability floor, never the most likely one.
void below_floor(std::span<float> scores, const std::vector<float>& probs, float floor) {
    const float best = *std::max_element(scores.begin(), scores.end());
    for (size_t i = 0; i < scores.size(); ++i) {
        if (probs[i] < floor && scores[i] < best) scores[i] = kRemoved;
    }
}

void epsilon(std::span<float> scores, float eps) {
    below_floor(scores, softmax(scores), eps);
}

// eta = min(eps, sqrt(eps) * exp(-entropy)), entropy as torch's Categorical computes it.
void eta(std::span<float> scores, float eps) {
    const std::vector<float> probs = softmax(scores);
    const std::vector<float> logp = log_softmax(scores);
    float entropy = 0.0f;
    for (size_t i = 0; i < scores.size(); ++i) {
        const float clamped = std::max(logp[i], std::numeric_limits<float>::lowest());
        entropy -= clamped * probs[i];
    }
    below_floor(scores, probs, std::min(eps, std::sqrt(eps) * std::exp(-entropy)));
}

void renormalize(std::span<float> scores) {
    const std::vector<float> logp = log_softmax(scores);
    std::copy(logp.begin(), logp.end(), scores.begin());
}

bool contains(const std::vector<int32_t>& ids, int32_t id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

LogitsProcessing::LogitsProcessing(const GenerationConfig& config, int64_t vocab_size) : config_(config) {
    config_.validate(vocab_size);
    for (const auto& [ids, bias] : config_.sequence_bias) {
        if (ids.size() > 1) {
            prefix_bias_.emplace_back(ids, bias);
            continue;
        }
        if (single_token_bias_.empty()) single_token_bias_.assign(static_cast<size_t>(vocab_size), 0.0f);
        single_token_bias_[static_cast<size_t>(ids[0])] += bias;
    }
    for (const auto& ids : config_.bad_words_ids) {
        if (ids.size() > 1) {
            banned_sequences_.push_back(ids);
        } else if (!contains(config_.eos_token_ids, ids[0])) {
            banned_tokens_.push_back(ids[0]);
        }
    }
}

void LogitsProcessing::add_biases(std::span<float> scores, const TokenContext& context, bool bans) const {
    if (bans) {
        for (int32_t id : banned_tokens_) scores[id] = kRemoved;
        for (const auto& ids : banned_sequences_) {
            const std::span<const int32_t> prefix(ids.data(), ids.size() - 1);
            if (static_cast<int64_t>(ids.size()) <= context.length() && ends_with(context.ids, prefix))
                scores[ids.back()] = kRemoved;
        }
        return;
    }
    // transformers sums the biases of each token first, then adds the sum to the score.
    std::unordered_map<int32_t, float> bias;
    for (const auto& [ids, b] : prefix_bias_) {
        const std::span<const int32_t> prefix(ids.data(), ids.size() - 1);
        if (static_cast<int64_t>(ids.size()) > context.length() || !ends_with(context.ids, prefix)) continue;
        auto [it, fresh] =
            bias.try_emplace(ids.back(), single_token_bias_.empty() ? 0.0f : single_token_bias_[ids.back()]);
        it->second += b;
    }
    if (!single_token_bias_.empty()) {
        for (size_t i = 0; i < scores.size(); ++i) {
            if (!bias.contains(static_cast<int32_t>(i))) scores[i] += single_token_bias_[i];
        }
    }
    for (const auto& [id, b] : bias) scores[id] += b;
}

void LogitsProcessing::process(std::span<float> scores, const TokenContext& context) const {
    const GenerationConfig& g = config_;
    const std::span<const int32_t> ids = context.ids;
    const int64_t length = context.length();
    if (!g.sequence_bias.empty()) add_biases(scores, context, /*bans=*/false);
    if (g.encoder_repetition_penalty != 1.0f) {
        // transformers' encoder_input_ids: a decoder-only model's prompt, left pads included.
        std::unordered_set<int32_t> seen(context.encoder_ids.begin(), context.encoder_ids.end());
        if (context.encoder_ids.empty()) {
            const auto prompt = static_cast<size_t>(
                std::clamp<int64_t>(context.input_length - context.pads, 0, static_cast<int64_t>(ids.size())));
            seen.insert(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(prompt));
            if (context.pads > 0) seen.insert(pad_id(g));
        }
        for (int32_t id : seen) {
            if (id < 0 || static_cast<size_t>(id) >= scores.size()) continue;
            float& v = scores[static_cast<size_t>(id)];
            v = v < 0.0f ? v / g.encoder_repetition_penalty : v * g.encoder_repetition_penalty;
        }
    }
    if (g.repetition_penalty != 1.0f) {
        std::unordered_set<int32_t> seen(ids.begin(), ids.end());
        // A padded row's pads are part of transformers' input_ids too.
        if (context.pads > 0) seen.insert(pad_id(g));
        for (int32_t id : seen) {
            if (id < 0 || static_cast<size_t>(id) >= scores.size()) continue;
            float& v = scores[static_cast<size_t>(id)];
            v = v < 0.0f ? v * g.repetition_penalty : v / g.repetition_penalty;
        }
    }
    if (g.presence_penalty != 0.0f || g.frequency_penalty != 0.0f) {
        const auto prompt = static_cast<size_t>(
            std::clamp<int64_t>(context.input_length - context.pads, 0, static_cast<int64_t>(ids.size())));
        std::unordered_map<int32_t, int32_t> counts;
        for (int32_t id : ids.subspan(prompt)) ++counts[id];
        for (const auto& [id, count] : counts) {
            if (id < 0 || static_cast<size_t>(id) >= scores.size()) continue;
            scores[static_cast<size_t>(id)] -= g.frequency_penalty * static_cast<float>(count) + g.presence_penalty;
        }
    }
    if (g.no_repeat_ngram_size > 0 && length + 1 >= g.no_repeat_ngram_size) {
        // Ban every token that once followed the context's last n-1 tokens.
        const auto n = static_cast<size_t>(g.no_repeat_ngram_size);
        const std::span<const int32_t> tail = ids.last(std::min(n - 1, ids.size()));
        for (size_t i = 0; i + n <= ids.size(); ++i) {
            if (std::equal(tail.begin(), tail.end(), ids.begin() + static_cast<std::ptrdiff_t>(i)))
                scores[ids[i + n - 1]] = kRemoved;
        }
    }
    if (g.encoder_no_repeat_ngram_size > 0 && length + 1 >= g.encoder_no_repeat_ngram_size) {
        // Ban every token that follows the context's last n-1 tokens somewhere in the encoder's input.
        const auto n = static_cast<size_t>(g.encoder_no_repeat_ngram_size);
        const std::span<const int32_t> encoder = context.encoder_ids;
        const std::span<const int32_t> tail = ids.last(std::min(n - 1, ids.size()));
        for (size_t i = 0; i + n <= encoder.size(); ++i) {
            const int32_t next = encoder[i + n - 1];
            if (std::equal(tail.begin(), tail.end(), encoder.begin() + static_cast<std::ptrdiff_t>(i)) && next >= 0 &&
                static_cast<size_t>(next) < scores.size())
                scores[static_cast<size_t>(next)] = kRemoved;
        }
    }
    if (!g.bad_words_ids.empty()) add_biases(scores, context, /*bans=*/true);
    const bool eos_banned = length < g.min_length || length - context.input_length < g.min_new_tokens;
    if (eos_banned) {
        for (int32_t eos : g.eos_token_ids) {
            if (eos >= 0 && static_cast<size_t>(eos) < scores.size()) scores[eos] = kRemoved;
        }
    }
    if (g.forced_bos_token_id && length == 1) {
        std::fill(scores.begin(), scores.end(), kRemoved);
        scores[*g.forced_bos_token_id] = 0.0f;
    }
    if (!g.forced_eos_token_ids.empty() && length == context.max_length - 1) {
        std::fill(scores.begin(), scores.end(), kRemoved);
        for (int32_t eos : g.forced_eos_token_ids) scores[eos] = 0.0f;
    }
    if (g.remove_invalid_values) {
        for (float& v : scores) {
            if (std::isnan(v)) v = 0.0f;
            if (std::isinf(v)) v = v > 0 ? std::numeric_limits<float>::max() : std::numeric_limits<float>::lowest();
        }
    }
    if (g.exponential_decay_length_penalty) {
        const auto [start, factor] = *g.exponential_decay_length_penalty;
        const int64_t regulation_start = start + context.input_length;
        if (length > regulation_start) {
            const auto growth = static_cast<float>(
                std::pow(static_cast<double>(factor), static_cast<double>(length - regulation_start)) - 1.0);
            for (int32_t eos : g.eos_token_ids) {
                if (eos >= 0 && static_cast<size_t>(eos) < scores.size()) scores[eos] += std::abs(scores[eos]) * growth;
            }
        }
    }
    for (int32_t id : g.suppress_tokens) scores[id] = kRemoved;
    if (!g.begin_suppress_tokens.empty()) {
        // The first generated token; after a forced BOS on a one-token prompt, the one after it.
        const int64_t begin = context.input_length + (context.input_length == 1 && g.forced_bos_token_id ? 1 : 0);
        if (length == begin) {
            for (int32_t id : g.begin_suppress_tokens) scores[id] = kRemoved;
        }
    }
    if (g.renormalize_logits) renormalize(scores);
}

void LogitsProcessing::warp(std::span<float> scores) const {
    const GenerationConfig& g = config_;
    if (!g.do_sample) return;
    if (g.temperature != 1.0f) {
        for (float& v : scores) v /= g.temperature;
    }
    if (g.top_k > 0) top_k(scores, g.top_k);
    if (g.top_p < 1.0) top_p(scores, g.top_p);
    if (g.min_p > 0.0f) min_p(scores, g.min_p);
    if (g.typical_p < 1.0f) typical(scores, g.typical_p);
    if (g.epsilon_cutoff > 0.0f) epsilon(scores, g.epsilon_cutoff);
    if (g.eta_cutoff > 0.0f) eta(scores, g.eta_cutoff);
    if (g.renormalize_logits) renormalize(scores);
}

int32_t LogitsProcessing::choose(std::span<float> scores, const TokenContext& context, std::mt19937_64& rng,
                                 const TokenConstraint* constraint) const {
    process(scores, context);
    if (constraint) constraint->mask(scores);
    if (!config_.do_sample)
        return static_cast<int32_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
    warp(scores);
    const std::vector<float> probs = softmax(scores);
    std::discrete_distribution<int32_t> draw(probs.begin(), probs.end());
    return draw(rng);
}

StepScores step_scores(std::span<const float> scores, int32_t chosen, int32_t n) {
    StepScores out;
    const std::vector<float> logp = log_softmax(scores);
    out.chosen_logprob = logp[static_cast<size_t>(chosen)];
    std::vector<int32_t> finite;
    for (size_t i = 0; i < logp.size(); ++i) {
        if (std::isfinite(logp[i])) finite.push_back(static_cast<int32_t>(i));
    }
    out.n_finite = static_cast<int32_t>(finite.size());
    const auto k = std::min<size_t>(static_cast<size_t>(std::max(n, 0)), finite.size());
    std::partial_sort(finite.begin(), finite.begin() + static_cast<std::ptrdiff_t>(k), finite.end(),
                      [&](int32_t a, int32_t b) { return logp[a] > logp[b] || (logp[a] == logp[b] && a < b); });
    for (size_t i = 0; i < k; ++i) {
        out.top_ids.push_back(finite[i]);
        out.top_logprobs.push_back(logp[finite[i]]);
    }
    return out;
}

}  // namespace tfx
