// Token <-> id tables shared by the models. Token bytes live in one arena and lookups go
// through a flat open-addressing table: loading a 260k-token vocabulary and resolving
// half a million merges stays fast, and string_view lookups never allocate.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tfx::tok {

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
        // FNV-1a over 8-byte words with a final mix: tokens are short and this is hot.
        uint64_t h = 0xcbf29ce484222325ULL ^ s.size();
        size_t i = 0;
        for (; i + 8 <= s.size(); i += 8) {
            uint64_t w;
            std::memcpy(&w, s.data() + i, 8);
            h = (h ^ w) * 0x100000001b3ULL;
            h ^= h >> 29;
        }
        for (; i < s.size(); ++i) h = (h ^ static_cast<unsigned char>(s[i])) * 0x100000001b3ULL;
        h ^= h >> 32;
        h *= 0x9E3779B97F4A7C15ULL;
        return static_cast<size_t>(h ^ (h >> 29));
    }
};

using TokenIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class Vocab {
  public:
    void reserve(size_t n) {
        entries_.reserve(n);
        if (n * 2 > slots_.size()) rehash(n * 2);
    }

    // A later entry for the same token replaces the earlier one (as a JSON object would).
    void insert(std::string_view token, int32_t id) {
        if ((entries_.size() + 1) * 2 > slots_.size()) rehash(std::max<size_t>(64, slots_.size() * 2));
        const auto h = static_cast<uint32_t>(StringHash{}(token));
        size_t i = h & mask_;
        for (;; i = (i + 1) & mask_) {
            Slot& slot = slots_[i];
            if (slot.entry < 0) {
                slot = {static_cast<int32_t>(entries_.size()), h};
                entries_.push_back({static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(token.size()), id});
                arena_.append(token);
                break;
            }
            Entry& e = entries_[static_cast<size_t>(slot.entry)];
            if (slot.hash == h && view(e) == token) {
                if (e.id != id && e.id >= 0 && static_cast<size_t>(e.id) < id_to_entry_.size())
                    id_to_entry_[static_cast<size_t>(e.id)] = -1;
                e.id = id;
                break;
            }
        }
        const auto index = static_cast<size_t>(id);
        if (index >= id_to_entry_.size()) id_to_entry_.resize(index + 1, -1);
        id_to_entry_[index] = slots_[i].entry;
    }

    std::optional<int32_t> find(std::string_view token) const {
        if (slots_.empty()) return std::nullopt;
        const auto h = static_cast<uint32_t>(StringHash{}(token));
        for (size_t i = h & mask_;; i = (i + 1) & mask_) {
            const Slot& slot = slots_[i];
            if (slot.entry < 0) return std::nullopt;
            if (slot.hash == h) {
                const Entry& e = entries_[static_cast<size_t>(slot.entry)];
                if (view(e) == token) return e.id;
            }
        }
    }

    std::optional<std::string_view> token(int32_t id) const {
        if (id < 0 || static_cast<size_t>(id) >= id_to_entry_.size()) return std::nullopt;
        const int32_t e = id_to_entry_[static_cast<size_t>(id)];
        if (e < 0) return std::nullopt;
        return view(entries_[static_cast<size_t>(e)]);
    }

    size_t size() const { return entries_.size(); }

    void for_each(const std::function<void(std::string_view, int32_t)>& fn) const {
        for (const Entry& e : entries_) fn(view(e), e.id);
    }

  private:
    struct Entry {
        uint32_t offset;
        uint32_t length;
        int32_t id;
    };
    struct Slot {
        int32_t entry = -1;
        uint32_t hash = 0;
    };

    std::string_view view(const Entry& e) const { return std::string_view(arena_).substr(e.offset, e.length); }

    void rehash(size_t min_slots) {
        size_t cap = 64;
        while (cap < min_slots) cap <<= 1;
        std::vector<Slot> slots(cap);
        const size_t mask = cap - 1;
        for (const Slot& s : slots_) {
            if (s.entry < 0) continue;
            size_t i = s.hash & mask;
            while (slots[i].entry >= 0) i = (i + 1) & mask;
            slots[i] = s;
        }
        slots_ = std::move(slots);
        mask_ = mask;
    }

    std::string arena_;
    std::vector<Entry> entries_;
    std::vector<Slot> slots_;
    size_t mask_ = 0;
    std::vector<int32_t> id_to_entry_;
};

// BPE merges in rank order: the two tokens of each merge side by side in one arena, so the
// list costs its bytes plus 12 per merge, and the concatenation of a merge's tokens (its
// result, when there is no subword prefix) is a plain view.
class MergeList {
  public:
    // False (and nothing added) when the arena would pass 4 GiB.
    bool add(std::string_view left, std::string_view right) {
        if (arena_.size() + left.size() + right.size() > std::numeric_limits<uint32_t>::max()) return false;
        entries_.push_back({static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(left.size()),
                            static_cast<uint32_t>(right.size())});
        arena_.append(left);
        arena_.append(right);
        return true;
    }
    size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    std::string_view left(size_t i) const { return view(entries_[i].offset, entries_[i].left_len); }
    std::string_view right(size_t i) const {
        return view(entries_[i].offset + entries_[i].left_len, entries_[i].right_len);
    }
    std::string_view both(size_t i) const {
        return view(entries_[i].offset, entries_[i].left_len + entries_[i].right_len);
    }
    void clear() {
        arena_ = std::string();
        entries_ = std::vector<Entry>();
    }

  private:
    struct Entry {
        uint32_t offset;
        uint32_t left_len;
        uint32_t right_len;
    };
    std::string_view view(uint32_t offset, uint32_t length) const {
        return std::string_view(arena_).substr(offset, length);
    }

    std::string arena_;
    std::vector<Entry> entries_;
};

}  // namespace tfx::tok
