#include "core/stop_strings.h"

#include <algorithm>

namespace tfx {

StopStrings::StopStrings(std::vector<std::string> stops, Piece piece)
    : stops_(std::move(stops)), piece_(std::move(piece)) {
    for (const std::string& s : stops_) longest_ = std::max(longest_, s.size());
}

const std::string& StopStrings::piece(int32_t token) {
    auto it = pieces_.find(token);
    if (it == pieces_.end()) it = pieces_.emplace(token, piece_(token)).first;
    return it->second;
}

bool StopStrings::matches(std::span<const int32_t> ids) {
    if (stops_.empty() || ids.empty()) return false;
    const std::span<const int32_t> window = ids.last(std::min(longest_, ids.size()));
    std::string text;
    for (int32_t id : window) text += piece(id);
    const size_t last = piece(ids.back()).size();
    if (last == 0) return false;
    const size_t last_starts = text.size() - last;
    for (const std::string& stop : stops_) {
        // An occurrence whose end falls inside the last token.
        const size_t from = last_starts + 1 > stop.size() ? last_starts + 1 - stop.size() : 0;
        for (size_t at = text.find(stop, from); at != std::string::npos; at = text.find(stop, at + 1)) {
            if (at + stop.size() > last_starts) return true;
        }
    }
    return false;
}

}  // namespace tfx
