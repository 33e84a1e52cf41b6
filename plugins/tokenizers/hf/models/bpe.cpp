#include "bpe.h"

#include <algorithm>
#include <cstdio>

#include "../error.h"
#include "../utf8.h"

namespace tfx::tok {

// Open-addressing map from a (left id, right id) pair to its merge; later duplicates of
// a pair overwrite earlier ones, as when the Rust crate collects merges into a HashMap.
class BpeModel::MergeMap {
  public:
    explicit MergeMap(size_t n) {
        size_t cap = 16;
        while (cap < n * 2) cap <<= 1;
        slots_.assign(cap, Slot{kEmpty, {}});
        mask_ = cap - 1;
    }
    void insert(int32_t a, int32_t b, MergeValue v) {
        const uint64_t key = pack(a, b);
        size_t i = slot(key);
        while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask_;
        slots_[i] = {key, v};
    }
    const MergeValue* find(int32_t a, int32_t b) const {
        const uint64_t key = pack(a, b);
        for (size_t i = slot(key);; i = (i + 1) & mask_) {
            if (slots_[i].key == key) return &slots_[i].value;
            if (slots_[i].key == kEmpty) return nullptr;
        }
    }

  private:
    struct Slot {
        uint64_t key;
        MergeValue value;
    };
    static constexpr uint64_t kEmpty = ~uint64_t{0};
    static uint64_t pack(int32_t a, int32_t b) {
        return static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32 | static_cast<uint32_t>(b);
    }
    size_t slot(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> 20) & mask_; }

    std::vector<Slot> slots_;
    size_t mask_;
};

// Word cache as in the Rust crate: bounded, words shorter than 256 bytes, and never
// waits for a lock (a busy cache is simply skipped).
class BpeModel::Cache {
  public:
    static constexpr size_t kCapacity = 10000;
    static constexpr size_t kMaxWordBytes = 256;

    template <class F>
    bool visit(std::string_view word, F&& fn) {
        std::unique_lock lock(mutex_, std::try_to_lock);
        if (!lock) return false;
        auto it = map_.find(word);
        if (it == map_.end()) return false;
        fn(it->second);
        return true;
    }
    void put(std::string_view word, const Word& value) {
        if (word.size() >= kMaxWordBytes) return;
        std::unique_lock lock(mutex_, std::try_to_lock);
        if (!lock || map_.size() >= kCapacity) return;
        map_.emplace(std::string(word), value);
    }

  private:
    std::mutex mutex_;
    std::unordered_map<std::string, Word, StringHash, std::equal_to<>> map_;
};

// Set of adjacent code point pairs (c1, c2) that occur inside some merge result. Grows as
// pairs arrive (most pairs repeat across merge results, so sizing it from the merge count
// would reserve tens of MB for a large vocabulary).
class BpeModel::PairSet {
  public:
    PairSet() : keys_(64, kEmpty), mask_(63) {}
    void insert(char32_t a, char32_t b) {
        const uint64_t key = pack(a, b);
        size_t i = slot(key);
        while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
        if (keys_[i] == key) return;
        keys_[i] = key;
        if (++count_ * 2 > keys_.size()) grow();
    }
    bool contains(char32_t a, char32_t b) const {
        const uint64_t key = pack(a, b);
        for (size_t i = slot(key);; i = (i + 1) & mask_) {
            if (keys_[i] == key) return true;
            if (keys_[i] == kEmpty) return false;
        }
    }

  private:
    static constexpr uint64_t kEmpty = ~uint64_t{0};
    static uint64_t pack(char32_t a, char32_t b) { return static_cast<uint64_t>(a) << 32 | b; }
    size_t slot(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> 20) & mask_; }
    void grow() {
        std::vector<uint64_t> old(keys_.size() * 2, kEmpty);
        old.swap(keys_);
        mask_ = keys_.size() - 1;
        for (const uint64_t key : old) {
            if (key == kEmpty) continue;
            size_t i = slot(key);
            while (keys_[i] != kEmpty) i = (i + 1) & mask_;
            keys_[i] = key;
        }
    }

    std::vector<uint64_t> keys_;
    size_t mask_;
    size_t count_ = 0;
};

