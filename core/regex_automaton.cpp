#include "core/regex_automaton.h"

#include <algorithm>
#include <bitset>

#include "tfx/sdk/error.hpp"

namespace tfx {

namespace {
// NFA states a pattern may compile to: {n,m} copies its atom, so a pattern can be small and its
// automaton huge.
constexpr size_t kMaxNfaStates = 400000;
// Groups nested deeper than this are refused: the parser recurses once per level.
constexpr int kMaxDepth = 200;
// DFA states built at most: some patterns ((a|b)*a(a|b){20}) have exponentially many, and an
// untrusted pattern must not take the memory (each state holds a 256-entry table).
constexpr size_t kMaxDfaStates = 100000;
}  // namespace

// Recursive descent over the pattern, building Thompson fragments in the automaton's NFA.
class RegexParser {
  public:
    RegexParser(RegexAutomaton& a, std::string_view p) : a_(a), p_(p) {}

    struct Fragment {
        int32_t start, end;  // `end` has no edges yet
    };

    void compile() {
        const Fragment f = alternation();
        if (pos_ != p_.size()) fail(p_[pos_] == ')' ? "unmatched ')'" : "unexpected character");
        a_.accept_ = f.end;
        if (f.start != 0) fail("internal: start state");
    }

  private:
    [[noreturn]] void fail(const std::string& what) const {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "regex: " + what + " at offset " + std::to_string(pos_) + " of '" + std::string(p_) + "'");
    }
    int32_t state() {
        if (a_.nfa_.size() >= kMaxNfaStates)
            fail("pattern too large (over " + std::to_string(kMaxNfaStates) + " states)");
        return a_.add_nfa_state();
    }
    void epsilon(int32_t from, int32_t to) { a_.nfa_[static_cast<size_t>(from)].epsilon.push_back(to); }
    Fragment empty() {
        const int32_t s = state(), e = state();
        epsilon(s, e);
        return {s, e};
    }
    bool at(char c) const { return pos_ < p_.size() && p_[pos_] == c; }

    Fragment alternation() {
        const int32_t s = state();
        const int32_t e = state();
        for (;;) {
            const Fragment f = concatenation();
            epsilon(s, f.start);
            epsilon(f.end, e);
            if (!at('|')) break;
            ++pos_;
        }
        return {s, e};
    }

    Fragment concatenation() {
        Fragment whole = empty();
        while (pos_ < p_.size() && !at('|') && !at(')')) {
            const Fragment f = repetition();
            epsilon(whole.end, f.start);
            whole.end = f.end;
        }
        return whole;
    }

    // An atom and its quantifier. Copies of the atom come from parsing its text again.
    Fragment repetition() {
        const size_t atom_at = pos_;
        Fragment first = atom();
        if (pos_ >= p_.size()) return first;
        int64_t lo = 1, hi = 1;  // hi < 0: unbounded
        const char q = p_[pos_];
        if (q == '*') {
            lo = 0, hi = -1;
        } else if (q == '+') {
            lo = 1, hi = -1;
        } else if (q == '?') {
            lo = 0, hi = 1;
        } else if (q == '{' && pos_ + 1 < p_.size() && std::isdigit(static_cast<unsigned char>(p_[pos_ + 1]))) {
            ++pos_;
            lo = hi = number();
            if (at(',')) {
                ++pos_;
                hi = at('}') ? -1 : number();
            }
            if (!at('}')) fail("expected '}' closing a {n,m} quantifier");
            if (hi >= 0 && hi < lo) fail("{n,m} with m < n");
            if (lo > 1000 || hi > 1000) fail("a {n,m} count above 1000");
        } else {
            return first;
        }
        ++pos_;
        if (pos_ < p_.size() && (at('*') || at('+') || at('?') || at('{')))
            fail("a quantifier after a quantifier (group the first: (a{2}){3})");
        const size_t after = pos_;
        auto copy = [&] {
            pos_ = atom_at;
            return atom();
        };
        // lo mandatory copies, then either a loop (unbounded) or hi - lo optional ones.
        Fragment whole = empty();
        for (int64_t i = 0; i < lo; ++i) {
            const Fragment f = i == 0 ? first : copy();
            epsilon(whole.end, f.start);
            whole.end = f.end;
        }
        if (hi < 0) {
            const Fragment f = lo == 0 ? first : copy();
            const int32_t e = state();
            epsilon(whole.end, f.start);
            epsilon(whole.end, e);
            epsilon(f.end, f.start);
            epsilon(f.end, e);
            whole.end = e;
        } else {
            const int32_t e = state();
            for (int64_t i = lo; i < hi; ++i) {
                const Fragment f = i == 0 ? first : copy();
                epsilon(whole.end, e);  // stop here
                epsilon(whole.end, f.start);
                whole.end = f.end;
            }
            epsilon(whole.end, e);
            whole.end = e;
        }
        pos_ = after;
        return whole;
    }

