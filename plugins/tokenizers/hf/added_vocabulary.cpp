#include "added_vocabulary.h"

#include <algorithm>

#include "utf8.h"

namespace tfx::tok {
namespace {

bool same_token(const AddedToken& a, const AddedToken& b) {
    return a.content == b.content && a.single_word == b.single_word && a.lstrip == b.lstrip && a.rstrip == b.rstrip &&
           a.normalized == b.normalized && a.special == b.special;
}

char32_t last_char(std::string_view s) {
    size_t i = s.size() - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    size_t len;
    return utf8::decode(s, i, len);
}

// Start of the whitespace run that ends `s` (the regex `\s*$`).
size_t trailing_space_start(std::string_view s) {
    size_t i = s.size();
    while (i > 0) {
        size_t start = i - 1;
        while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        size_t len;
        if (!utf8::is_whitespace(utf8::decode(s, start, len))) break;
        i = start;
    }
    return i;
}

// Length of the whitespace run that starts `s` (the regex `^\s*`).
size_t leading_space_len(std::string_view s) {
    size_t i = 0, len;
    while (i < s.size() && utf8::is_whitespace(utf8::decode(s, i, len))) i += len;
    return i;
}

}  // namespace

void AddedVocabulary::Matcher::build(const std::vector<std::string>& patterns, std::vector<int32_t> ids) {
    nodes_.assign(1, Node{});
    ids_ = std::move(ids);
    std::fill(std::begin(first_bytes_), std::end(first_bytes_), false);
    for (size_t p = 0; p < patterns.size(); ++p) {
        const std::string& pat = patterns[p];
        if (pat.empty()) continue;
        first_bytes_[static_cast<unsigned char>(pat[0])] = true;
        size_t node = 0;
        for (char ch : pat) {
            const auto b = static_cast<unsigned char>(ch);
            auto& children = nodes_[node].children;
            auto it = std::lower_bound(children.begin(), children.end(), b,
                                       [](const auto& e, unsigned char v) { return e.first < v; });
            if (it == children.end() || it->first != b) {
                const auto next = static_cast<int32_t>(nodes_.size());
                children.insert(it, {b, next});
                nodes_.emplace_back();
                node = static_cast<size_t>(next);
            } else {
                node = static_cast<size_t>(it->second);
            }
        }
        if (nodes_[node].pattern < 0) nodes_[node].pattern = static_cast<int32_t>(p);  // first pattern wins
    }
}

std::pair<size_t, int32_t> AddedVocabulary::Matcher::longest_at(std::string_view text, size_t pos) const {
    std::pair<size_t, int32_t> best{0, -1};
    size_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
        const auto b = static_cast<unsigned char>(text[i]);
        const auto& children = nodes_[node].children;
        auto it = std::lower_bound(children.begin(), children.end(), b,
                                   [](const auto& e, unsigned char v) { return e.first < v; });
        if (it == children.end() || it->first != b) break;
        node = static_cast<size_t>(it->second);
        if (nodes_[node].pattern >= 0) best = {i + 1 - pos, ids_[static_cast<size_t>(nodes_[node].pattern)]};
    }
    return best;
}

void AddedVocabulary::add_tokens(const std::vector<AddedToken>& tokens, const Model& model,
                                 const Normalizer* normalizer) {
    for (const auto& t : tokens)
        if (t.special && !t.content.empty() && special_.insert(t.content).second) special_list_.push_back(t);

    std::optional<int32_t> max_id;
    for (const auto& [content, id] : to_id_) max_id = std::max(max_id.value_or(id), id);
    const auto model_size = static_cast<int32_t>(model.vocab_size());
    for (const auto& t : tokens) {
        if (t.content.empty()) continue;
        auto known = to_id_.find(t.content);
        if (known != to_id_.end()) {
            auto existing = by_id_.find(known->second);
            if (existing != by_id_.end() && same_token(existing->second, t)) continue;
        }
        int32_t id;
        if (known != to_id_.end())
            id = known->second;
        else if (auto model_id = model.token_to_id(t.content))
            id = *model_id;
        else if (!max_id)
            id = model_size;
        else
            id = (*max_id >= model_size || model_size == 0) ? *max_id + 1 : model_size;
        to_id_[t.content] = id;
        by_id_[id] = t;
        max_id = std::max(max_id.value_or(id), id);
        if (!special_.count(t.content)) classic_.push_back(t);
    }
    rebuild(model, normalizer);
}