BpeModel::BpeModel(Vocab vocab, const MergeList& merges, BpeOptions options)
    : vocab_(std::move(vocab)),
      merges_(std::make_unique<MergeMap>(merges.size())),
      options_(std::move(options)),
      cache_(std::make_unique<Cache>()) {
    const size_t prefix_len = options_.continuing_subword_prefix ? options_.continuing_subword_prefix->size() : 0;
    merge_results_.reserve(merges.size());
    std::string merged;
    for (size_t rank = 0; rank < merges.size(); ++rank) {
        const std::string_view a = merges.left(rank);
        const std::string_view b = merges.right(rank);
        const auto where = [&](std::string_view t) {
            return "model.merges[" + std::to_string(rank) + "]: token \"" + std::string(t) +
                   "\" is not in the vocabulary";
        };
        const auto a_id = vocab_.find(a);
        if (!a_id) throw Error(where(a));
        const auto b_id = vocab_.find(b);
        if (!b_id) throw Error(where(b));
        // The result is a + b without b's subword prefix; a + b lie side by side in the list.
        std::string_view result = merges.both(rank);
        if (prefix_len > 0) {
            merged.assign(a);
            merged.append(b.substr(std::min(prefix_len, b.size())));
            result = merged;
        }
        const auto new_id = vocab_.find(result);
        if (!new_id) throw Error(where(result));
        merges_->insert(*a_id, *b_id, {static_cast<uint32_t>(rank), *new_id});
        merge_results_.push_back(*new_id);
    }
    can_split_words_ = !options_.continuing_subword_prefix && !options_.end_of_word_suffix;
    if (options_.unk_token) unk_id_ = vocab_.find(*options_.unk_token);
    char name[8];
    for (int b = 0; b < 256; ++b) {
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        byte_ids_[static_cast<size_t>(b)] = vocab_.find(name).value_or(-1);
    }
}

BpeModel::~BpeModel() = default;

void BpeModel::merge_word(std::string_view w, Word& out) const {
    struct Symbol {
        int32_t id;
        uint32_t len;
        int32_t prev;
        int32_t next;
    };
    thread_local std::vector<Symbol> symbols;
    thread_local std::string scratch;
    symbols.clear();
    const auto add = [&](int32_t id, uint32_t len) {
        const auto index = static_cast<int32_t>(symbols.size());
        symbols.push_back({id, len, index - 1, -1});
        if (index > 0) symbols[static_cast<size_t>(index) - 1].next = index;
    };
    const auto require_unk = [&]() -> int32_t {
        if (!unk_id_) throw Error("unk_token \"" + *options_.unk_token + "\" is not in the vocabulary");
        return *unk_id_;
    };

    // An unknown char waiting to be emitted (possibly fused with the following ones).
    bool has_unk = false;
    uint32_t unk_len = 0;
    size_t i = 0;
    while (i < w.size()) {
        const size_t len = std::min(utf8::seq_len(static_cast<unsigned char>(w[i])), w.size() - i);
        const bool is_first = i == 0;
        const bool is_last = i + len == w.size();
        std::string_view s = w.substr(i, len);
        if ((!is_first && options_.continuing_subword_prefix) || (is_last && options_.end_of_word_suffix)) {
            scratch.clear();
            if (!is_first && options_.continuing_subword_prefix) scratch += *options_.continuing_subword_prefix;
            scratch += s;
            if (is_last && options_.end_of_word_suffix) scratch += *options_.end_of_word_suffix;
            s = scratch;
        }
        i += len;
        if (const auto id = vocab_.find(s)) {
            if (has_unk) {
                add(require_unk(), unk_len);
                has_unk = false;
            }
            add(*id, static_cast<uint32_t>(len));
            continue;
        }
        if (options_.byte_fallback &&
            std::all_of(s.begin(), s.end(), [&](char b) { return byte_ids_[static_cast<unsigned char>(b)] >= 0; })) {
            for (char b : s) add(byte_ids_[static_cast<unsigned char>(b)], 1);
            continue;
        }
        if (options_.unk_token) {
            if (has_unk && options_.fuse_unk) {
                unk_len += static_cast<uint32_t>(len);
            } else {
                if (has_unk) add(require_unk(), unk_len);
                require_unk();
                has_unk = true;
                unk_len = static_cast<uint32_t>(len);
            }
        }
    }
    if (has_unk) add(require_unk(), unk_len);

    if (symbols.size() > 1) {
        struct Candidate {
            uint32_t rank;
            int32_t pos;
            int32_t new_id;
            bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
        };
        // A min-heap on (rank, position), kept in a reused buffer.
        thread_local std::vector<Candidate> queue;
        queue.clear();
        const auto push = [&](Candidate c) {
            queue.push_back(c);
            std::push_heap(queue.begin(), queue.end());
        };
        for (size_t k = 0; k + 1 < symbols.size(); ++k)
            if (const auto* m = merges_->find(symbols[k].id, symbols[k + 1].id))
                push({m->rank, static_cast<int32_t>(k), m->new_id});
        while (!queue.empty()) {
            std::pop_heap(queue.begin(), queue.end());
            const Candidate top = queue.back();
            queue.pop_back();
            Symbol& cur = symbols[static_cast<size_t>(top.pos)];
            if (cur.len == 0 || cur.next == -1) continue;
            const Symbol right = symbols[static_cast<size_t>(cur.next)];
            const auto* m = merges_->find(cur.id, right.id);
            if (!m || m->new_id != top.new_id) continue;  // stale entry
            symbols[static_cast<size_t>(cur.next)].len = 0;
            cur.id = top.new_id;
            cur.len += right.len;
            cur.next = right.next;
            if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;
            if (cur.prev >= 0)
                if (const auto* p = merges_->find(symbols[static_cast<size_t>(cur.prev)].id, cur.id))
                    push({p->rank, cur.prev, p->new_id});
            if (cur.next >= 0)
                if (const auto* n = merges_->find(cur.id, symbols[static_cast<size_t>(cur.next)].id))
                    push({n->rank, top.pos, n->new_id});
        }
    }
    out.clear();
    for (const auto& s : symbols)
        if (s.len != 0) out.emplace_back(s.id, s.len);
}