    int64_t number() {
        int64_t n = 0;
        if (!(pos_ < p_.size() && std::isdigit(static_cast<unsigned char>(p_[pos_])))) fail("expected a number");
        while (pos_ < p_.size() && std::isdigit(static_cast<unsigned char>(p_[pos_]))) {
            n = std::min<int64_t>(n * 10 + (p_[pos_] - '0'), 100000);
            ++pos_;
        }
        return n;
    }

    Fragment bytes(const std::bitset<256>& set) {
        const int32_t s = state(), e = state();
        for (int b = 0; b < 256;) {
            if (!set[static_cast<size_t>(b)]) {
                ++b;
                continue;
            }
            int hi = b;
            while (hi + 1 < 256 && set[static_cast<size_t>(hi + 1)]) ++hi;
            const int32_t r = state();
            epsilon(s, r);
            auto& edge = a_.nfa_[static_cast<size_t>(r)];
            edge.lo = static_cast<uint8_t>(b), edge.hi = static_cast<uint8_t>(hi), edge.to = e;
            b = hi + 1;
        }
        return {s, e};
    }

    Fragment literal(const std::string& text) {
        Fragment whole = empty();
        for (char c : text) {
            std::bitset<256> one;
            one.set(static_cast<uint8_t>(c));
            const Fragment f = bytes(one);
            epsilon(whole.end, f.start);
            whole.end = f.end;
        }
        return whole;
    }

    int hex_digits(int count) {
        int v = 0;
        for (int i = 0; i < count; ++i, ++pos_) {
            if (pos_ >= p_.size() || !std::isxdigit(static_cast<unsigned char>(p_[pos_]))) fail("expected a hex digit");
            const char c = p_[pos_];
            v = v * 16 + (std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10));
        }
        return v;
    }

    static std::string utf8(int cp) {
        std::string out;
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
        return out;
    }

    // After a backslash: a class (\d \w \s) into `set`, or the bytes of one character.
    std::string escape(std::bitset<256>& set, bool& is_class) {
        if (pos_ >= p_.size()) fail("a pattern ends with '\\'");
        const char c = p_[pos_++];
        is_class = false;
        switch (c) {
            case 'd':
            case 'w':
            case 's':
                is_class = true;
                for (int b = 0; b < 128; ++b) {
                    const bool digit = b >= '0' && b <= '9';
                    const bool word = digit || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b == '_';
                    const bool space = b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v';
                    if ((c == 'd' && digit) || (c == 'w' && word) || (c == 's' && space))
                        set.set(static_cast<size_t>(b));
                }
                return {};
            case 'n':
                return "\n";
            case 't':
                return "\t";
            case 'r':
                return "\r";
            case 'f':
                return "\f";
            case 'x':
                return std::string(1, static_cast<char>(hex_digits(2)));
            case 'u':
                return utf8(hex_digits(4));
            default:
                if (std::isalnum(static_cast<unsigned char>(c))) fail(std::string("unknown escape \\") + c);
                return std::string(1, c);
        }
    }

    Fragment atom() {
        if (pos_ >= p_.size()) fail("expected an atom");
        const char c = p_[pos_];
        if (c == '(') {
            if (++depth_ > kMaxDepth) fail("groups nested more than " + std::to_string(kMaxDepth) + " deep");
            ++pos_;
            if (p_.substr(pos_, 2) == "?:") pos_ += 2;
            const Fragment f = alternation();
            if (!at(')')) fail("expected ')'");
            ++pos_;
            --depth_;
            return f;
        }
        if (c == '[') return byte_class();
        if (c == '.') {
            ++pos_;
            std::bitset<256> any;
            any.set();
            any.reset('\n');
            return bytes(any);
        }
        if (c == '*' || c == '+' || c == '?' || c == ')' || c == '|') fail(std::string("unexpected '") + c + "'");
        if (c == '\\') {
            ++pos_;
            std::bitset<256> set;
            bool is_class = false;
            const std::string text = escape(set, is_class);
            return is_class ? bytes(set) : literal(text);
        }
        ++pos_;
        return literal(std::string(1, c));
    }

    Fragment byte_class() {
        ++pos_;  // '['
        const bool negated = at('^');
        if (negated) ++pos_;
        std::bitset<256> set;
        bool first = true;
        while (pos_ < p_.size() && (first || !at(']'))) {
            first = false;
            int lo = 0;
            if (at('\\')) {
                ++pos_;
                bool is_class = false;
                const std::string text = escape(set, is_class);
                if (is_class) continue;
                if (text.size() != 1) fail("a class holds single bytes (use (a|\\u00e9) for other characters)");
                lo = static_cast<uint8_t>(text[0]);
            } else {
                lo = static_cast<uint8_t>(p_[pos_++]);
            }
            int hi = lo;
            if (at('-') && pos_ + 1 < p_.size() && p_[pos_ + 1] != ']') {
                ++pos_;
                if (at('\\')) {
                    ++pos_;
                    bool is_class = false;
                    const std::string text = escape(set, is_class);
                    if (is_class || text.size() != 1) fail("a range ends in a single byte");
                    hi = static_cast<uint8_t>(text[0]);
                } else {
                    hi = static_cast<uint8_t>(p_[pos_++]);
                }
                if (hi < lo) fail("a range from a higher to a lower byte");
            }
            for (int b = lo; b <= hi; ++b) set.set(static_cast<size_t>(b));
        }
        if (!at(']')) fail("expected ']'");
        ++pos_;
        if (negated) set.flip();
        return bytes(set);
    }

    RegexAutomaton& a_;
    std::string_view p_;
    size_t pos_ = 0;
    int depth_ = 0;
};

