// Constrained decoding: the output must match a regular expression (a JSON schema compiles to
// one, json_schema_regex.h). Each step masks every token whose bytes would leave the
// automaton with no match ahead; EOS is allowed exactly when the text so far is a whole match,
// and is the only choice once nothing can follow. The allowed tokens of an automaton state are
// found once (every token's bytes walked through the lazily built DFA) and kept, so a state
// seen again costs a lookup.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/regex_automaton.h"

namespace tfx {

// Each token's bytes in decoded text; nullopt for tokens that are not text (special tokens).
using TokenBytes = std::vector<std::optional<std::string>>;

// A pattern compiled against a vocabulary; shared by every sequence that follows it.
class ConstraintAutomaton {
  public:
    ConstraintAutomaton(std::string_view pattern, std::shared_ptr<const TokenBytes> vocabulary,
                        std::vector<int32_t> eos_token_ids);

    // Tokens that keep a match possible from `state`, ascending.
    const std::vector<int32_t>& allowed(int32_t state);
    // The state after `token` (RegexAutomaton::kDead when it breaks the match).
    int32_t after(int32_t state, int32_t token);
    bool accepting(int32_t state) const { return regex_.accepting(state); }
    const std::vector<int32_t>& eos_token_ids() const { return eos_; }
    RegexAutomaton& regex() { return regex_; }

  private:
    RegexAutomaton regex_;
    std::shared_ptr<const TokenBytes> vocabulary_;
    std::vector<int32_t> eos_;
    std::unordered_map<int32_t, std::vector<int32_t>> allowed_;
};

// One sequence's place in its automaton.
class TokenConstraint {
  public:
    explicit TokenConstraint(std::shared_ptr<ConstraintAutomaton> automaton)
        : automaton_(std::move(automaton)), state_(automaton_->regex().start()) {}

    // Sets every score but the allowed tokens' to -inf.
    void mask(std::span<float> scores) const;
    // Follows the chosen token (an EOS ends the constraint's text).
    void advance(int32_t token);
    // Whether the text so far is a whole match.
    bool complete() const { return state_ != RegexAutomaton::kDead && automaton_->accepting(state_); }

  private:
    std::shared_ptr<ConstraintAutomaton> automaton_;
    int32_t state_;
    bool ended_ = false;
};

}  // namespace tfx
