// A regular expression over bytes, compiled to an NFA (Thompson's construction) and run as a
// DFA built lazily, one state and one transition at a time, as generation reaches them. It is
// the automaton behind constrained decoding (token_constraint.h): JSON schemas compile to one
// of these (json_schema_regex.h).
//
// Syntax (matched against the whole output): literals; escapes \. \\ \n \t \r \f \/ \" \xHH
// \uHHHH (written as UTF-8) \d \w \s; `.` (any byte but \n); classes [a-z0-9_] and [^...] with
// the same escapes (bytes, not characters: a class holds ASCII or single bytes); groups (...)
// and (?:...); alternation |; quantifiers * + ? {n} {n,} {n,m}.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace tfx {

class RegexAutomaton {
  public:
    // Throws sdk::Error (TFX_ERR_INVALID_ARGUMENT) naming the position of a syntax error.
    explicit RegexAutomaton(std::string_view pattern);

    static constexpr int32_t kDead = -1;
    int32_t start() const { return 0; }
    // The DFA state after `byte` (kDead when no match can continue).
    int32_t next(int32_t state, uint8_t byte);
    // Whether the bytes read so far match the whole pattern.
    bool accepting(int32_t state) const { return dfa_[static_cast<size_t>(state)].accepting; }
    // Whether any byte leads anywhere from `state` (false: only the end may follow).
    bool can_continue(int32_t state);
    size_t nfa_states() const { return nfa_.size(); }
    size_t dfa_states() const { return dfa_.size(); }

  private:
    struct NfaState {
        // A byte range [lo, hi] to `to`; epsilon edges in `epsilon`.
        uint8_t lo = 0, hi = 0;
        int32_t to = -1;
        std::vector<int32_t> epsilon;
    };
    struct DfaState {
        std::vector<int32_t> nfa;  // sorted, epsilon-closed
        bool accepting = false;
        std::array<int32_t, 256> next;  // kUnknown until computed
    };
    static constexpr int32_t kUnknown = -2;
    friend class RegexParser;

    int32_t add_nfa_state();
    int32_t dfa_state(std::vector<int32_t> closure);
    void close(std::vector<int32_t>& states) const;

    std::vector<NfaState> nfa_;
    int32_t accept_ = -1;
    std::vector<DfaState> dfa_;
    std::map<std::vector<int32_t>, int32_t> dfa_ids_;
};

}  // namespace tfx
