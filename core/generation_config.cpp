#include "core/generation_config.h"

#include <cmath>
#include <sstream>
#include <string>
#include <utility>

#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

std::vector<int32_t> token_ids(const sdk::Config& c, const char* key) {
    std::vector<int32_t> ids;
    if (!c.has(key)) return ids;
    const auto& v = c.json().at(key);
    if (v.is_number_integer()) {
        ids.push_back(c.get<int32_t>(key));
    } else if (v.is_array()) {
        for (const auto& id : v) {
            if (!id.is_number_integer()) c.fail(key, "expected an integer or a list of integers");
            ids.push_back(id.get<int32_t>());
        }
    } else {
        c.fail(key, "expected an integer or a list of integers");
    }
    return ids;
}

}  // namespace

GenerationConfig GenerationConfig::from_model(const sdk::Config& config, const std::optional<sdk::Config>& generation) {
    GenerationConfig g;
    const sdk::Config& src = generation ? *generation : config;
    g.eos_token_ids = token_ids(src, "eos_token_id");
    if (g.eos_token_ids.empty() && generation) g.eos_token_ids = token_ids(config, "eos_token_id");
    if (auto pad = token_ids(src, "pad_token_id"); !pad.empty()) g.pad_token_id = pad.front();
    if (!generation) return g;
    const sdk::Config& c = *generation;
    g.do_sample = c.get_or<bool>("do_sample", g.do_sample);
    g.temperature = c.get_or<float>("temperature", g.temperature);
    g.top_k = c.get_or<int64_t>("top_k", g.top_k);
    g.top_p = c.get_or<float>("top_p", g.top_p);
    g.min_p = c.get_or<float>("min_p", g.min_p);
    g.repetition_penalty = c.get_or<float>("repetition_penalty", g.repetition_penalty);
    if (c.has("max_new_tokens"))
        g.max_new_tokens = c.get<int64_t>("max_new_tokens");
    else if (c.has("max_length"))
        g.max_length = c.get<int64_t>("max_length");
    return g;
}

namespace {

std::string number(double v) {
    std::ostringstream out;
    out << v;
    return out.str();
}

}  // namespace

// The ranges of transformers' logits processors (TemperatureLogitsWarper, TopKLogitsWarper,
// TopPLogitsWarper, MinPLogitsWarper, RepetitionPenaltyLogitsProcessor), plus finiteness, and a
// floor on temperature: below it logits / temperature overflows to inf and the draw is NaN.
// Each message starts with the field's name (the command line maps it to its option).
void GenerationConfig::validate() const {
    auto fail = [](const std::string& what) { throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, what); };
    if (max_new_tokens < 0) fail("max_new_tokens must be >= 0, got " + std::to_string(max_new_tokens));
    if (!(std::isfinite(repetition_penalty) && repetition_penalty > 0.0f))
        fail("repetition_penalty must be a finite number > 0 (1: off), got " + number(repetition_penalty));
    for (const auto& [name, value] :
         {std::pair{"presence_penalty", presence_penalty}, std::pair{"frequency_penalty", frequency_penalty}}) {
        if (!(value >= -2.0f && value <= 2.0f))
            fail(std::string(name) + " must be a number in [-2, 2] (0: off), got " + number(value));
    }
    if (!do_sample) return;
    if (!(std::isfinite(temperature) && temperature >= kMinTemperature)) {
        fail("temperature must be a finite number >= " + number(kMinTemperature) + " when sampling, got " +
             number(temperature) + " (for argmax use greedy decoding)");
    }
    if (top_k < 0) fail("top_k must be an integer >= 0 (0 disables it), got " + std::to_string(top_k));
    if (!(top_p > 0.0f && top_p <= 1.0f)) fail("top_p must be a number in (0, 1], got " + number(top_p));
    if (!(min_p >= 0.0f && min_p <= 1.0f))
        fail("min_p must be a number in [0, 1] (0 disables it), got " + number(min_p));
}

}  // namespace tfx