void AddedVocabulary::rebuild(const Model& model, const Normalizer* normalizer) {
    std::vector<std::string> raw_patterns, norm_patterns;
    std::vector<int32_t> raw_ids, norm_ids;
    const auto visit = [&](const AddedToken& t) {
        auto id = token_to_id(t.content);
        if (!id) id = model.token_to_id(t.content);
        if (!id) return;
        if (t.normalized) {
            NormalizedString ns(t.content);
            if (normalizer) normalizer->normalize(ns);
            norm_patterns.push_back(ns.get());
            norm_ids.push_back(*id);
        } else {
            raw_patterns.push_back(t.content);
            raw_ids.push_back(*id);
        }
    };
    for (const auto& t : special_list_) visit(t);
    for (const auto& t : classic_) visit(t);
    raw_matcher_.build(raw_patterns, std::move(raw_ids));
    normalized_matcher_.build(norm_patterns, std::move(norm_ids));
}

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
    auto it = to_id_.find(content);
    if (it == to_id_.end()) return std::nullopt;
    return it->second;
}

const AddedToken* AddedVocabulary::token(int32_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &it->second;
}

bool AddedVocabulary::is_special_id(int32_t id) const {
    const AddedToken* t = token(id);
    return t && special_.count(t->content) > 0;
}

void AddedVocabulary::find_matches(std::string_view text, const Matcher& matcher, bool encode_special_tokens,
                                   std::vector<Found>& out) const {
    out.clear();
    if (text.empty()) {
        out.push_back({std::nullopt, 0, 0});
        return;
    }
    size_t start_offset = 0;
    size_t pos = 0;
    while (pos < text.size()) {
        if (!matcher.may_start(static_cast<unsigned char>(text[pos]))) {
            ++pos;
            continue;
        }
        const auto [len, id] = matcher.longest_at(text, pos);
        if (len == 0) {
            ++pos;
            continue;
        }
        size_t start = pos;
        size_t stop = pos + len;
        pos = stop;
        const AddedToken* t = token(id);
        if (!t) continue;
        if (encode_special_tokens && special_.count(t->content)) continue;
        if (t->single_word) {
            const bool space_before = start == 0 || !utf8::is_word_char(last_char(text.substr(0, start)));
            size_t clen;
            const bool space_after = stop == text.size() || !utf8::is_word_char(utf8::decode(text, stop, clen));
            if (!space_before || !space_after) continue;
        }
        if (t->lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
        if (t->rstrip) stop += leading_space_len(text.substr(stop));
        if (start_offset < start) out.push_back({std::nullopt, start_offset, start});
        out.push_back({id, start, stop});
        start_offset = stop;
    }
    if (start_offset != text.size()) out.push_back({std::nullopt, start_offset, text.size()});
}

void AddedVocabulary::split_with_matches(NormalizedString&& ns, const Matcher& matcher, bool encode_special_tokens,
                                         std::vector<Split>& out) const {
    thread_local std::vector<Found> found;
    find_matches(ns.get(), matcher, encode_special_tokens, found);
    for (const auto& f : found) {
        NormalizedString piece = ns.slice(f.begin, f.end);
        if (f.id) {
            std::vector<Token> tokens{{*f.id, piece.get(), 0, piece.size()}};
            out.push_back({std::move(piece), std::move(tokens)});
        } else {
            out.push_back({std::move(piece), std::nullopt});
        }
    }
}

PreTokenizedString AddedVocabulary::extract_and_normalize(std::string_view text, const Normalizer* normalizer,
                                                          bool encode_special_tokens) const {
    PreTokenizedString pts(text);
    pts.split([&](NormalizedString&& ns, std::vector<Split>& out) {
        split_with_matches(std::move(ns), raw_matcher_, encode_special_tokens, out);
    });
    pts.split([&](NormalizedString&& ns, std::vector<Split>& out) {
        if (normalizer) normalizer->normalize(ns);
        split_with_matches(std::move(ns), normalized_matcher_, encode_special_tokens, out);
    });
    return pts;
}

}  // namespace tfx::tok