void BpeModel::emit(const Word& word, size_t base, std::vector<Token>& out) const {
    size_t offset = base;
    for (const auto& [id, len] : word) {
        const auto value = vocab_.token(id);
        out.push_back({id, value ? std::string(*value) : std::string(), offset, offset + len});
        offset += len;
    }
}

const BpeModel::PairSet& BpeModel::junction_pairs() const {
    std::call_once(junction_once_, [&] {
        auto pairs = std::make_unique<PairSet>();
        for (const int32_t id : merge_results_) {
            const std::string_view t = *vocab_.token(id);
            char32_t prev = 0;
            for (size_t i = 0, len; i < t.size(); i += len) {
                const char32_t c = utf8::decode(t, i, len);
                if (i > 0) pairs->insert(prev, c);
                prev = c;
            }
        }
        junction_pairs_ = std::move(pairs);
    });
    return *junction_pairs_;
}

void BpeModel::tokenize_word(std::string_view word, size_t base, std::vector<Token>& out) const {
    if (cache_->visit(word, [&](const Word& w) { emit(w, base, out); })) return;
    thread_local Word merged;
    merge_word(word, merged);
    emit(merged, base, out);
    cache_->put(word, merged);
}

void BpeModel::tokenize(std::string_view piece, std::vector<Token>& out) const {
    if (piece.empty()) return;
    if (options_.ignore_merges) {
        if (const auto id = vocab_.find(piece)) {
            out.push_back({*id, std::string(piece), 0, piece.size()});
            return;
        }
    }
    constexpr size_t kSplitThreshold = 64;
    if (piece.size() < kSplitThreshold || !can_split_words_) {
        tokenize_word(piece, 0, out);
        return;
    }
    // A long piece (e.g. a whole sentence when there is no pre-tokenizer) is cut between two
    // in-vocabulary chars that never sit side by side inside a merge result: no merge can
    // cross such a junction, so the parts merge exactly as the whole would, and each part
    // can use the word cache.
    const PairSet& pairs = junction_pairs();
    size_t start = 0, prev_begin = 0, len = 0;
    char32_t prev = utf8::decode(piece, 0, len);
    for (size_t i = len; i < piece.size(); i += len) {
        const char32_t c = utf8::decode(piece, i, len);
        if (!pairs.contains(prev, c) && vocab_.find(piece.substr(prev_begin, i - prev_begin)) &&
            vocab_.find(piece.substr(i, len))) {
            tokenize_word(piece.substr(start, i - start), start, out);
            start = i;
        }
        prev = c;
        prev_begin = i;
    }
    tokenize_word(piece.substr(start), start, out);
}

}  // namespace tfx::tok
