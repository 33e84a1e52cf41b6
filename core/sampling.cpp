#include "core/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

namespace tfx {
namespace {

constexpr float kRemoved = -std::numeric_limits<float>::infinity();

void softmax_in_place(std::vector<float>& p) {
    const float max = *std::max_element(p.begin(), p.end());
    float sum = 0.0f;
    for (float& v : p) sum += (v = v == kRemoved ? 0.0f : std::exp(v - max));
    for (float& v : p) v /= sum;
}

std::vector<float> probabilities(std::span<const float> logits) {
    std::vector<float> p(logits.begin(), logits.end());
    softmax_in_place(p);
    return p;
}

void top_k(std::span<float> logits, int64_t k) {
    k = std::min<int64_t>(k, static_cast<int64_t>(logits.size()));
    std::vector<float> sorted(logits.begin(), logits.end());
    std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<>());
    const float threshold = sorted[static_cast<size_t>(k - 1)];
    for (float& v : logits) {
        if (v < threshold) v = kRemoved;
    }
}

void top_p(std::span<float> logits, float p) {
    std::vector<size_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] < logits[b]; });
    std::vector<float> probs = probabilities(logits);
    float cumulative = 0.0f;
    for (size_t i = 0; i + 1 < order.size(); ++i) {  // the most likely token always stays
        cumulative += probs[order[i]];
        if (cumulative <= 1.0f - p) logits[order[i]] = kRemoved;
    }
}

void min_p(std::span<float> logits, float m) {
    std::vector<float> probs = probabilities(logits);
    const float threshold = m * *std::max_element(probs.begin(), probs.end());
    for (size_t i = 0; i < logits.size(); ++i) {
        if (probs[i] < threshold) logits[i] = kRemoved;
    }
}

}  // namespace

int32_t choose_next_token(std::span<float> logits, std::span<const int32_t> context, size_t prompt_length,
                          const GenerationConfig& g, std::mt19937_64& rng) {
    if (g.repetition_penalty != 1.0f) {
        std::unordered_set<int32_t> seen(context.begin(), context.end());
        for (int32_t id : seen) {
            if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
            float& v = logits[static_cast<size_t>(id)];
            v = v < 0.0f ? v * g.repetition_penalty : v / g.repetition_penalty;
        }
    }
    if (g.presence_penalty != 0.0f || g.frequency_penalty != 0.0f) {
        std::unordered_map<int32_t, int32_t> counts;
        for (int32_t id : context.subspan(std::min(prompt_length, context.size()))) ++counts[id];
        for (const auto& [id, count] : counts) {
            if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
            logits[static_cast<size_t>(id)] -= g.frequency_penalty * static_cast<float>(count) + g.presence_penalty;
        }
    }
    if (!g.do_sample) {
        return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    if (g.temperature != 1.0f) {
        for (float& v : logits) v /= g.temperature;
    }
    if (g.top_k > 0) top_k(logits, g.top_k);
    if (g.top_p < 1.0f) top_p(logits, g.top_p);
    if (g.min_p > 0.0f) min_p(logits, g.min_p);
    std::vector<float> probs = probabilities(logits);
    std::discrete_distribution<int32_t> draw(probs.begin(), probs.end());
    return draw(rng);
}

}  // namespace tfx