RegexAutomaton::RegexAutomaton(std::string_view pattern) {
    RegexParser(*this, pattern).compile();
    std::vector<int32_t> start = {0};
    close(start);
    dfa_state(std::move(start));
}

int32_t RegexAutomaton::add_nfa_state() {
    nfa_.emplace_back();
    return static_cast<int32_t>(nfa_.size() - 1);
}

void RegexAutomaton::close(std::vector<int32_t>& states) const {
    std::vector<bool> seen(nfa_.size());
    std::vector<int32_t> todo = states;
    for (int32_t s : states) seen[static_cast<size_t>(s)] = true;
    while (!todo.empty()) {
        const int32_t s = todo.back();
        todo.pop_back();
        for (int32_t t : nfa_[static_cast<size_t>(s)].epsilon) {
            if (seen[static_cast<size_t>(t)]) continue;
            seen[static_cast<size_t>(t)] = true;
            states.push_back(t);
            todo.push_back(t);
        }
    }
    // Only states with a byte edge (or the accepting one) tell DFA states apart.
    std::erase_if(states, [&](int32_t s) { return nfa_[static_cast<size_t>(s)].to < 0 && s != accept_; });
    std::sort(states.begin(), states.end());
    states.erase(std::unique(states.begin(), states.end()), states.end());
}

int32_t RegexAutomaton::dfa_state(std::vector<int32_t> closure) {
    const auto it = dfa_ids_.find(closure);
    if (it != dfa_ids_.end()) return it->second;
    if (dfa_.size() >= kMaxDfaStates)
        throw sdk::Error(TFX_ERR_UNSUPPORTED, "regex: the pattern's automaton grew past " +
                                                  std::to_string(kMaxDfaStates) + " states; simplify the pattern");
    DfaState d;
    d.accepting = std::binary_search(closure.begin(), closure.end(), accept_);
    d.nfa = closure;
    d.next.fill(kUnknown);
    const auto id = static_cast<int32_t>(dfa_.size());
    dfa_.push_back(std::move(d));
    dfa_ids_.emplace(std::move(closure), id);
    return id;
}

int32_t RegexAutomaton::next(int32_t state, uint8_t byte) {
    int32_t cached = dfa_[static_cast<size_t>(state)].next[byte];
    if (cached != kUnknown) return cached;
    std::vector<int32_t> moved;
    for (int32_t s : dfa_[static_cast<size_t>(state)].nfa) {
        const NfaState& n = nfa_[static_cast<size_t>(s)];
        if (n.to >= 0 && n.lo <= byte && byte <= n.hi) moved.push_back(n.to);
    }
    if (moved.empty()) {
        cached = kDead;
    } else {
        close(moved);
        cached = dfa_state(std::move(moved));
    }
    dfa_[static_cast<size_t>(state)].next[byte] = cached;
    return cached;
}

bool RegexAutomaton::can_continue(int32_t state) {
    for (int b = 0; b < 256; ++b) {
        if (next(state, static_cast<uint8_t>(b)) != kDead) return true;
    }
    return false;
}

}  // namespace tfx
