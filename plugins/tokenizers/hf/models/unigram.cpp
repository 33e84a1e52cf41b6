#include "unigram.h"

#include <cstdio>
#include <limits>

#include "../error.h"
#include "../utf8.h"

namespace tfx::tok {
namespace {

constexpr double kUnkPenalty = 10.0;

size_t edge_slot(uint64_t key, size_t mask) {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> 24) & mask;
}

}  // namespace

UnigramModel::UnigramModel(std::vector<std::pair<std::string, double>> pieces, std::optional<size_t> unk_id,
                           bool byte_fallback)
    : pieces_(std::move(pieces)), byte_fallback_(byte_fallback), min_score_(std::numeric_limits<double>::infinity()) {
    if (unk_id) {
        if (pieces_.empty()) throw Error("model.vocab: the Unigram vocabulary is empty but unk_id is set");
        if (*unk_id >= pieces_.size()) throw Error("model.unk_id: larger than the vocabulary size");
        unk_id_ = static_cast<int32_t>(*unk_id);
    }
    size_t total_bytes = 0;
    for (const auto& p : pieces_) total_bytes += p.first.size();
    size_t cap = 64;
    while (cap < total_bytes * 2 + 2) cap <<= 1;
    edge_keys_.assign(cap, 0);
    edge_values_.assign(cap, -1);
    edge_mask_ = cap - 1;
    nodes_.emplace_back();

    to_id_.reserve(pieces_.size());
    for (size_t id = 0; id < pieces_.size(); ++id) {
        to_id_.insert(pieces_[id].first, static_cast<int32_t>(id));
        min_score_ = std::min(min_score_, pieces_[id].second);
    }
    // Trie nodes resolve to the map's id (a duplicated piece maps to its last id).
    for (const auto& p : pieces_) add_to_trie(p.first, *to_id_.find(p.first));
}

void UnigramModel::add_to_trie(std::string_view token, int32_t id) {
    int32_t node = 0;
    for (char ch : token) {
        const uint64_t key = (static_cast<uint64_t>(node) << 8 | static_cast<unsigned char>(ch)) + 1;
        size_t i = edge_slot(key, edge_mask_);
        while (edge_keys_[i] != 0 && edge_keys_[i] != key) i = (i + 1) & edge_mask_;
        if (edge_keys_[i] == 0) {
            edge_keys_[i] = key;
            edge_values_[i] = static_cast<int32_t>(nodes_.size());
            nodes_.emplace_back();
        }
        node = edge_values_[i];
    }
    if (!token.empty()) nodes_[static_cast<size_t>(node)].token = id;
}

int32_t UnigramModel::child(int32_t node, unsigned char byte) const {
    const uint64_t key = (static_cast<uint64_t>(node) << 8 | byte) + 1;
    for (size_t i = edge_slot(key, edge_mask_);; i = (i + 1) & edge_mask_) {
        if (edge_keys_[i] == key) return edge_values_[i];
        if (edge_keys_[i] == 0) return -1;
    }
}

std::optional<std::string_view> UnigramModel::id_to_token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return std::nullopt;
    return pieces_[static_cast<size_t>(id)].first;
}

void UnigramModel::tokenize(std::string_view s, std::vector<Token>& out) const {
    if (s.empty()) return;
    // Viterbi: best[end] = best path covering s[0, end). Ties keep the first candidate in
    // (start, length) order, as the Rust crate's encode_optimized.
    struct Best {
        int32_t id = -1;
        double score = 0;
        int64_t start = -1;
    };
    thread_local std::vector<Best> best;
    best.assign(s.size() + 1, Best{});
    const double unk_score = min_score_ - kUnkPenalty;
    size_t start = 0;
    while (start < s.size()) {
        const double base = best[start].score;
        const size_t char_len = std::min(utf8::seq_len(static_cast<unsigned char>(s[start])), s.size() - start);
        bool has_single_char = false;
        int32_t node = 0;
        for (size_t end = start; end < s.size();) {
            node = child(node, static_cast<unsigned char>(s[end]));
            if (node < 0) break;
            ++end;
            const int32_t id = nodes_[static_cast<size_t>(node)].token;
            if (id < 0) continue;
            Best& target = best[end];
            const double candidate = base + pieces_[static_cast<size_t>(id)].second;
            if (target.start < 0 || candidate > target.score) target = {id, candidate, static_cast<int64_t>(start)};
            has_single_char |= end - start == char_len;
        }
        if (!has_single_char) {
            if (!unk_id_) throw Error("Unigram: unknown piece but the model has no unk_id");
            Best& target = best[start + char_len];
            const double candidate = base + unk_score;
            if (target.start < 0 || candidate > target.score)
                target = {*unk_id_, candidate, static_cast<int64_t>(start)};
        }
        start += char_len;
    }

    // Backtrack, fusing consecutive unknown pieces.
    thread_local std::vector<std::pair<size_t, size_t>> spans;
    spans.clear();
    size_t end = s.size();
    bool previous_unk = false;
    while (end > 0) {
        const Best& node = best[end];
        const auto begin = static_cast<size_t>(node.start);
        const bool is_unk = unk_id_ && node.id == *unk_id_;
        if (is_unk && previous_unk)
            spans.back().first = begin;
        else
            spans.emplace_back(begin, end);
        previous_unk = is_unk;
        end = begin;
    }

    char byte_name[8];
    for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        const auto [b, e] = *it;
        const std::string_view piece = s.substr(b, e - b);
        if (const auto id = to_id_.find(piece)) {
            out.push_back({*id, std::string(piece), b, e});
            continue;
        }
        if (byte_fallback_) {
            const size_t first = out.size();
            bool all = true;
            for (char ch : piece) {
                std::snprintf(byte_name, sizeof byte_name, "<0x%02X>", static_cast<unsigned char>(ch));
                const auto id = to_id_.find(byte_name);
                if (!id) {
                    all = false;
                    break;
                }
                out.push_back({*id, byte_name, b, e});
            }
            if (all) continue;
            out.resize(first);
        }
        if (!unk_id_) throw Error("Unigram: unknown piece but the model has no unk_id");
        out.push_back({*unk_id_, std::string(piece), b, e});
    }
}

}  // namespace tfx::tok
