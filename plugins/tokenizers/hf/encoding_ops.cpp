#include "encoding_ops.h"

#include <algorithm>

namespace tfx::tok {
namespace {

void append_fields(Encoding& self, const Encoding& other) {
    self.ids.insert(self.ids.end(), other.ids.begin(), other.ids.end());
    self.type_ids.insert(self.type_ids.end(), other.type_ids.begin(), other.type_ids.end());
    self.tokens.insert(self.tokens.end(), other.tokens.begin(), other.tokens.end());
    self.offsets.insert(self.offsets.end(), other.offsets.begin(), other.offsets.end());
    self.attention_mask.insert(self.attention_mask.end(), other.attention_mask.begin(), other.attention_mask.end());
    self.special_tokens_mask.insert(self.special_tokens_mask.end(), other.special_tokens_mask.begin(),
                                    other.special_tokens_mask.end());
}

Encoding range_of(const Encoding& e, size_t begin, size_t end) {
    Encoding out;
    const auto cut = [&](const auto& v, auto& dst) {
        dst.assign(v.begin() + static_cast<ptrdiff_t>(begin), v.begin() + static_cast<ptrdiff_t>(end));
    };
    cut(e.ids, out.ids);
    cut(e.type_ids, out.type_ids);
    cut(e.tokens, out.tokens);
    cut(e.offsets, out.offsets);
    cut(e.attention_mask, out.attention_mask);
    cut(e.special_tokens_mask, out.special_tokens_mask);
    return out;
}

}  // namespace

void merge_into(Encoding& self, const Encoding& pair) {
    std::vector<Encoding> overflowing;
    for (const auto& self_o : self.overflowing) {
        Encoding n = self_o;
        merge_into(n, pair);
        overflowing.push_back(std::move(n));
        for (const auto& other_o : pair.overflowing) {
            Encoding m = self_o;
            merge_into(m, other_o);
            overflowing.push_back(std::move(m));
        }
    }
    for (const auto& other_o : pair.overflowing) {
        Encoding n = self;
        n.overflowing.clear();
        merge_into(n, other_o);
        overflowing.push_back(std::move(n));
    }
    append_fields(self, pair);
    self.overflowing = std::move(overflowing);
}

Encoding merge_all(std::vector<Encoding> encodings) {
    if (encodings.empty()) return {};
    const bool overflow =
        std::any_of(encodings.begin(), encodings.end(), [](const Encoding& e) { return !e.overflowing.empty(); });
    if (!overflow) {
        // The usual case (a long sequence between a few special tokens): the others are
        // spliced around the largest one in place, moving token strings, so the sequence is
        // never held twice.
        size_t big = 0;
        for (size_t i = 1; i < encodings.size(); ++i)
            if (encodings[i].ids.size() > encodings[big].ids.size()) big = i;
        Encoding out = std::move(encodings[big]);
        const auto splice = [&](auto member) {
            auto& dst = out.*member;
            size_t before = 0, after = 0;
            for (size_t i = 0; i < encodings.size(); ++i)
                if (i != big) (i < big ? before : after) += (encodings[i].*member).size();
            dst.reserve(dst.size() + before + after);
            size_t at = 0;
            for (size_t i = 0; i < big; ++i) {
                auto& src = encodings[i].*member;
                dst.insert(dst.begin() + static_cast<ptrdiff_t>(at), std::make_move_iterator(src.begin()),
                           std::make_move_iterator(src.end()));
                at += src.size();
            }
            for (size_t i = big + 1; i < encodings.size(); ++i) {
                auto& src = encodings[i].*member;
                dst.insert(dst.end(), std::make_move_iterator(src.begin()), std::make_move_iterator(src.end()));
            }
        };
        splice(&Encoding::ids);
        splice(&Encoding::type_ids);
        splice(&Encoding::tokens);
        splice(&Encoding::offsets);
        splice(&Encoding::attention_mask);
        splice(&Encoding::special_tokens_mask);
        return out;
    }
    Encoding out = std::move(encodings.front());
    for (size_t i = 1; i < encodings.size(); ++i) merge_into(out, encodings[i]);
    return out;
}

void truncate(Encoding& e, size_t max_length, size_t stride, Direction direction) {
    const size_t len = e.ids.size();
    if (max_length >= len) return;
    if (max_length == 0) {
        Encoding whole = std::move(e);
        e = Encoding{};
        e.overflowing.push_back(std::move(whole));
        return;
    }
    if (stride >= max_length) throw Error("truncation stride must be smaller than max_length (after special tokens)");
    const size_t step = max_length - stride;
    std::vector<std::pair<size_t, size_t>> parts;
    if (direction == Direction::Right) {
        for (size_t start = 0; start < len; start += step) {
            const size_t stop = std::min(start + max_length, len);
            parts.emplace_back(start, stop);
            if (stop == len) break;
        }
    } else {
        for (size_t i = 0; i < len; i += step) {
            const size_t stop = len - i;
            const size_t start = stop > max_length ? stop - max_length : 0;
            parts.emplace_back(start, stop);
            if (start == 0) break;
        }
    }
    Encoding head = range_of(e, parts[0].first, parts[0].second);
    for (size_t k = 1; k < parts.size(); ++k) head.overflowing.push_back(range_of(e, parts[k].first, parts[k].second));
    e = std::move(head);
}

void truncate_pair(Encoding& first, Encoding* second, const TruncationParams& p) {
    if (p.max_length == 0) {
        truncate(first, 0, p.stride, p.direction);
        if (second) truncate(*second, 0, p.stride, p.direction);
        return;
    }
    const size_t total = first.ids.size() + (second ? second->ids.size() : 0);
    if (total <= p.max_length) return;
    const size_t to_remove = total - p.max_length;
    switch (p.strategy) {
        case TruncationStrategy::LongestFirst: {
            if (!second) {
                truncate(first, total - to_remove, p.stride, p.direction);
                return;
            }
            size_t n1 = first.ids.size(), n2 = second->ids.size();
            const bool swapped = n1 > n2;
            if (swapped) std::swap(n1, n2);
            n2 = n1 > p.max_length ? n1 : std::max(n1, p.max_length - n1);
            if (n1 + n2 > p.max_length) {
                n1 = p.max_length / 2;
                n2 = n1 + p.max_length % 2;
            }
            if (swapped) std::swap(n1, n2);
            truncate(first, n1, p.stride, p.direction);
            truncate(*second, n2, p.stride, p.direction);
            return;
        }
        case TruncationStrategy::OnlyFirst:
        case TruncationStrategy::OnlySecond: {
            Encoding* target = p.strategy == TruncationStrategy::OnlyFirst ? &first : second;
            if (!target) throw Error("truncation strategy only_second needs a pair of sequences");
            if (target->ids.size() <= to_remove)
                throw Error("truncation error: sequence to truncate is too short to respect the provided max_length");
            truncate(*target, target->ids.size() - to_remove, p.stride, p.direction);
            return;
        }
    }
}

void pad(Encoding& e, size_t target, const PaddingParams& p) {
    for (auto& o : e.overflowing) pad(o, target, p);
    if (e.ids.size() >= target) return;
    const size_t n = target - e.ids.size();
    const auto fill = [&](auto& v, const auto& value) {
        using V = std::decay_t<decltype(v)>;
        V extra(n, value);
        if (p.direction == Direction::Left)
            v.insert(v.begin(), extra.begin(), extra.end());
        else
            v.insert(v.end(), extra.begin(), extra.end());
    };
    fill(e.ids, p.pad_id);
    fill(e.type_ids, p.pad_type_id);
    fill(e.tokens, p.pad_token);
    fill(e.offsets, Offsets{});
    fill(e.attention_mask, 0u);
    fill(e.special_tokens_mask, 1u);
}

void pad_batch(std::vector<Encoding>& batch, const PaddingParams& p) {
    if (batch.empty()) return;
    size_t target = 0;
    if (p.fixed_length)
        target = *p.fixed_length;
    else
        for (const auto& e : batch) target = std::max(target, e.ids.size());
    if (p.pad_to_multiple_of && *p.pad_to_multiple_of > 0 && target % *p.pad_to_multiple_of != 0)
        target += *p.pad_to_multiple_of - target % *p.pad_to_multiple_of;
    for (auto& e : batch) pad(e, target, p);
}

}  // namespace tfx::tok
