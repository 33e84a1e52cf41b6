#include "core/token_constraint.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tfx/sdk/error.hpp"

namespace tfx {

ConstraintAutomaton::ConstraintAutomaton(std::string_view pattern, std::shared_ptr<const TokenBytes> vocabulary,
                                         std::vector<int32_t> eos_token_ids)
    : regex_(pattern), vocabulary_(std::move(vocabulary)), eos_(std::move(eos_token_ids)) {
    if (eos_.empty())
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "constrained decoding needs an EOS token to end the output with");
}

int32_t ConstraintAutomaton::after(int32_t state, int32_t token) {
    const auto& bytes = (*vocabulary_)[static_cast<size_t>(token)];
    if (!bytes || bytes->empty()) return RegexAutomaton::kDead;
    for (char c : *bytes) {
        state = regex_.next(state, static_cast<uint8_t>(c));
        if (state == RegexAutomaton::kDead) break;
    }
    return state;
}

const std::vector<int32_t>& ConstraintAutomaton::allowed(int32_t state) {
    const auto it = allowed_.find(state);
    if (it != allowed_.end()) return it->second;
    std::vector<int32_t> tokens;
    for (size_t t = 0; t < vocabulary_->size(); ++t) {
        if (after(state, static_cast<int32_t>(t)) != RegexAutomaton::kDead) tokens.push_back(static_cast<int32_t>(t));
    }
    return allowed_.emplace(state, std::move(tokens)).first->second;
}

void TokenConstraint::mask(std::span<float> scores) const {
    if (ended_) return;
    const std::vector<int32_t>& allowed = automaton_->allowed(state_);
    std::vector<float> kept(allowed.size());
    for (size_t i = 0; i < allowed.size(); ++i) {
        kept[i] = static_cast<size_t>(allowed[i]) < scores.size() ? scores[static_cast<size_t>(allowed[i])]
                                                                  : -std::numeric_limits<float>::infinity();
    }
    std::vector<float> eos;
    for (int32_t id : automaton_->eos_token_ids())
        eos.push_back(static_cast<size_t>(id) < scores.size() ? scores[id] : 0);
    std::fill(scores.begin(), scores.end(), -std::numeric_limits<float>::infinity());
    for (size_t i = 0; i < allowed.size(); ++i) {
        if (static_cast<size_t>(allowed[i]) < scores.size()) scores[static_cast<size_t>(allowed[i])] = kept[i];
    }
    // The end of the output: allowed once the text matches, and forced when nothing else can
    // follow (or when no token fits, so that a dead end still stops).
    const bool only_end = allowed.empty() || std::all_of(allowed.begin(), allowed.end(), [&](int32_t t) {
                              return !std::isfinite(scores[static_cast<size_t>(t)]);
                          });
    if (automaton_->accepting(state_) || only_end) {
        const auto& ids = automaton_->eos_token_ids();
        for (size_t i = 0; i < ids.size(); ++i) {
            if (static_cast<size_t>(ids[i]) >= scores.size()) continue;
            // A processor may have banned EOS (min_new_tokens): with nothing else allowed it comes back at 0.
            scores[static_cast<size_t>(ids[i])] = std::isfinite(eos[i]) ? eos[i] : (only_end ? 0.0f : eos[i]);
        }
    }
}

void TokenConstraint::advance(int32_t token) {
    if (ended_) return;
    const auto& eos = automaton_->eos_token_ids();
    if (std::find(eos.begin(), eos.end(), token) != eos.end()) {
        ended_ = true;
        return;
    }
    state_ = automaton_->after(state_, token);
    if (state_ == RegexAutomaton::kDead) ended_ = true;  // a token chosen outside the mask (teacher forcing)
}

}  // namespace tfx
